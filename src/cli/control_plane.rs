//! `airlock control-plane`: serve the gRPC control plane until Ctrl-C or SIGTERM.

use anyhow::Context as _;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `airlock control-plane`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example config (TOML; relative paths are relative to the file):\n  listen = \"127.0.0.1:7443\"\n  data_dir = \"airlock-data\"\n  trusted_keys = [\"release.pub\"]      # from `airlock bundle keygen -o release`\n  [[tokens]]\n  subject = \"ada\"\n  sha256 = \"...\"                       # printf %s TOKEN | sha256sum\n  roles = [\"admin\"]                    # admin, reviewer, auditor, node\n  groups = [\"dba\"]                    # reviewer groups (who may decide which approvals)\n  # [tls] cert = \"server.crt\", key = \"server.key\" (PEM) to serve TLS\n  # [ui] listen = \"127.0.0.1:7480\"     # the reviewers' page at /ui\n  # [webhooks] urls = [\"http://...\"]   # POSTed on each new approval request\n  # [telemetry] otlp_endpoint = \"http://127.0.0.1:4317\"   # spans over OTLP/gRPC"
)]
pub struct ControlPlaneArgs {
    /// Configuration file (TOML).
    #[arg(long)]
    pub config: PathBuf,
    /// Data directory (overrides the file's `data_dir`; default ./airlock-data).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Log as JSON lines.
    #[arg(long)]
    pub log_json: bool,
}

/// Runs the control plane.
pub async fn run(args: ControlPlaneArgs) -> anyhow::Result<ExitCode> {
    // The config is read first: it says whether spans are exported.
    let mut config = airlock_control_plane::ControlPlaneConfig::from_file(&args.config)?;
    let telemetry = super::init_tracing(
        super::LogOutput::Stderr {
            json: args.log_json,
        },
        &config.telemetry,
    )?;
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let data_dir = config.data_dir.clone();
    let plane = airlock_control_plane::ControlPlane::start(config)
        .await
        .context("starting the control plane")?;
    {
        // Tests and scripts parse this line: keep its shape.
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        writeln!(
            stdout,
            "airlock control-plane listening on {scheme}://{}",
            plane.local_addr()
        )?;
        if let Some(addr) = plane.ui_addr() {
            writeln!(stdout, "airlock reviewer page on http://{addr}/ui")?;
        }
        stdout.flush()?;
    }
    eprintln!("data in {}; Ctrl-C or SIGTERM to stop", data_dir.display());
    plane.run(super::shutdown_signal()).await?;
    telemetry.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
