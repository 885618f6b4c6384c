//! The `[control_plane]` table of the proxy's config, and the rule that a proxy
//! takes its policy from exactly one place: `[policy] dir` or the control plane.
//!
//! ```toml
//! [control_plane]
//! url = "http://127.0.0.1:7443"
//! token = "${AIRLOCK_NODE_TOKEN}"          # a token with the role node
//! ca_cert = "ca.pem"                        # optional, for https URLs
//! node_id = "proxy-a"                       # optional; default: hostname + random suffix
//! bundle_public_keys = ["keys/bundle.pub"]  # from `airlock bundle keygen`
//! bundle_cache_dir = "cache"                # optional: start from the last good bundle
//! audit_checkpoint_file = "cache/audit-checkpoint"  # optional; default: in bundle_cache_dir
//! heartbeat_s = 10
//! ```

use crate::config::{ConfigError, Validator};
use airlock_bundle::PublicKey;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// Longest node id the control plane accepts.
const MAX_NODE_ID: usize = 128;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawControlPlane {
    url: String,
    token: String,
    ca_cert: Option<PathBuf>,
    node_id: Option<String>,
    #[serde(default)]
    bundle_public_keys: Vec<PathBuf>,
    bundle_cache_dir: Option<PathBuf>,
    audit_checkpoint_file: Option<PathBuf>,
    #[serde(default = "default_heartbeat_s")]
    heartbeat_s: u64,
}

fn default_heartbeat_s() -> u64 {
    10
}

/// A validated `[control_plane]` table.
#[derive(Debug, Clone)]
pub struct ControlPlaneConfig {
    /// The control plane's gRPC URL (`http://` or `https://`).
    pub url: String,
    /// The node's bearer token (role `node`), env references resolved.
    pub token: String,
    /// A PEM CA certificate to trust for an `https://` URL (default: system roots).
    pub ca_cert: Option<PathBuf>,
    /// This node's id in `airlock nodes list`.
    pub node_id: String,
    /// The keys a bundle must be signed with (any one of them).
    pub bundle_keys: Vec<PublicKey>,
    /// Where the last good bundle archive is kept, if anywhere.
    pub bundle_cache_dir: Option<PathBuf>,
    /// Where the newest audit checkpoint the control plane gave this node is kept
    /// (`audit_checkpoint_file`, default `<bundle_cache_dir>/audit-checkpoint`);
    /// without either it is kept in memory only, and a restarted node trusts the
    /// log it finds.
    pub checkpoint_file: Option<PathBuf>,
    /// How often the node reports its status when nothing changes.
    pub heartbeat: Duration,
}

impl Validator<'_> {
    /// `[policy] dir` or `[control_plane]`: exactly one.
    pub(crate) fn policy_source(
        &self,
        policy_dir: Option<&PathBuf>,
        control_plane: Option<&RawControlPlane>,
    ) -> Result<(Option<PathBuf>, Option<ControlPlaneConfig>), ConfigError> {
        match (policy_dir, control_plane) {
            (Some(_), Some(_)) => Err(self.invalid(
                "policy.dir",
                "is set together with [control_plane]; a proxy takes its policy from one place",
                "remove `dir` from [policy] to take bundles from the control plane, or remove [control_plane] to serve a local directory",
            )),
            (None, None) => Err(self.invalid(
                "policy.dir",
                "is missing and there is no [control_plane]; the proxy would have no policy",
                "set [policy] dir = \"policies\", or add a [control_plane] table (see `airlock proxy --help`)",
            )),
            (Some(dir), None) => Ok((Some(self.anchor(dir)), None)),
            (None, Some(cp)) => Ok((None, Some(self.control_plane(cp)?))),
        }
    }

    fn control_plane(&self, raw: &RawControlPlane) -> Result<ControlPlaneConfig, ConfigError> {
        let url = raw.url.trim().to_owned();
        let valid_url = (url.starts_with("http://") || url.starts_with("https://"))
            && url.parse::<http::Uri>().is_ok_and(|u| u.host().is_some());
        if !valid_url {
            return Err(self.invalid(
                "control_plane.url",
                format!("`{url}` is not an http:// or https:// URL"),
                "e.g. \"http://127.0.0.1:7443\" (https:// for TLS)",
            ));
        }
        let token = self.resolve_env("control_plane.token", &raw.token)?;
        if token.trim().is_empty() || http::HeaderValue::from_str(&token).is_err() {
            return Err(self.invalid(
                "control_plane.token",
                "is empty or has characters not allowed in a header",
                "use the node token the control plane's [[tokens]] lists with roles = [\"node\"]",
            ));
        }
        let node_id = match &raw.node_id {
            Some(id) => self.node_id(id)?,
            None => default_node_id(),
        };
        if raw.bundle_public_keys.is_empty() {
            return Err(self.invalid(
                "control_plane.bundle_public_keys",
                "is empty: no bundle could ever be verified",
                "list the .pub files written by `airlock bundle keygen` (the same keys the control plane trusts)",
            ));
        }
        let mut bundle_keys = Vec::with_capacity(raw.bundle_public_keys.len());
        for (i, path) in raw.bundle_public_keys.iter().enumerate() {
            let key = PublicKey::from_file(&self.anchor(path)).map_err(|e| {
                self.invalid(
                    format!("control_plane.bundle_public_keys[{i}]"),
                    e.to_string(),
                    "point it at a .pub file written by `airlock bundle keygen`",
                )
            })?;
            bundle_keys.push(key);
        }
        if raw.heartbeat_s == 0 {
            return Err(self.invalid(
                "control_plane.heartbeat_s",
                "must be above 0",
                "the default is 10",
            ));
        }
        Ok(ControlPlaneConfig {
            url,
            token,
            ca_cert: raw.ca_cert.as_deref().map(|p| self.anchor(p)),
            node_id,
            bundle_keys,
            bundle_cache_dir: raw.bundle_cache_dir.as_deref().map(|p| self.anchor(p)),
            checkpoint_file: match (&raw.audit_checkpoint_file, &raw.bundle_cache_dir) {
                (Some(file), _) => Some(self.anchor(file)),
                (None, Some(dir)) => Some(self.anchor(dir).join(crate::record::CHECKPOINT_FILE)),
                (None, None) => None,
            },
            heartbeat: Duration::from_secs(raw.heartbeat_s),
        })
    }

    fn node_id(&self, id: &str) -> Result<String, ConfigError> {
        if id.is_empty() || id.len() > MAX_NODE_ID || !id.chars().all(node_id_char) {
            return Err(self.invalid(
                "control_plane.node_id",
                format!("`{id}` is not a valid node id"),
                "use 1 to 128 characters among A-Z a-z 0-9 . _ - :",
            ));
        }
        Ok(id.to_owned())
    }
}

fn node_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':')
}

/// The host name plus a random suffix, so two processes on one host stay distinct.
pub(crate) fn default_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .filter(|c| node_id_char(*c))
        .take(MAX_NODE_ID - 9)
        .collect();
    let host = if host.is_empty() {
        "proxy".to_owned()
    } else {
        host
    };
    format!("{host}-{:08x}", rand::random::<u32>())
}
