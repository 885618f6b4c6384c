//! The control plane's configuration: a TOML file, validated into typed values at
//! start-up so that a typo fails with the file, the key and a hint.
//!
//! ```toml
//! listen = "127.0.0.1:7443"          # default
//! data_dir = "airlock-data"          # default: ./airlock-data in the working directory
//! trusted_keys = ["keys/release.pub"] # written by `airlock bundle keygen`
//! max_bundle_bytes = 16777216        # uncompressed, default 16 MiB
//! metrics_listen = "127.0.0.1:9464"  # optional: Prometheus GET /metrics (plain HTTP)
//!
//! [tls]                              # optional; plain HTTP/2 without it
//! cert = "tls/server.crt"            # PEM
//! key = "tls/server.key"             # PEM
//!
//! [audit]                          # optional; a checkpoint is signed for every commit
//! signing_key = "/etc/airlock/audit-signing.key"  # ed25519 seed, hex, 0600; generated when absent;
//!                                    # must be outside data_dir; default: <data_dir>.audit-signing.key
//! origin = "audit.example.com/prod"  # the log's name in its checkpoints; default from the key
//! witness_dir = "/mnt/witness/airlock"  # each new checkpoint written there (file `checkpoint`)
//! checkpoint_webhooks = ["http://witness.internal/airlock"]  # each new checkpoint POSTed
//! retention_days = 365               # prune older records (signed record of the range); 0/absent: keep
//!
//! [[tokens]]
//! subject = "ada"
//! sha256 = "<printf %s TOKEN | sha256sum>"
//! roles = ["admin"]                  # admin, reviewer, auditor, node
//! groups = []                        # reviewer groups, e.g. ["dba"]
//!
//! [ui]                               # optional: the reviewers' web page
//! listen = "127.0.0.1:7480"          # plain HTTP; the page is at /ui
//! public_url = "https://airlock.example/ui"  # linked from webhooks
//!
//! [webhooks]                         # optional: POSTed on each new approval request
//! urls = ["https://hooks.slack.com/services/..."]
//!
//! [telemetry]                        # optional: OTLP/gRPC span export
//! otlp_endpoint = "http://127.0.0.1:4317"  # or OTEL_EXPORTER_OTLP_ENDPOINT
//! service_name = "airlock-control-plane"   # default
//! sample_ratio = 1.0
//! ```
//! Relative paths in the file are relative to the file's directory.

use crate::auth::TokenEntry;
use crate::ControlPlaneError;
use airlock_bundle::{Limits, PublicKey, DEFAULT_MAX_BYTES};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// `service.name` of exported spans when `[telemetry]` does not set one.
pub const DEFAULT_SERVICE_NAME: &str = "airlock-control-plane";

/// The default listen address (loopback; set `listen` to expose it).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7443";

/// Validated configuration of a control plane.
#[derive(Debug, Clone)]
pub struct ControlPlaneConfig {
    /// Address to listen on (port 0: any free port; see `ControlPlane::local_addr`).
    pub listen: SocketAddr,
    /// The sled directory.
    pub data_dir: PathBuf,
    /// Public keys a bundle must be signed with (any one of them).
    pub trusted_keys: Vec<PublicKey>,
    /// The bearer tokens, hashed, with their roles.
    pub tokens: Vec<TokenEntry>,
    /// Limits on published archives.
    pub limits: Limits,
    /// PEM certificate and key; `None` serves plain HTTP/2.
    pub tls: Option<TlsFiles>,
    /// The audit log's checkpoints and signing key (`[audit]`).
    pub audit: crate::AuditSettings,
    /// Where to serve Prometheus `GET /metrics` (plain HTTP), if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// Where the reviewers' web page listens (`[ui] listen`); `None`: no page.
    pub ui_listen: Option<SocketAddr>,
    /// The page's URL as reviewers reach it (`[ui] public_url`), linked from webhooks.
    pub ui_public_url: Option<String>,
    /// URLs POSTed on each new approval request (`[webhooks] urls`).
    pub webhook_urls: Vec<String>,
    /// Span export (`[telemetry]`).
    pub telemetry: airlock_telemetry::TelemetryConfig,
    /// The file this configuration was read from, if any (its permissions are
    /// checked at start-up when it holds secrets).
    pub source: Option<PathBuf>,
    /// Things to tell the operator once logging is up (deprecated keys).
    pub notices: Vec<String>,
}

