//! `airlock dev`: a control plane, the demo MCP server and a proxy on loopback,
//! with fresh credentials and a throw-away signing key, and instructions on stdout.
//! The default policies are published as the first bundle; the proxy takes its
//! policy from the control plane, so `airlock bundle push` changes it live.

use anyhow::Context;
use clap::Args;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tokio::sync::watch;

/// Arguments of `airlock dev`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  airlock dev                     # then follow the printed instructions\n  airlock dev --port 0 --control-plane-port 0   # any free ports\n  airlock dev --policies ./my-policies --log-stderr\n\nIn another shell, paste the printed `export` lines, then e.g.:\n  airlock bundle list\n  airlock bundle push policies/ --signing-key \"$AIRLOCK_SIGNING_KEY\"\n  airlock nodes list"
)]
pub struct DevArgs {
    /// Loopback port of the proxy (0 = any free port). If the port is taken,
    /// a free one is used instead and printed.
    #[arg(long, default_value_t = 7331)]
    pub port: u16,
    /// Loopback port of the control plane (0 = any free port). If the port is
    /// taken, a free one is used instead and printed.
    #[arg(long, default_value_t = 7443)]
    pub control_plane_port: u16,
    /// Policy directory (Rego + data.json) published as the first bundle. Later
    /// changes go through the control plane: `airlock bundle push DIR`.
    #[arg(long, default_value = "policies")]
    pub policies: PathBuf,
    /// Where the control plane's data, the signing key, config and logs go.
    /// Default: a fresh temporary directory, removed on exit.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Write logs to stderr instead of the log file in the data directory.
    #[arg(long)]
    pub log_stderr: bool,
    /// Export spans (proxy and control plane, service `airlock-dev`) to this
    /// OTLP/gRPC collector, e.g. http://127.0.0.1:4317. Default: the
    /// OTEL_EXPORTER_OTLP_ENDPOINT environment variable, else no export.
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
}

/// Credentials minted for one `airlock dev` run.
pub(super) struct DevSecrets {
    agent_key: String,
    readonly_key: String,
    upstream_token: String,
    /// Control-plane token of the operator (admin + reviewer), for the CLI.
    pub(super) operator_token: String,
    /// A second reviewer in the same groups, for rules that need two people.
    pub(super) second_reviewer_token: String,
    /// Control-plane token of the proxy (node).
    pub(super) node_token: String,
}

impl DevSecrets {
    fn generate() -> Self {
        Self {
            agent_key: format!("ak_demo_{}", random_hex(16)),
            readonly_key: format!("ak_readonly_{}", random_hex(16)),
            upstream_token: format!("upstream_{}", random_hex(16)),
            operator_token: format!("cp_operator_{}", random_hex(16)),
            second_reviewer_token: format!("cp_reviewer_{}", random_hex(16)),
            node_token: format!("cp_node_{}", random_hex(16)),
        }
    }
}

