//! `airlock demo-server`: the demo MCP upstream (fake customer data in memory).

use airlock_demo::{DemoOptions, DemoServer, DEFAULT_SEED};
use clap::Args;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

/// Arguments of `airlock demo-server`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:9100")]
    pub listen: SocketAddr,
    /// Require `Authorization: Bearer TOKEN` on every request.
    #[arg(long, env = "AIRLOCK_DEMO_TOKEN", hide_env_values = true)]
    pub require_token: Option<String>,
    /// Seed of the fake data: the same seed gives the same customers and orders.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// Allow a non-loopback --listen address (the demo serves fake PII and secrets).
    #[arg(long)]
    pub allow_remote: bool,
    /// Log as JSON lines (to stderr).
    #[arg(long)]
    pub log_json: bool,
}

/// Runs the demo MCP server until Ctrl-C or SIGTERM.
pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    super::init_logging(args.log_json);
    if !args.listen.ip().is_loopback() && !args.allow_remote {
        anyhow::bail!(
            "refusing to listen on {}: the demo server holds fake PII and secrets and is meant \
             for this machine only; use a loopback address such as 127.0.0.1:9100, or pass \
             --allow-remote if you really want it reachable from other hosts",
            args.listen
        );
    }
    if args.require_token.as_deref().is_some_and(str::is_empty) {
        anyhow::bail!(
            "--require-token (or AIRLOCK_DEMO_TOKEN) is empty: give a token or leave it unset"
        );
    }
    let options = DemoOptions {
        required_bearer: args.require_token,
        seed: args.seed,
    };
    let server = DemoServer::bind(args.listen, options).await?;
    // Tests and `airlock dev` parse this exact line: keep it the only stdout output.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "airlock demo-server listening on {}", server.url())?;
    stdout.flush()?;
    drop(stdout);
    server.run(super::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
