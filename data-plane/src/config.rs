//! The proxy's TOML configuration: parsed strictly, then validated into the typed
//! values the request path uses, so a typo fails at start-up (file, key, hint) and
//! never mid-request.

mod api_keys;
mod audit;
mod exposure;
mod jwt;
mod limits;
mod outbound;
mod telemetry;
mod upstreams;

pub use self::audit::{AuditConfig, OnFull};
pub use self::exposure::ConfigWarning;
pub use self::jwt::{JwksSource, JwtIssuerConfig};
pub use self::limits::{LimitsConfig, RateLimit};
pub use self::upstreams::{
    FederationConfig, StdioConfig, TransportConfig, UpstreamConfig, INHERITED_ENV,
};
pub use airlock_telemetry::TelemetryConfig;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::control::config::ControlPlaneConfig;
use crate::control::config::RawControlPlane;

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}; check the path given to --config")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed or has an unknown or mistyped key.
    #[error(
        "invalid config file {path}: {message}hint: see the example in `airlock proxy --help`"
    )]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the key and the line).
        message: String,
    },
    /// A value is well-formed TOML but not usable.
    #[error("invalid config file {path}: key `{key}`: {message}; hint: {hint}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The dotted key, e.g. `upstreams[0].url`.
        key: String,
        /// What is wrong.
        message: String,
        /// What to do about it.
        hint: String,
    },
    /// A `${NAME}` reference names an unset environment variable.
    #[error("invalid config file {path}: key `{key}` references environment variable `{var}`, which is not set; export it before starting the proxy")]
    MissingEnv {
        /// The file.
        path: PathBuf,
        /// The key whose value references it.
        key: String,
        /// The variable's name.
        var: String,
    },
}

// === raw TOML ===

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: RawServer,
    #[serde(default)]
    policy: RawPolicy,
    control_plane: Option<RawControlPlane>,
    #[serde(default)]
    api_keys: Vec<RawApiKey>,
    #[serde(default)]
    jwt: Vec<jwt::RawJwt>,
    #[serde(default)]
    outbound_tls: outbound::RawOutboundTls,
    #[serde(default)]
    upstreams: Vec<upstreams::RawUpstream>,
    #[serde(default)]
    federations: Vec<upstreams::RawFederation>,
    #[serde(default)]
    audit: audit::RawAudit,
    approvals: Option<RawApprovals>,
    #[serde(default)]
    telemetry: airlock_telemetry::RawTelemetry,
    #[serde(default)]
    limits: limits::RawLimits,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApprovals {
    #[serde(default = "default_keepalive_s")]
    keepalive_s: u64,
    #[serde(default = "default_max_pending")]
    max_pending: usize,
    #[serde(default)]
    max_pending_per_identity: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: String,
    #[serde(default = "default_max_body_bytes")]
    max_body_bytes: usize,
    #[serde(default = "default_max_depth")]
    max_depth: usize,
    #[serde(default)]
    allowed_origins: Vec<String>,
    session_secret: Option<String>,
    #[serde(default = "default_request_timeout_s")]
    request_timeout_s: u64,
    #[serde(default = "default_connect_timeout_ms")]
    connect_timeout_ms: u64,
    #[serde(default = "default_shutdown_grace_s")]
    shutdown_grace_s: u64,
    #[serde(default = "default_max_concurrent_requests")]
    max_concurrent_requests: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    dir: Option<PathBuf>,
    #[serde(default = "default_eval_timeout_ms")]
    eval_timeout_ms: u64,
}