fn random_hex(bytes: usize) -> String {
    let buf: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    hex::encode(buf)
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// Runs the local demo until Ctrl-C.
pub async fn run(args: DevArgs) -> anyhow::Result<ExitCode> {
    let policies = std::fs::canonicalize(&args.policies).with_context(|| {
        format!(
            "policy directory {} not found: run `airlock dev` from the repository root or pass --policies DIR",
            args.policies.display()
        )
    })?;
    let (data_dir, _temp) = data_dir(args.data_dir.as_deref())?;
    let log_path = data_dir.join("airlock.log");
    let telemetry = airlock_telemetry::RawTelemetry::with_endpoint(args.otlp_endpoint.clone())
        .validate("airlock-dev", |name| std::env::var(name).ok())
        .map_err(|e| anyhow::anyhow!("--otlp-endpoint: {e}"))?;
    let exporter = init_dev_logging(args.log_stderr, &log_path, &telemetry)?;

    let secrets = DevSecrets::generate();
    let (stop_tx, stop_rx) = watch::channel(false);

    // Reviewers for every group the policies' decisions ask for, two of each, so a
    // two-approver rule can be tried locally.
    let groups = super::dev_control::reviewer_groups(&policies)?;
    let plane =
        super::dev_control::start(&data_dir, args.control_plane_port, &secrets, &groups).await?;
    let revision = plane.publish_policies(&policies).await?;
    let reviewer_page = plane.ui_url();
    let link = super::dev_control::Link {
        url: plane.url(),
        public_key: plane.public_key.clone(),
        signing_key: plane.signing_key.clone(),
    };
    let plane_task = tokio::spawn(plane.plane.run(stopped(stop_rx.clone())));

    let demo = airlock_demo::DemoServer::bind(
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        airlock_demo::DemoOptions {
            required_bearer: Some(secrets.upstream_token.clone()),
            ..Default::default()
        },
    )
    .await
    .context("starting the demo MCP server")?;
    let demo_url = demo.url();

    let config_path = data_dir.join("airlock.toml");
    let proxy = start_proxy(&args, &config_path, &link, &demo_url, &secrets, &telemetry).await?;
    super::dev_control::wait_ready(&proxy).await?;
    let endpoint = format!("http://{}/mcp/demo", proxy.local_addr());

    let demo_task = tokio::spawn(demo.run(stopped(stop_rx.clone())));
    let proxy_task = tokio::spawn(proxy.run(stopped(stop_rx)));

    print_instructions(&Instructions {
        endpoint: &endpoint,
        demo_url: &demo_url,
        policies: &policies,
        revision: &revision,
        control_plane: &link.url,
        reviewer_page: &reviewer_page,
        signing_key: &link.signing_key,
        data_dir: &data_dir,
        config_path: &config_path,
        log_path: (!args.log_stderr).then_some(log_path.as_path()),
        secrets: &secrets,
        groups: &groups,
    });

    crate::cli::shutdown_signal().await;
    eprintln!("\nstopping airlock dev...");
    let _ = stop_tx.send(true);
    let (plane_res, demo_res, proxy_res) = tokio::join!(plane_task, demo_task, proxy_task);
    demo_res
        .context("demo server task")?
        .context("demo server")?;
    proxy_res.context("proxy task")?.context("proxy")?;
    plane_res
        .context("control plane task")?
        .context("control plane")?;
    exporter.shutdown().await;
    eprintln!("stopped.");
    Ok(ExitCode::SUCCESS)
}

/// A future that resolves once the stop flag is raised.
async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Says so when others may read an existing data directory.
fn warn_if_open(dir: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(dir) {
            if meta.permissions().mode() & 0o077 != 0 {
                eprintln!(
                    "warning: {} is open to other users and will hold tokens and keys; run `chmod 700 {}`",
                    dir.display(),
                    dir.display()
                );
            }
        }
    }
}

/// Writes a file only its owner can read (0600), replacing any earlier one.
pub(super) fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        options.mode(0o600);
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    options.open(path)?.write_all(text.as_bytes())
}

/// The data directory: it holds the node token and the upstream credential
/// (`airlock.toml`), the signing keys and the logs, so only its owner may enter
/// it (0700; a temporary one is created so). An existing `--data-dir` others can
/// read is left as it is, with a warning.
fn data_dir(explicit: Option<&Path>) -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>)> {
    match explicit {
        Some(dir) => {
            if dir.exists() {
                warn_if_open(dir);
            } else {
                airlock_control_plane::secrets::create_private_dir(dir)
                    .with_context(|| format!("creating data directory {}", dir.display()))?;
            }
            Ok((dir.to_path_buf(), None))
        }
        None => {
            let temp = tempfile::Builder::new()
                .prefix("airlock-dev-")
                .tempdir()
                .context("creating a temporary data directory")?;
            Ok((temp.path().to_path_buf(), Some(temp)))
        }
    }
}

fn init_dev_logging(
    to_stderr: bool,
    log_path: &Path,
    telemetry: &airlock_telemetry::TelemetryConfig,
) -> anyhow::Result<airlock_telemetry::Telemetry> {
    let output = if to_stderr {
        crate::cli::LogOutput::Stderr { json: false }
    } else {
        write_private(log_path, "")
            .with_context(|| format!("creating log file {}", log_path.display()))?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(log_path)
            .with_context(|| format!("opening log file {}", log_path.display()))?;
        crate::cli::LogOutput::File(file)
    };
    crate::cli::init_tracing(output, telemetry)
}

