//! `airlock proxy`: one data-plane node.

use airlock_data_plane::{Proxy, ProxyConfig};
use anyhow::Context;
use clap::Args;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `airlock proxy`.
#[derive(Debug, Args)]
#[command(after_help = "\
Example airlock.toml (every key is checked; a typo stops the start-up):

  [server]
  listen = \"127.0.0.1:8080\"
  allowed_origins = [\"http://localhost:6274\"]     # browsers with other Origins get 403
  session_secret = \"${AIRLOCK_SESSION_SECRET}\"    # same on every node of a fleet
  # max_body_bytes = 4194304, max_depth = 64, request_timeout_s = 300,
  # max_concurrent_requests = 1024

  [policy]
  dir = \"policies\"                                # Rego + data.json, hot-reloaded
  eval_timeout_ms = 100

  # Or, instead of [policy] dir, signed bundles from the control plane:
  # [control_plane]
  # url = \"http://127.0.0.1:7443\"
  # token = \"${AIRLOCK_NODE_TOKEN}\"                # a token with the role node
  # bundle_public_keys = [\"release.pub\"]          # from `airlock bundle keygen`
  # bundle_cache_dir = \"cache\"                    # optional: start while it is down
  # node_id = \"proxy-a\", heartbeat_s = 10, ca_cert = \"ca.pem\" (https)

  [[api_keys]]                                     # clients send Authorization: Bearer <key>
  subject = \"demo-agent\"
  sha256 = \"<printf %s \\\"$KEY\\\" | sha256sum>\"
  groups = [\"agents\"]
  kind = \"agent\"

  # [[jwt]]                                        # or JWTs from your identity provider
  # issuer = \"https://idp.example.com/\"          # the token's iss, exactly
  # audience = \"airlock\"                         # must be in the token's aud
  # jwks_url = \"https://idp.example.com/.well-known/jwks.json\"   # or jwks_file = ...
  # groups_claim = \"groups\"                      # claims reach Rego as input.identity.claims

  [[upstreams]]                                    # served at /mcp/demo (http:// or https://)
  name = \"demo\"
  url = \"http://127.0.0.1:9100/mcp\"
  labels = { env = \"prod\" }
  headers = { Authorization = \"Bearer ${DEMO_UPSTREAM_TOKEN}\" }

  # [[upstreams]]                                  # a local MCP server run over stdio (no shell)
  # name = \"files\"
  # command = [\"npx\", \"-y\", \"@modelcontextprotocol/server-filesystem\", \"/srv/data\"]
  # env = { GITHUB_TOKEN = \"${GITHUB_TOKEN}\" }  # all it gets, with PATH, HOME and LANG
  # max_processes = 32, idle_timeout_s = 300, startup_timeout_s = 30
  #                                                # one child per session (the session id names
  #                                                # this node: route sessions to it), a pool for 2026-07-28

  # [outbound_tls]                                 # private CAs for https upstreams and jwks_url
  # ca_certs = [\"corp-root-ca.pem\"]

  # [limits]                        # so one agent cannot starve the rest (defaults shown)
  # header_timeout_s = 10, body_idle_timeout_s = 5, body_timeout_s = 30
  # max_concurrent_per_identity = 256 (a quarter of max_concurrent_requests)
  # max_unauthenticated_per_source = 256
  # [limits.rate]                   # optional: every request of one identity (429 past it)
  # per_minute = 600, burst = 100
  # [limits.tools.query]            # optional: tools/call of query, per identity
  # per_minute = 30, burst = 5

  # [telemetry]                     # OTLP/gRPC span export (or OTEL_EXPORTER_OTLP_ENDPOINT)
  # otlp_endpoint = \"http://127.0.0.1:4317\"
  # service_name = \"airlock-proxy\", sample_ratio = 1.0

Then point an MCP client at http://127.0.0.1:8080/mcp/demo with its API key.
Health: GET /healthz (process up), GET /readyz (a policy bundle is loaded; the body
also shows the control-plane link and the audit backlog). Metrics: GET /metrics.")]
pub struct ProxyArgs {
    /// The TOML config file (see the example below).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Listen on this address instead of `server.listen` (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Write logs to stderr as JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
}

/// Runs a proxy node until Ctrl-C or SIGTERM.
pub async fn run(args: ProxyArgs) -> anyhow::Result<ExitCode> {
    // The config is read first: it says whether spans are exported.
    let mut config = ProxyConfig::from_file(&args.config)?;
    let telemetry = super::init_tracing(
        super::LogOutput::Stderr {
            json: args.log_json,
        },
        &config.telemetry,
    )?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    let proxy = Proxy::start(config)
        .await
        .context("the proxy could not start")?;
    let addr = proxy.local_addr();
    {
        // Tests and scripts parse this line: keep its shape.
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "airlock proxy listening on http://{addr}")?;
        stdout.flush()?;
    }
    proxy.run(super::shutdown_signal()).await?;
    // The last requests' spans leave before the process does.
    telemetry.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
