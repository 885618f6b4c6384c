//! The shared gRPC client of the CLI commands that talk to the control plane:
//! the global options (`--control-plane`, `--token`, `--output`), the channel, the
//! bearer token, and errors that say what to do.

use airlock_control_plane::api::approval_service_client::ApprovalServiceClient;
use airlock_control_plane::api::audit_service_client::AuditServiceClient;
use airlock_control_plane::api::bundle_service_client::BundleServiceClient;
use airlock_control_plane::api::node_service_client::NodeServiceClient;
use anyhow::Context as _;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// Largest message the CLI accepts or sends (bundles up to the 16 MiB default limit).
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// Options shared by every command that talks to the control plane.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Control plane URL (`https://` for TLS).
    #[arg(
        long,
        global = true,
        env = "AIRLOCK_CONTROL_PLANE",
        default_value = "http://127.0.0.1:7443"
    )]
    pub control_plane: String,
    /// Bearer token for the control plane.
    #[arg(long, global = true, env = "AIRLOCK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// PEM CA certificate to trust for an `https://` control plane (default: system roots).
    #[arg(long, global = true, env = "AIRLOCK_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
}

/// How commands print results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    Table,
    /// One JSON document for scripts.
    Json,
}

/// A connected control-plane client carrying the bearer token.
pub struct ControlPlaneClient {
    channel: Channel,
    token: String,
    url: String,
}

impl ControlPlaneClient {
    /// Connects to `--control-plane` with `--token`.
    pub async fn connect(global: &GlobalArgs) -> anyhow::Result<ControlPlaneClient> {
        let url = global.control_plane.clone();
        let token = global
            .token
            .clone()
            .filter(|t| !t.trim().is_empty())
            .context("no control-plane token: pass --token TOKEN or set AIRLOCK_TOKEN")?;
        let mut endpoint = Endpoint::from_shared(url.clone())
            .with_context(|| {
                format!("{url:?} is not a URL; pass e.g. --control-plane http://127.0.0.1:7443")
            })?
            .connect_timeout(Duration::from_secs(5));
        if url.starts_with("https://") {
            let mut tls = ClientTlsConfig::new().with_enabled_roots();
            if let Some(path) = &global.ca_cert {
                let pem = std::fs::read(path).with_context(|| {
                    format!("cannot read the CA certificate {}", path.display())
                })?;
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            endpoint = endpoint
                .tls_config(tls)
                .context("TLS setup for the control plane")?;
        }
        let channel = endpoint.connect().await.map_err(|err| {
            anyhow::anyhow!(
                "cannot reach the control plane at {url} ({}): is it running? set AIRLOCK_CONTROL_PLANE or --control-plane",
                error_chain(&err)
            )
        })?;
        Ok(ControlPlaneClient {
            channel,
            token,
            url,
        })
    }

    /// A request carrying the bearer token.
    pub fn request<T>(&self, message: T) -> anyhow::Result<tonic::Request<T>> {
        let mut request = tonic::Request::new(message);
        let value = format!("Bearer {}", self.token).parse().context(
            "the token contains characters not allowed in a header; check AIRLOCK_TOKEN",
        )?;
        request.metadata_mut().insert("authorization", value);
        Ok(request)
    }

    /// The `BundleService` client.
    pub fn bundles(&self) -> BundleServiceClient<Channel> {
        BundleServiceClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    /// The `NodeService` client.
    pub fn nodes(&self) -> NodeServiceClient<Channel> {
        NodeServiceClient::new(self.channel.clone())
    }

    /// The `AuditService` client.
    pub fn audit(&self) -> AuditServiceClient<Channel> {
        AuditServiceClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    /// The `ApprovalService` client.
    /// The `ToolService` client.
    pub fn tools(
        &self,
    ) -> airlock_control_plane::api::tool_service_client::ToolServiceClient<Channel> {
        airlock_control_plane::api::tool_service_client::ToolServiceClient::new(
            self.channel.clone(),
        )
        .max_decoding_message_size(MAX_MESSAGE)
    }

    pub fn approvals(&self) -> ApprovalServiceClient<Channel> {
        ApprovalServiceClient::new(self.channel.clone())
    }

    /// Turns a failed call into an error that says what to do.
    pub fn explain(&self, status: tonic::Status) -> anyhow::Error {
        let message = status.message();
        match status.code() {
            tonic::Code::Unavailable => anyhow::anyhow!(
                "cannot reach the control plane at {}: {message}; is it running? set AIRLOCK_CONTROL_PLANE or --control-plane",
                self.url
            ),
            tonic::Code::Unauthenticated => anyhow::anyhow!("the control plane refused the token: {message}"),
            tonic::Code::PermissionDenied => anyhow::anyhow!("not allowed: {message}"),
            _ => anyhow::anyhow!("{message}"),
        }
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Prints rows as aligned columns under a header.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// "12s ago", "5m ago", "3h ago", "2d ago" for a Unix-ms timestamp.
pub fn ago(unix_ms: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let secs = now.saturating_sub(unix_ms) / 1000;
    match secs {
        0..=119 => format!("{secs}s ago"),
        120..=7199 => format!("{}m ago", secs / 60),
        7200..=172_799 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}