/// A PEM certificate chain and private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain (PEM).
    pub cert: PathBuf,
    /// The private key (PEM).
    pub key: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    #[serde(default)]
    trusted_keys: Vec<PathBuf>,
    max_bundle_bytes: Option<u64>,
    tls: Option<RawTls>,
    #[serde(default)]
    tokens: Vec<TokenEntry>,
    audit: Option<RawAudit>,
    metrics_listen: Option<String>,
    ui: Option<RawUi>,
    webhooks: Option<RawWebhooks>,
    #[serde(default)]
    telemetry: airlock_telemetry::RawTelemetry,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    /// Ignored since checkpoints are signed for every commit (kept so older files load).
    checkpoint_every: Option<u64>,
    /// Ignored, as `checkpoint_every`.
    checkpoint_interval_s: Option<u64>,
    signing_key: Option<PathBuf>,
    origin: Option<String>,
    retention_days: Option<u64>,
    witness_dir: Option<PathBuf>,
    #[serde(default)]
    checkpoint_webhooks: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUi {
    listen: String,
    public_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhooks {
    #[serde(default)]
    urls: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: PathBuf,
    key: PathBuf,
}

impl ControlPlaneConfig {
    /// A configuration built in code (for `airlock dev` and tests): no TLS, default limits.
    pub fn new(
        listen: SocketAddr,
        data_dir: PathBuf,
        trusted_keys: Vec<PublicKey>,
        tokens: Vec<TokenEntry>,
    ) -> ControlPlaneConfig {
        ControlPlaneConfig {
            listen,
            data_dir,
            trusted_keys,
            tokens,
            limits: Limits::default(),
            tls: None,
            audit: crate::AuditSettings::default(),
            metrics_listen: None,
            ui_listen: None,
            ui_public_url: None,
            webhook_urls: Vec::new(),
            telemetry: airlock_telemetry::TelemetryConfig::disabled(DEFAULT_SERVICE_NAME),
            source: None,
            notices: Vec::new(),
        }
    }

    /// Logs the notices gathered while reading the file, and warns about files
    /// holding secrets that others can read: the config file when it lists
    /// webhook URLs (which often embed a token), the TLS key, the audit key.
    pub fn log_start_warnings(&self) {
        for notice in &self.notices {
            tracing::warn!("{notice}");
        }
        let has_urls = !self.webhook_urls.is_empty() || !self.audit.checkpoint_webhooks.is_empty();
        if let (Some(file), true) = (&self.source, has_urls) {
            crate::secrets::warn_if_exposed(
                file,
                "the control plane's config (it lists webhook URLs)",
            );
        }
        if let Some(tls) = &self.tls {
            crate::secrets::warn_if_exposed(&tls.key, "the TLS private key");
        }
    }

    /// Reads and validates a TOML configuration file.
    pub fn from_file(path: &Path) -> Result<ControlPlaneConfig, ControlPlaneError> {
        let text = std::fs::read_to_string(path).map_err(|err| ControlPlaneError::Config {
            file: path.to_path_buf(),
            message: format!("cannot read it ({err}); pass an existing file to --config"),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut config = Self::from_toml(&text, base, path)?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parses and validates TOML text; relative paths are resolved against `base`,
    /// errors name `file`.
    pub fn from_toml(
        text: &str,
        base: &Path,
        file: &Path,
    ) -> Result<ControlPlaneConfig, ControlPlaneError> {
        let bad = |message: String| ControlPlaneError::Config {
            file: file.to_path_buf(),
            message,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|err| bad(format!("{err}")))?;
        let listen_text = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen = listen_text.parse().map_err(|_| {
            bad(format!(
                "listen = {listen_text:?} is not an address; use IP:PORT, e.g. \"127.0.0.1:7443\""
            ))
        })?;
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let data_dir = raw
            .data_dir
            .as_deref()
            .map_or_else(|| PathBuf::from("airlock-data"), resolve);
        if raw.trusted_keys.is_empty() {
            return Err(bad(
                "trusted_keys is empty: no bundle could ever be accepted; create a key with `airlock bundle keygen -o PREFIX` and list PREFIX.pub".to_owned(),
            ));
        }
        let mut trusted_keys = Vec::new();
        for key in &raw.trusted_keys {
            let key = PublicKey::from_file(&resolve(key))
                .map_err(|err| bad(format!("trusted_keys: {err}")))?;
            trusted_keys.push(key);
        }
        validate_tokens(&raw.tokens).map_err(bad)?;
        let max_bytes = raw.max_bundle_bytes.unwrap_or(DEFAULT_MAX_BYTES);
        if max_bytes == 0 {
            return Err(bad(
                "max_bundle_bytes must be positive; omit it for 16 MiB".to_owned()
            ));
        }
        let tls = raw.tls.map(|t| TlsFiles {
            cert: resolve(&t.cert),
            key: resolve(&t.key),
        });
        let (audit, notices) = audit_settings(raw.audit, &resolve).map_err(bad)?;
        let metrics_listen = match raw.metrics_listen.as_deref() {
            None => None,
            Some(text) => Some(text.parse().map_err(|_| {
                bad(format!("metrics_listen = {text:?} is not an address; use IP:PORT, e.g. \"127.0.0.1:9464\""))
            })?),
        };
        let ui_listen = match &raw.ui {
            Some(ui) => Some(ui.listen.parse().map_err(|_| {
                bad(format!(
                    "[ui] listen = {:?} is not an address; use IP:PORT, e.g. \"127.0.0.1:7480\"",
                    ui.listen
                ))
            })?),
            None => None,
        };
        let webhook_urls = raw.webhooks.map(|w| w.urls).unwrap_or_default();
        if let Some(url) = webhook_urls.iter().find(|u| !u.starts_with("http://")) {
            return Err(bad(format!(
                "[webhooks] urls: {url:?} is not an http:// URL; only plain http:// is supported for now (use a local relay for https)"
            )));
        }
        let telemetry = raw
            .telemetry
            .validate(DEFAULT_SERVICE_NAME, |name| std::env::var(name).ok())
            .map_err(|e| bad(e.to_string()))?;
        Ok(ControlPlaneConfig {
            telemetry,
            listen,
            data_dir,
            trusted_keys,
            tokens: raw.tokens,
            limits: Limits { max_bytes },
            tls,
            audit,
            metrics_listen,
            ui_listen,
            ui_public_url: raw.ui.and_then(|u| u.public_url),
            webhook_urls,
            source: None,
            notices,
        })
    }
}

fn audit_settings(
    raw: Option<RawAudit>,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<(crate::AuditSettings, Vec<String>), String> {
    let mut settings = crate::AuditSettings::default();
    let mut notices = Vec::new();
    let Some(raw) = raw else {
        return Ok((settings, notices));
    };
    for (key, set) in [
        ("checkpoint_every", raw.checkpoint_every.is_some()),
        ("checkpoint_interval_s", raw.checkpoint_interval_s.is_some()),
    ] {
        if set {
            notices.push(format!(
                "[audit] {key} is ignored: a checkpoint is now signed for every commit; remove it"
            ));
        }
    }
    if let Some(origin) = &raw.origin {
        if origin.is_empty() || origin.chars().any(char::is_whitespace) || origin.contains('+') {
            return Err(format!("audit.origin = {origin:?} cannot name a log: use a non-empty name without spaces or '+', e.g. \"audit.example.com/prod\""));
        }
    }
    if let Some(url) = raw
        .checkpoint_webhooks
        .iter()
        .find(|u| !u.starts_with("http://"))
    {
        return Err(format!("audit.checkpoint_webhooks: {url:?} is not an http:// URL; only plain http:// is supported for now (use a local relay for https)"));
    }
    settings.signing_key = raw.signing_key.as_deref().map(resolve);
    settings.origin = raw.origin;
    settings.witness_dir = raw.witness_dir.as_deref().map(resolve);
    settings.checkpoint_webhooks = raw.checkpoint_webhooks;
    settings.retention = match raw.retention_days {
        None | Some(0) => None,
        Some(days) => Some(std::time::Duration::from_secs(days.saturating_mul(86_400))),
    };
    Ok((settings, notices))
}

fn validate_tokens(tokens: &[TokenEntry]) -> Result<(), String> {
    if tokens.is_empty() {
        return Err("no [[tokens]]: nobody could call the control plane; add one with subject, sha256 and roles".to_owned());
    }
    let mut seen = std::collections::HashSet::new();
    for (i, token) in tokens.iter().enumerate() {
        let at = format!("tokens[{i}] ({})", token.subject);
        if token.subject.trim().is_empty() {
            return Err(format!(
                "tokens[{i}].subject is empty; name who holds the token"
            ));
        }
        if token.sha256.len() != 64 || !token.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "{at}.sha256 is not 64 hex digits; put the token's hash, not the token: `printf %s TOKEN | sha256sum`"
            ));
        }
        if token.roles.is_empty() {
            return Err(format!(
                "{at}.roles is empty; give it admin, reviewer, auditor or node"
            ));
        }
        if !seen.insert(token.sha256.to_ascii_lowercase()) {
            return Err(format!(
                "{at}.sha256 is listed twice; each token must be distinct"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    fn dir_with_key() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        airlock_bundle::write_keypair(&dir.path().join("release")).unwrap();
        dir
    }

    const TOKEN: &str = "[[tokens]]\nsubject = \"ada\"\nsha256 = \"2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b\"\nroles = [\"admin\"]\n";

    #[test]
    fn a_full_file_is_validated_into_typed_values() {
        let dir = dir_with_key();
        let text = format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"state\"\ntrusted_keys = [\"release.pub\"]\nmax_bundle_bytes = 1024\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n{TOKEN}"
        );
        let path = dir.path().join("cp.toml");
        std::fs::write(&path, text).unwrap();
        let config = ControlPlaneConfig::from_file(&path).unwrap();
        assert_eq!(config.listen.port(), 0);
        assert_eq!(config.data_dir, dir.path().join("state"));
        assert_eq!(config.trusted_keys.len(), 1);
        assert_eq!(config.limits.max_bytes, 1024);
        assert_eq!(config.tls.unwrap().cert, dir.path().join("c.pem"));
        assert_eq!(config.tokens[0].roles, [Role::Admin]);
        assert_eq!(config.telemetry.service_name, DEFAULT_SERVICE_NAME);
    }

    #[test]
    fn the_audit_table_names_the_key_origin_and_witnesses() {
        let dir = dir_with_key();
        let text = format!(
            "trusted_keys = [\"release.pub\"]\n{TOKEN}[audit]\nsigning_key = \"keys/audit.key\"\norigin = \"audit.example/prod\"\nwitness_dir = \"w\"\ncheckpoint_webhooks = [\"http://127.0.0.1:9/cp\"]\ncheckpoint_every = 10\n"
        );
        let config =
            ControlPlaneConfig::from_toml(&text, dir.path(), Path::new("cp.toml")).unwrap();
        assert_eq!(
            config.audit.signing_key,
            Some(dir.path().join("keys/audit.key"))
        );
        assert_eq!(config.audit.origin.as_deref(), Some("audit.example/prod"));
        assert_eq!(config.audit.witness_dir, Some(dir.path().join("w")));
        assert_eq!(config.audit.checkpoint_webhooks.len(), 1);
        assert!(config.notices[0].contains("checkpoint_every is ignored"));
        // Without [audit] signing_key the key sits beside the data directory.
        let plain = ControlPlaneConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            PathBuf::from("/var/lib/airlock"),
            vec![],
            vec![],
        );
        assert_eq!(
            plain.audit.key_path(&plain.data_dir),
            PathBuf::from("/var/lib/airlock.audit-signing.key")
        );
    }

    #[test]
    fn telemetry_names_the_service_and_the_collector() {
        let dir = dir_with_key();
        let text = format!(
            "trusted_keys = [\"release.pub\"]\n{TOKEN}[telemetry]\notlp_endpoint = \"http://127.0.0.1:4317\"\nservice_name = \"cp-eu\"\n"
        );
        let config =
            ControlPlaneConfig::from_toml(&text, dir.path(), Path::new("cp.toml")).unwrap();
        assert_eq!(
            config.telemetry.otlp_endpoint.as_deref(),
            Some("http://127.0.0.1:4317")
        );
        assert_eq!(config.telemetry.service_name, "cp-eu");
    }

    #[test]
    fn mistakes_name_the_key_and_say_what_to_do() {
        let dir = dir_with_key();
        let keys = "trusted_keys = [\"release.pub\"]\n";
        let cases = [
            (format!("{keys}{TOKEN}lisen = \"x\"\n"), "unknown field"),
            (
                format!("listen = \"nope\"\n{keys}{TOKEN}"),
                "is not an address",
            ),
            (TOKEN.to_owned(), "trusted_keys is empty"),
            (
                format!("trusted_keys = [\"missing.pub\"]\n{TOKEN}"),
                "missing.pub",
            ),
            (keys.to_owned(), "no [[tokens]]"),
            (
                format!("{keys}{}", TOKEN.replace("2bb8", "zz")),
                "64 hex digits",
            ),
            (
                format!("{keys}{}", TOKEN.replace("[\"admin\"]", "[\"root\"]")),
                "unknown variant",
            ),
            (format!("{keys}{TOKEN}{TOKEN}"), "listed twice"),
            (
                format!("{keys}{TOKEN}[telemetry]\nsample_ratio = 3.0\n"),
                "key `telemetry.sample_ratio`: 3 is not between 0.0 and 1.0; hint:",
            ),
            (
                format!("{keys}{TOKEN}[telemetry]\notlp_endpoint = \"collector\"\n"),
                "key `telemetry.otlp_endpoint`",
            ),
            (
                format!("{keys}{TOKEN}[audit]\norigin = \"a b\"\n"),
                "cannot name a log",
            ),
            (
                format!("{keys}{TOKEN}[audit]\ncheckpoint_webhooks = [\"https://x\"]\n"),
                "not an http:// URL",
            ),
        ];
        for (text, expected) in cases {
            let err =
                ControlPlaneConfig::from_toml(&text, dir.path(), Path::new("cp.toml")).unwrap_err();
            let message = err.to_string();
            assert!(message.starts_with("cp.toml: "), "{message}");
            assert!(message.contains(expected), "{text}\n=> {message}");
        }
    }
}