async fn start_proxy(
    args: &DevArgs,
    config_path: &Path,
    link: &super::dev_control::Link,
    demo_url: &str,
    secrets: &DevSecrets,
    telemetry: &airlock_telemetry::TelemetryConfig,
) -> anyhow::Result<airlock_data_plane::Proxy> {
    let mut port = args.port;
    loop {
        let text = proxy_config(port, link, demo_url, secrets);
        // It holds the node token and the upstream credential.
        write_private(config_path, &text)
            .with_context(|| format!("writing {}", config_path.display()))?;
        let mut config = airlock_data_plane::ProxyConfig::from_file(config_path)
            .context("the generated proxy config is invalid (a bug: please report it)")?;
        // One exporter for the whole process: the proxy only needs to know it is on.
        config.telemetry = telemetry.clone();
        match airlock_data_plane::Proxy::start(config).await {
            Ok(proxy) => return Ok(proxy),
            Err(err) if port != 0 && is_addr_in_use(&err) => {
                eprintln!("port {port} is taken; using a free port instead");
                port = 0;
            }
            Err(err) => return Err(err).context("starting the proxy"),
        }
    }
}

pub(super) fn is_addr_in_use(err: &dyn std::fmt::Display) -> bool {
    let text = format!("{err:#}").to_lowercase();
    text.contains("address already in use") || text.contains("addrinuse")
}

/// The proxy configuration `airlock dev` runs with; written to the data directory
/// so users can read it and start from it.
fn proxy_config(
    port: u16,
    link: &super::dev_control::Link,
    demo_url: &str,
    secrets: &DevSecrets,
) -> String {
    format!(
        r#"# Written by `airlock dev`. A starting point for your own `airlock proxy --config`.
[server]
listen = "127.0.0.1:{port}"
allowed_origins = ["http://localhost:6274", "http://127.0.0.1:6274"]

# The policy comes from the control plane: signed bundles, verified with this key.
# (In production, write token = "${{AIRLOCK_NODE_TOKEN}}" instead of the token.)
[control_plane]
url = "{plane_url}"
token = "{node_token}"
node_id = "dev-proxy"
bundle_public_keys = [{public_key:?}]
heartbeat_s = 5

# API keys are stored as SHA-256 hashes; the keys themselves were printed once.
[[api_keys]]
subject = "demo-agent"
sha256 = "{agent}"
groups = ["agents"]
kind = "agent"

[[api_keys]]
subject = "readonly-agent"
sha256 = "{readonly}"
groups = ["readonly"]
kind = "agent"

[[upstreams]]
name = "demo"
url = "{demo_url}"
labels = {{ env = "prod" }}
# Only the proxy holds the upstream's credential; agents never see it.
headers = {{ Authorization = "Bearer {upstream}" }}
"#,
        plane_url = link.url,
        node_token = secrets.node_token,
        public_key = link.public_key.display().to_string(),
        agent = sha256_hex(&secrets.agent_key),
        readonly = sha256_hex(&secrets.readonly_key),
        upstream = secrets.upstream_token,
    )
}

struct Instructions<'a> {
    endpoint: &'a str,
    demo_url: &'a str,
    policies: &'a Path,
    revision: &'a str,
    control_plane: &'a str,
    reviewer_page: &'a str,
    signing_key: &'a Path,
    data_dir: &'a Path,
    config_path: &'a Path,
    log_path: Option<&'a Path>,
    secrets: &'a DevSecrets,
    groups: &'a [String],
}