impl Default for RawPolicy {
    fn default() -> Self {
        RawPolicy {
            dir: None,
            eval_timeout_ms: default_eval_timeout_ms(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApiKey {
    subject: String,
    sha256: String,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default = "default_kind")]
    kind: String,
}

fn default_max_body_bytes() -> usize {
    4 * 1024 * 1024
}
fn default_max_depth() -> usize {
    64
}
fn default_request_timeout_s() -> u64 {
    300
}
fn default_connect_timeout_ms() -> u64 {
    5_000
}
fn default_max_concurrent_requests() -> usize {
    1024
}
fn default_shutdown_grace_s() -> u64 {
    10
}
fn default_eval_timeout_ms() -> u64 {
    100
}
fn default_keepalive_s() -> u64 {
    10
}
fn default_max_pending_per_identity() -> usize {
    100
}

fn default_max_pending() -> usize {
    10_000
}
fn default_kind() -> String {
    "agent".to_owned()
}

// === typed runtime values ===

/// A validated proxy configuration.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Where the proxy listens (`server.listen`).
    pub listen: SocketAddr,
    /// Largest accepted request body in bytes (`server.max_body_bytes`).
    pub max_body_bytes: usize,
    /// Deepest accepted JSON nesting (`server.max_depth`).
    pub max_depth: usize,
    /// Origins allowed to call the proxy from a browser (`server.allowed_origins`).
    pub allowed_origins: Vec<String>,
    /// MCP requests handled at once before new ones get 503
    /// (`server.max_concurrent_requests`; a stream counts until its head is sent).
    pub max_concurrent_requests: usize,
    /// Key for sealing session ids; `None` means a random key per process.
    pub session_secret: Option<Vec<u8>>,
    /// How long to wait for an upstream's response head.
    pub request_timeout: Duration,
    /// How long to wait for a TCP connection to an upstream.
    pub connect_timeout: Duration,
    /// How long in-flight requests may run after shutdown starts.
    pub shutdown_grace: Duration,
    /// The policy bundle directory (relative paths resolved against the config file);
    /// `None` when the bundle comes from the control plane.
    pub policy_dir: Option<PathBuf>,
    /// The control plane to take bundles from and report to (`[control_plane]`);
    /// exactly one of this and `policy_dir` is set.
    pub control_plane: Option<ControlPlaneConfig>,
    /// Budget for one policy evaluation.
    pub eval_timeout: Duration,
    /// Static API keys.
    pub api_keys: Vec<ApiKeyConfig>,
    /// Trusted JWT issuers (`[[jwt]]`).
    pub jwt: Vec<JwtIssuerConfig>,
    /// CA certificates trusted for outbound TLS besides the system's (`[outbound_tls]`).
    pub outbound_ca_certs: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// The MCP servers behind the proxy, each served at `/mcp/{name}`.
    pub upstreams: Vec<UpstreamConfig>,
    /// Upstreams served together at `/mcp/{name}` (`[[federations]]`).
    pub federations: Vec<FederationConfig>,
    /// Where audit events go (`[audit]`).
    pub audit: AuditConfig,
    /// How held calls wait (`[approvals]`; they need `[control_plane]`).
    pub approvals: ApprovalsConfig,
    /// Span export and trace propagation (`[telemetry]`).
    pub telemetry: TelemetryConfig,
    /// Timeouts, concurrency caps and rate limits (`[limits]`).
    pub limits: LimitsConfig,
    /// What is worth a warning about the file itself (logged when the proxy starts,
    /// once logging is set up).
    pub warnings: Vec<ConfigWarning>,
}

/// How held calls wait (`[approvals]`).
#[derive(Debug, Clone)]
pub struct ApprovalsConfig {
    /// Interval of SSE keep-alives / progress notifications to a waiting client.
    pub keepalive: Duration,
    /// Approval requests this node keeps open at once, sync (held calls) and async
    /// (requests the agent will repeat) alike; beyond it, new ones are refused.
    pub max_pending: usize,
    /// The same, per identity: one agent cannot fill the node's `max_pending`.
    pub max_pending_per_identity: usize,
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        Self {
            keepalive: Duration::from_secs(default_keepalive_s()),
            max_pending: default_max_pending(),
            max_pending_per_identity: default_max_pending_per_identity(),
        }
    }
}

/// One static API key (`[[api_keys]]`), stored as the SHA-256 of the key.
#[derive(Debug, Clone)]
pub struct ApiKeyConfig {
    /// The identity's subject.
    pub subject: String,
    /// SHA-256 of the key (32 bytes).
    pub sha256: [u8; 32],
    /// The identity's groups.
    pub groups: Vec<String>,
    /// `agent`, `user` or `service`.
    pub kind: String,
}

impl ProxyConfig {
    /// Reads and validates a TOML config file.
    pub fn from_file(path: &Path) -> Result<ProxyConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Self::from_toml_str(&text, path)?;
        config.warnings.extend(exposure::check(path, &text));
        Ok(config)
    }

    /// Validates TOML text; `origin` names the file in errors and anchors relative paths.
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<ProxyConfig, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_owned(),
            message: e.to_string(),
        })?;
        Validator { origin }.validate(raw)
    }
}

// === impl Validator ===

pub(crate) struct Validator<'a> {
    pub(crate) origin: &'a Path,
}

