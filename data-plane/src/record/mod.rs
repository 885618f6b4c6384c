//! Stage 8, record: every message that crosses the proxy, in both directions and
//! whatever its verdict, becomes an [`AuditEvent`] with a masked payload, buffered
//! (bounded) until its sink acknowledges it durably.
//!
//! Sinks, in order of preference: the control plane's `AuditService.Append` (with
//! `[control_plane]`), a local JSONL file (`[audit] file`), else a debug log line
//! (target `airlock::audit`). When the backlog is full a new call is refused with
//! `AUDIT_UNAVAILABLE` (fail closed) unless `[audit] on_full = "allow"`.

mod backlog;
mod checkpoint;
mod file;
mod ship;

pub use checkpoint::CHECKPOINT_FILE;

use crate::config::{AuditConfig, OnFull};
use crate::control::ControlPlaneLink;
use crate::ctx::RequestCtx;
use crate::decode::Message;
use crate::error::ProxyError;
use crate::mask::MaskSet;
use airlock_policy::{Direction, Evaluation};
use backlog::Backlog;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One message as recorded (see `proto/airlock/v1/audit.proto` for each field).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Unique, time-ordered id (UUIDv7 layout: 48-bit ms, then random bits).
    pub event_id: String,
    /// The proxy node.
    pub node_id: String,
    /// When the proxy saw the message, ms since the Unix epoch.
    pub unix_ms: u64,
    /// The MCP session id as the agent sees it.
    pub session_id: String,
    /// The caller's subject.
    pub identity: String,
    /// The upstream server's name.
    pub server: String,
    /// `client_to_server` or `server_to_client`.
    pub direction: String,
    /// The JSON-RPC method (empty for a response).
    pub method: String,
    /// The tool called (or answered).
    pub tool: String,
    /// The JSON-RPC id as JSON text (empty for a notification).
    pub jsonrpc_id: String,
    /// The message, masked with every detector, as JSON text.
    pub payload_json: String,
    /// `allow`, `deny` or `require_approval`.
    pub verdict: String,
    /// The decision's reasons.
    pub reasons: Vec<String>,
    /// The bundle revision that decided.
    pub revision: String,
    /// The approval a held request waits on or was released by, and on the answer
    /// the approval that released it (filled by the hold stage).
    pub approval_id: Option<String>,
    /// Time spent deciding, µs.
    pub decide_us: u64,
    /// Time to the upstream's response head, ms (responses only).
    pub upstream_ms: u64,
}

impl AuditEvent {
    /// The event of `message` seen on `ctx`'s request, before its decision is known;
    /// `session` is the session id the agent sees.
    pub(crate) fn of(
        ctx: &RequestCtx,
        direction: Direction,
        message: &Message,
        session: &str,
    ) -> AuditEvent {
        AuditEvent {
            session_id: session.to_owned(),
            identity: ctx.identity.subject.clone(),
            server: ctx.upstream.name.clone(),
            direction: direction_name(direction).to_owned(),
            method: message.method().unwrap_or_default().to_owned(),
            tool: message.target_name().unwrap_or_default().to_owned(),
            jsonrpc_id: message.id().map(Value::to_string).unwrap_or_default(),
            ..AuditEvent::default()
        }
    }

    /// Adds the decision that was made about the message.
    pub(crate) fn decided(mut self, evaluation: &Evaluation) -> AuditEvent {
        self.verdict = evaluation.decision.verdict.as_str().to_owned();
        self.reasons.clone_from(&evaluation.decision.reasons);
        self.revision = evaluation.revision.clone().unwrap_or_default();
        self.decide_us = evaluation.elapsed.as_micros() as u64;
        self
    }
}

fn direction_name(direction: Direction) -> &'static str {
    match direction {
        Direction::ClientToServer => "client_to_server",
        Direction::ServerToClient => "server_to_client",
    }
}

