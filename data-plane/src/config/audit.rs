//! `[audit]`: where audit events go and what happens when they cannot go anywhere.
//! With `[control_plane]` (see `control::config`) events stream to
//! `AuditService.Append` over the node's link.
//!
//! ```toml
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
}