impl Validator<'_> {
    pub(crate) fn invalid(
        &self,
        key: impl Into<String>,
        message: impl Into<String>,
        hint: &str,
    ) -> ConfigError {
        ConfigError::Invalid {
            path: self.origin.to_owned(),
            key: key.into(),
            message: message.into(),
            hint: hint.to_owned(),
        }
    }

    fn validate(&self, raw: RawConfig) -> Result<ProxyConfig, ConfigError> {
        let s = &raw.server;
        let listen = s.listen.parse::<SocketAddr>().map_err(|_| {
            self.invalid(
                "server.listen",
                format!("`{}` is not an address", s.listen),
                "use IP:PORT, e.g. \"127.0.0.1:8080\"",
            )
        })?;
        self.check_limits(s)?;
        let session_secret = self.session_secret(s)?;
        let (policy_dir, control_plane) =
            self.policy_source(raw.policy.dir.as_ref(), raw.control_plane.as_ref())?;
        if raw.upstreams.is_empty() {
            return Err(self.invalid(
                "upstreams",
                "no upstream is configured",
                "add an [[upstreams]] table with name and url (or command)",
            ));
        }
        let upstreams = self.upstreams(&raw.upstreams)?;
        let federations = self.federations(&raw.federations, &upstreams)?;
        Ok(ProxyConfig {
            listen,
            max_body_bytes: s.max_body_bytes,
            max_depth: s.max_depth,
            allowed_origins: s.allowed_origins.clone(),
            max_concurrent_requests: s.max_concurrent_requests,
            session_secret,
            request_timeout: Duration::from_secs(s.request_timeout_s),
            connect_timeout: Duration::from_millis(s.connect_timeout_ms.max(1)),
            shutdown_grace: Duration::from_secs(s.shutdown_grace_s),
            policy_dir,
            control_plane,
            eval_timeout: Duration::from_millis(raw.policy.eval_timeout_ms.max(1)),
            api_keys: self.api_keys(&raw.api_keys)?,
            jwt: self.jwt_issuers(raw.jwt)?,
            outbound_ca_certs: self.outbound_ca_certs(raw.outbound_tls)?,
            upstreams,
            federations,
            audit: self.audit(raw.audit)?,
            approvals: self.approvals(raw.approvals.as_ref())?,
            telemetry: self.telemetry(raw.telemetry)?,
            limits: self.limits(raw.limits, s.max_concurrent_requests)?,
            warnings: Vec::new(),
        })
    }

    fn approvals(&self, raw: Option<&RawApprovals>) -> Result<ApprovalsConfig, ConfigError> {
        let Some(raw) = raw else {
            return Ok(ApprovalsConfig::default());
        };
        if raw.keepalive_s == 0 {
            return Err(self.invalid(
                "approvals.keepalive_s",
                "must be above 0",
                "the default is 10",
            ));
        }
        if raw.max_pending == 0 {
            return Err(self.invalid(
                "approvals.max_pending",
                "must be above 0",
                "the default is 10000",
            ));
        }
        // Unset: 100, or all of max_pending when that is smaller.
        let per_identity = raw
            .max_pending_per_identity
            .unwrap_or_else(|| default_max_pending_per_identity().min(raw.max_pending));
        if per_identity == 0 || per_identity > raw.max_pending {
            return Err(self.invalid(
                "approvals.max_pending_per_identity",
                "must be between 1 and approvals.max_pending",
                "the default is 100 (or max_pending when that is smaller)",
            ));
        }
        Ok(ApprovalsConfig {
            keepalive: Duration::from_secs(raw.keepalive_s),
            max_pending: raw.max_pending,
            max_pending_per_identity: per_identity,
        })
    }

    fn check_limits(&self, s: &RawServer) -> Result<(), ConfigError> {
        if s.max_body_bytes == 0 {
            return Err(self.invalid(
                "server.max_body_bytes",
                "must be above 0",
                "the default is 4194304 (4 MiB)",
            ));
        }
        if s.max_concurrent_requests == 0 {
            return Err(self.invalid(
                "server.max_concurrent_requests",
                "must be above 0",
                "the default is 1024",
            ));
        }
        if s.max_depth == 0 {
            return Err(self.invalid("server.max_depth", "must be above 0", "the default is 64"));
        }
        if s.request_timeout_s == 0 {
            return Err(self.invalid(
                "server.request_timeout_s",
                "must be above 0",
                "the default is 300",
            ));
        }
        for (i, origin) in s.allowed_origins.iter().enumerate() {
            if origin.ends_with('/') || !origin.contains("://") {
                return Err(self.invalid(
                    format!("server.allowed_origins[{i}]"),
                    format!("`{origin}` is not an origin"),
                    "write scheme://host[:port] without a path, e.g. \"http://localhost:6274\"",
                ));
            }
        }
        Ok(())
    }

    fn session_secret(&self, s: &RawServer) -> Result<Option<Vec<u8>>, ConfigError> {
        Ok(match &s.session_secret {
            None => None,
            Some(v) => {
                let secret = self.resolve_env("server.session_secret", v)?;
                if secret.len() < 16 {
                    return Err(self.invalid(
                        "server.session_secret",
                        "is shorter than 16 bytes",
                        "use 32 random bytes, e.g. `openssl rand -hex 32`",
                    ));
                }
                Some(secret.into_bytes())
            }
        })
    }

    /// Relative paths are relative to the config file, not to the working directory.
    pub(crate) fn anchor(&self, dir: &Path) -> PathBuf {
        match self.origin.parent() {
            Some(parent) if dir.is_relative() && !parent.as_os_str().is_empty() => parent.join(dir),
            _ => dir.to_owned(),
        }
    }

    /// Replaces every `${NAME}` with the environment variable's value.
    pub(crate) fn resolve_env(&self, key: &str, value: &str) -> Result<String, ConfigError> {
        let mut out = String::with_capacity(value.len());
        let mut rest = value;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                return Err(self.invalid(
                    key,
                    "has an unclosed `${`",
                    "write environment references as ${NAME}",
                ));
            };
            let var = &after[..end];
            let resolved = std::env::var(var).map_err(|_| ConfigError::MissingEnv {
                path: self.origin.to_owned(),
                key: key.to_owned(),
                var: var.to_owned(),
            })?;
            out.push_str(&resolved);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[cfg(test)]
#[path = "config_test.rs"]
mod tests;