/// A time-ordered unique id: 48 bits of Unix milliseconds, version 7, 74 random bits.
pub fn event_id() -> String {
    let ms = unix_ms() & 0xFFFF_FFFF_FFFF;
    let random: u128 = rand::random();
    let value = (u128::from(ms) << 80)
        | (0x7 << 76)
        | ((random >> 54) & 0x0FFF) << 64
        | (0b10 << 62)
        | (random & 0x3FFF_FFFF_FFFF_FFFF);
    let hex = format!("{value:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// The record stage's handle, shared by every request.
#[derive(Debug)]
pub(crate) struct Recorder {
    node_id: String,
    backlog: Option<Arc<Backlog>>,
    on_full: OnFull,
    storage_mask: MaskSet,
    last_four: bool,
}

impl Recorder {
    /// Builds the recorder and starts its sink (needs a Tokio runtime).
    pub(crate) fn start(
        config: &AuditConfig,
        link: Option<ControlPlaneLink>,
    ) -> Result<Recorder, ProxyError> {
        // Compile the masking rules and load the phone metadata now rather than on
        // the first request (~100 ms); a rule that does not compile stops start-up.
        crate::mask::warm_up().map_err(|e| ProxyError::Internal(e.to_string()))?;
        let backlog = Arc::new(Backlog::new(config.buffer_events));
        let (node_id, backlog) = match (link, &config.file) {
            (Some(link), _) => {
                let node = link.node_id().to_owned();
                let keeper = checkpoint::CheckpointKeeper::start(link.clone())?;
                tokio::spawn(ship::ship(link, Arc::clone(&backlog), keeper));
                (node, Some(backlog))
            }
            (None, Some(path)) => {
                let sink = file::FileSink::open(path)?;
                tokio::spawn(sink.run(Arc::clone(&backlog)));
                (local_node_id(), Some(backlog))
            }
            (None, None) => (local_node_id(), None),
        };
        Ok(Recorder {
            node_id,
            backlog,
            on_full: config.on_full,
            storage_mask: MaskSet::all(config.last_four),
            last_four: config.last_four,
        })
    }

    /// Whether events are kept anywhere (or at least logged): when not, the
    /// response path may skip parsing bodies just to record them.
    pub(crate) fn enabled(&self) -> bool {
        self.backlog.is_some() || tracing::enabled!(target: "airlock::audit", tracing::Level::DEBUG)
    }

    /// Whether `last_four` is configured (also used for masks shown to the agent).
    pub(crate) fn last_four(&self) -> bool {
        self.last_four
    }

    /// Refuses a new call when the backlog is full and `on_full` is `refuse`:
    /// a call that could not be recorded must not happen (promise 3).
    pub(crate) fn admit(&self) -> Result<(), ProxyError> {
        match &self.backlog {
            Some(backlog) if self.on_full == OnFull::Refuse && !backlog.has_room() => {
                Err(ProxyError::AuditUnavailable(backlog.len()))
            }
            _ => Ok(()),
        }
    }

    /// Events waiting for an acknowledgement (the backlog gauge).
    pub(crate) fn backlog(&self) -> usize {
        self.backlog.as_ref().map_or(0, |b| b.len())
    }

    /// Events dropped because the backlog overflowed.
    pub(crate) fn dropped(&self) -> u64 {
        self.backlog.as_ref().map_or(0, |b| b.dropped())
    }

    /// Masks `message` for storage (every family; the JSON-RPC envelope stays as
    /// sent, so the record's id matches the wire), completes `event` and queues it.
    pub(crate) fn record(&self, mut event: AuditEvent, message: &Value) {
        // Without a sink the event only goes to a debug log line: when that is off
        // too, masking and serializing it would be work nobody sees.
        if !self.enabled() {
            return;
        }
        let mut payload = message.clone();
        self.storage_mask.apply(&mut payload);
        event.payload_json = serde_json::to_string(&payload).unwrap_or_default();
        event.event_id = event_id();
        event.node_id.clone_from(&self.node_id);
        event.unix_ms = unix_ms();
        match &self.backlog {
            None => tracing::debug!(target: "airlock::audit", event = ?event, "audit event"),
            Some(backlog) => {
                let id = event.event_id.clone();
                if !backlog.push(event) {
                    tracing::error!(
                        target: "airlock::audit",
                        event_id = %id,
                        dropped = backlog.dropped(),
                        "audit backlog overflowed: event dropped; the audit sink is unreachable"
                    );
                }
            }
        }
    }

    /// Waits up to `grace` for the backlog to drain (at shutdown).
    pub(crate) async fn drain(&self, grace: Duration) {
        let Some(backlog) = &self.backlog else { return };
        let deadline = Instant::now() + grace;
        while backlog.len() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if backlog.len() > 0 {
            tracing::error!(
                target: "airlock::audit",
                pending = backlog.len(),
                "shutting down with audit events not acknowledged"
            );
        }
    }
}

fn local_node_id() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| "airlock-proxy".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn without_a_control_plane_events_are_appended_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let config = AuditConfig {
            file: Some(path.clone()),
            ..AuditConfig::default()
        };
        let recorder = Recorder::start(&config, None).unwrap();
        let event = AuditEvent {
            method: "tools/call".into(),
            ..AuditEvent::default()
        };
        let message = serde_json::json!({"email": "ada@example.com", "password": "pw"});
        recorder.record(event, &message);
        recorder.drain(Duration::from_secs(5)).await;
        assert_eq!(recorder.backlog(), 0);
        let text = std::fs::read_to_string(&path).unwrap();
        let line: AuditEvent = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line.method, "tools/call");
        assert_eq!(
            line.payload_json,
            r#"{"email":"[REDACTED:email]","password":"[REDACTED:secret]"}"#
        );
        assert_eq!(line.event_id.len(), 36);
    }

    #[test]
    fn event_ids_are_unique_time_ordered_uuid_v7() {
        let a = event_id();
        std::thread::sleep(Duration::from_millis(2));
        let b = event_id();
        assert_ne!(a, b);
        assert!(a < b, "{a} then {b}");
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "7");
    }
}