fn print_instructions(i: &Instructions<'_>) {
    let key = &i.secrets.agent_key;
    let logs = match i.log_path {
        Some(path) => format!("{} (tail -f it in another shell)", path.display()),
        None => "stderr".to_owned(),
    };
    println!(
        r#"
Airlock dev is running: demo MCP server <- airlock proxy <- your agent
                                             ^ signed policy bundles
                                       airlock control plane

MCP endpoint: {endpoint}
API key: {key}

  policies    {policies}, published as bundle {revision}
  control     {control_plane} (gRPC; the proxy watches its active bundle)
  signing key {signing_key}
  upstream    {demo_url} (labelled env=prod; only the proxy holds its token)
  config      {config}
  logs        {logs}
  read-only   a second key for the group `readonly` (tools/list hides writes): {readonly}

MCP client config (Claude Desktop, Cursor, VS Code, MCP Inspector):
{{
  "mcpServers": {{
    "airlock-demo": {{
      "type": "http",
      "url": "{endpoint}",
      "headers": {{ "Authorization": "Bearer {key}" }}
    }}
  }}
}}

Try it with curl (stateless MCP 2026-07-28, one request each):
{curl_read}
{curl_drop}
{curl_write}

What to expect with the default policies:
  query SELECT ...           allowed; rows come back from the demo database
  execute DROP TABLE ...     denied (sql.ddl), the table is still there
  execute INSERT/UPDATE ...  held until a reviewer approves (writes on env=prod)
  http_request to a host off the allow-list   denied (egress.host_not_allowed)

Use every `airlock` CLI command from another shell (admin + reviewer token):
  export AIRLOCK_CONTROL_PLANE={control_plane}
  export AIRLOCK_TOKEN={operator_token}
  export AIRLOCK_SIGNING_KEY={signing_key}
  airlock bundle list
  airlock nodes list
  airlock audit tail -f        (every message, masked; `airlock audit verify` proves the log)
  airlock sessions list        (then `airlock sessions replay ID`)
Change the policy live: edit a .rego file, then
  airlock bundle push {policies} --signing-key {signing_key}
(the proxy verifies, compiles and swaps it in; roll back with `airlock bundle activate REV`)

Approve a held call (run the UPDATE curl above: it waits, printing keep-alives):
  airlock approvals list                      # add --watch to follow new ones
  airlock approvals show ID                   # payload, identity, reasons, policy revision
  airlock approvals approve ID --reason "checked the row"
  airlock approvals deny ID --reason "not now"
or in the browser: {reviewer_page} (sign in with the AIRLOCK_TOKEN above)
Rules that need two people (several statements, or a DELETE without WHERE, on
prod): a second reviewer, in the same groups ({groups}):
  AIRLOCK_TOKEN={second_reviewer} airlock approvals approve ID --reason "second pair of eyes"

Data directory: {data_dir}
Press Ctrl-C to stop.
"#,
        endpoint = i.endpoint,
        policies = i.policies.display(),
        demo_url = i.demo_url,
        config = i.config_path.display(),
        readonly = i.secrets.readonly_key,
        revision = i.revision,
        control_plane = i.control_plane,
        operator_token = i.secrets.operator_token,
        second_reviewer = i.secrets.second_reviewer_token,
        groups = i.groups.join(", "),
        reviewer_page = i.reviewer_page,
        signing_key = i.signing_key.display(),
        data_dir = i.data_dir.display(),
        curl_read = curl_example(
            i.endpoint,
            key,
            "query",
            "SELECT name, email, card_number FROM customers LIMIT 3"
        ),
        curl_drop = curl_example(i.endpoint, key, "execute", "DROP TABLE customers"),
        curl_write = curl_example(
            i.endpoint,
            key,
            "execute",
            "UPDATE customers SET city = upper(city) WHERE id = 1"
        ),
    );
}

/// A copy-pasteable stateless `tools/call` (no initialize needed).
fn curl_example(endpoint: &str, key: &str, tool: &str, sql: &str) -> String {
    let body = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {
            "name": tool,
            "arguments": {"sql": sql},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {}
            }
        }
    });
    format!(
        "  curl -sN {endpoint} \\\n    -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\\n    -H 'Accept: application/json, text/event-stream' -H 'MCP-Protocol-Version: 2026-07-28' \\\n    -H 'Mcp-Method: tools/call' -H 'Mcp-Name: {tool}' \\\n    -d '{body}'\n"
    )
}
