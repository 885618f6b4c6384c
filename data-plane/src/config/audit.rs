//! `[audit]` and `[control_plane]`: where audit events go and what happens when they
//! cannot go anywhere.
//!
//! ```toml
//! [control_plane]                 # events stream to AuditService.Append
//! url = "http://127.0.0.1:7443"
//! token = "${AIRLOCK_NODE_TOKEN}"
//! node_id = "proxy-1"             # default: the host name
//! # ca_cert = "ca.pem"            # https:// with a private CA
//!
//! [audit]
//! buffer_events = 10000           # events held until acknowledged
//! on_full = "refuse"              # or "allow": pass calls on, drop (counted, logged) events
//! file = "audit.jsonl"            # without [control_plane]: append JSON lines here
//! last_four = false               # keep a card's last four digits in replacements
//! ```
//! Without `[control_plane]` and without `file`, events are only logged at debug
//! level (target `airlock::audit`).

use super::Validator;
use crate::config::ConfigError;
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAudit {
    buffer_events: Option<usize>,
    on_full: Option<String>,
    file: Option<PathBuf>,
    #[serde(default)]
    last_four: bool,
}

/// `[control_plane]`; the bundle keys are read by the bundle sync.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawControlPlane {
    url: String,
    token: String,
    ca_cert: Option<PathBuf>,
    node_id: Option<String>,
    #[serde(default)]
    bundle_public_keys: Vec<PathBuf>,
    bundle_cache_dir: Option<PathBuf>,
    heartbeat_s: Option<u64>,
}

/// What to do with a new call when the audit backlog is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFull {
    /// Refuse it with a JSON-RPC error (fail closed, the default).
    Refuse,
    /// Let it through; events over twice the buffer are dropped, counted and logged.
    Allow,
}

/// Validated `[audit]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    /// Events held in memory until acknowledged.
    pub buffer_events: usize,
    /// What to do when the buffer is full.
    pub on_full: OnFull,
    /// JSONL file used when no control plane is configured.
    pub file: Option<PathBuf>,
    /// Keep a card's last four digits in replacements.
    pub last_four: bool,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            buffer_events: 10_000,
            on_full: OnFull::Refuse,
            file: None,
            last_four: false,
        }
    }
}

/// Validated `[control_plane]`.
#[derive(Debug, Clone)]
pub struct ControlPlaneSettings {
    /// The control plane's gRPC URL.
    pub url: String,
    /// The node's bearer token (environment references resolved).
    pub token: String,
    /// A PEM CA certificate for https:// URLs.
    pub ca_cert: Option<PathBuf>,
    /// This node's id in audit events and reports.
    pub node_id: String,
    /// Keys bundles must be signed with.
    pub bundle_public_keys: Vec<PathBuf>,
    /// Where the last verified bundle is cached.
    pub bundle_cache_dir: Option<PathBuf>,
    /// Heartbeat interval in seconds.
    pub heartbeat_s: u64,
}

impl Validator<'_> {
    pub(super) fn audit(&self, raw: RawAudit) -> Result<AuditConfig, ConfigError> {
        let mut config = AuditConfig {
            file: raw.file.as_deref().map(|f| self.anchor(f)),
            last_four: raw.last_four,
            ..AuditConfig::default()
        };
        if let Some(n) = raw.buffer_events {
            if n == 0 {
                return Err(self.invalid(
                    "audit.buffer_events",
                    "must be above 0",
                    "the default is 10000",
                ));
            }
            config.buffer_events = n;
        }
        config.on_full = match raw.on_full.as_deref() {
            None | Some("refuse") => OnFull::Refuse,
            Some("allow") => OnFull::Allow,
            Some(other) => {
                return Err(self.invalid(
                    "audit.on_full",
                    format!("`{other}` is not a mode"),
                    "use \"refuse\" (fail closed) or \"allow\"",
                ))
            }
        };
        Ok(config)
    }

    pub(super) fn control_plane(
        &self,
        raw: Option<RawControlPlane>,
    ) -> Result<Option<ControlPlaneSettings>, ConfigError> {
        let Some(raw) = raw else { return Ok(None) };
        if !(raw.url.starts_with("http://") || raw.url.starts_with("https://")) {
            return Err(self.invalid(
                "control_plane.url",
                format!("`{}` is not an http(s) URL", raw.url),
                "e.g. \"http://127.0.0.1:7443\"",
            ));
        }
        let token = self.resolve_env("control_plane.token", &raw.token)?;
        if token.trim().is_empty() {
            return Err(self.invalid(
                "control_plane.token",
                "is empty",
                "use a token with the node role, e.g. token = \"${AIRLOCK_NODE_TOKEN}\"",
            ));
        }
        let node_id = match raw.node_id {
            Some(id) if !id.trim().is_empty() => id,
            _ => std::env::var("HOSTNAME").unwrap_or_else(|_| "airlock-proxy".to_owned()),
        };
        Ok(Some(ControlPlaneSettings {
            url: raw.url,
            token,
            ca_cert: raw.ca_cert.as_deref().map(|p| self.anchor(p)),
            node_id,
            bundle_public_keys: raw
                .bundle_public_keys
                .iter()
                .map(|p| self.anchor(p))
                .collect(),
            bundle_cache_dir: raw.bundle_cache_dir.as_deref().map(|p| self.anchor(p)),
            heartbeat_s: raw.heartbeat_s.unwrap_or(10),
        }))
    }
}
