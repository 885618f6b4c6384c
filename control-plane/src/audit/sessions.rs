//! The audit log seen as MCP sessions: summaries of recent sessions and one
//! session's transcript with relative timings. One implementation for the reviewer
//! page (`/ui/api/sessions…`, which scans the log here, bounded) and `airlock
//! sessions` (which groups what `AuditService.Query` streams it with the same types).
//!
//! The log is keyed by sequence number only, so sessions are found by scanning it
//! from the newest record backwards. Every scan reads at most
//! [`Bounds::scan_records`] records and keeps at most the sessions, events and
//! payload bytes its [`Bounds`] allow; whatever was cut says `truncated: true`.

use super::Audit;
use crate::api::{AuditEvent, AuditRecord};
use crate::bundles::blocking;
use crate::store::{ApprovalRecord, AuditLog, StoreError};
use crate::ControlPlaneError;
use airlock_policy::canonical::{canonical_payload, recanonicalize};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// How much one session query may read and return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Bounds {
    /// Records read from the log, newest first, per scan.
    pub scan_records: usize,
    /// Sessions listed.
    pub max_sessions: usize,
    /// Events of one transcript (the newest are kept).
    pub max_events: usize,
    /// Bytes of one event's payload shown; longer ones are cut.
    pub max_payload_bytes: usize,
    /// Payload bytes of one transcript; older events past it are left out.
    pub max_total_payload_bytes: usize,
}

impl Bounds {
    /// What the reviewer page reads and returns per request.
    pub const PAGE: Bounds = Bounds {
        scan_records: 20_000,
        max_sessions: 100,
        max_events: 500,
        max_payload_bytes: 32 * 1024,
        max_total_payload_bytes: 2 * 1024 * 1024,
    };

    /// No bounds: for callers that already hold the records (`airlock sessions`,
    /// which bounds what it fetches by its filters).
    pub const UNBOUNDED: Bounds = Bounds {
        scan_records: usize::MAX,
        max_sessions: usize::MAX,
        max_events: usize::MAX,
        max_payload_bytes: usize::MAX,
        max_total_payload_bytes: usize::MAX,
    };
}

/// One session's summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionSummary {
    /// The MCP session id as the agent sees it (sealed).
    pub session_id: String,
    /// The caller's subject.
    pub identity: String,
    /// The upstream's name.
    pub server: String,
    /// The earliest message seen.
    pub first_unix_ms: u64,
    /// The latest message seen.
    pub last_unix_ms: u64,
    /// Messages seen, both directions.
    pub messages: u64,
    /// Messages per verdict (`allow`, `deny`, `require_approval`).
    pub verdicts: BTreeMap<String, u64>,
}

impl SessionSummary {
    /// Messages whose verdict was not `allow` (denied or held).
    pub fn refused(&self) -> u64 {
        self.messages - self.verdicts.get("allow").copied().unwrap_or(0)
    }
}

/// Groups events by session, keeping at most `max_sessions` of them.
#[derive(Debug)]
pub struct SessionIndex {
    sessions: HashMap<String, SessionSummary>,
    max_sessions: usize,
    truncated: bool,
}

impl SessionIndex {
    /// An empty index that keeps at most `max_sessions` sessions: events of further
    /// sessions are skipped and the index says it was truncated.
    pub fn new(max_sessions: usize) -> SessionIndex {
        SessionIndex {
            sessions: HashMap::new(),
            max_sessions,
            truncated: false,
        }
    }

    /// Counts `event` in its session; an event without a session (the `initialize`
    /// request, before the session exists) is skipped.
    pub fn add(&mut self, event: &AuditEvent) {
        if event.session_id.is_empty() {
            return;
        }
        if !self.sessions.contains_key(&event.session_id) {
            if self.sessions.len() >= self.max_sessions {
                self.truncated = true;
                return;
            }
            let summary = SessionSummary {
                session_id: event.session_id.clone(),
                identity: event.identity.clone(),
                server: event.server.clone(),
                first_unix_ms: event.unix_ms,
                last_unix_ms: event.unix_ms,
                messages: 0,
                verdicts: BTreeMap::new(),
            };
            self.sessions.insert(event.session_id.clone(), summary);
        }
        if let Some(s) = self.sessions.get_mut(&event.session_id) {
            s.messages += 1;
            *s.verdicts.entry(event.verdict.clone()).or_default() += 1;
            s.first_unix_ms = s.first_unix_ms.min(event.unix_ms);
            s.last_unix_ms = s.last_unix_ms.max(event.unix_ms);
        }
    }

    /// Whether a session was skipped for want of room.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// The sessions, most recently active first.
    pub fn newest_first(self) -> Vec<SessionSummary> {
        let mut all: Vec<_> = self.sessions.into_values().collect();
        all.sort_by(|a, b| (b.last_unix_ms, &b.session_id).cmp(&(a.last_unix_ms, &a.session_id)));
        all
    }

    /// The sessions, earliest started first.
    pub fn oldest_first(self) -> Vec<SessionSummary> {
        let mut all: Vec<_> = self.sessions.into_values().collect();
        all.sort_by(|a, b| (a.first_unix_ms, &a.session_id).cmp(&(b.first_unix_ms, &b.session_id)));
        all
    }
}

/// Recent sessions, as `GET /ui/api/sessions` answers.
#[derive(Debug, Clone, Serialize)]
pub struct SessionList {
    /// Most recently active first.
    pub sessions: Vec<SessionSummary>,
    /// Records read.
    pub scanned: u64,
    /// Older records or further sessions were left out (counts of the oldest
    /// sessions listed may be partial).
    pub truncated: bool,
    /// The bounds applied.
    pub bounds: Bounds,
}

/// One message of a transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TranscriptEntry {
    /// The record's sequence number in the log.
    pub seq: u64,
    /// When the proxy saw the message.
    pub unix_ms: u64,
    /// Milliseconds since the transcript's first message (negative only if a
    /// proxy's clock stepped back).
    pub offset_ms: i64,
    /// `client_to_server` or `server_to_client`.
    pub direction: String,
    /// The JSON-RPC method; empty for a response.
    pub method: String,
    /// The tool (or prompt, resource) called or answered.
    pub tool: String,
    /// The JSON-RPC id as JSON text.
    pub jsonrpc_id: String,
    /// `allow`, `deny` or `require_approval`.
    pub verdict: String,
    /// The decision's reasons.
    pub reasons: Vec<String>,
    /// The approval that released a held call.
    pub approval_id: String,
    /// The message as stored: masked on the proxy. Cut when over
    /// [`Bounds::max_payload_bytes`] (then no longer JSON).
    pub payload_json: String,
    /// Whether `payload_json` was cut.
    pub payload_truncated: bool,
}

impl TranscriptEntry {
    /// The entry for `record`, timed from `start_ms`, its payload cut to
    /// `max_payload` bytes; `None` for a record without an event.
    pub fn new(record: &AuditRecord, start_ms: u64, max_payload: usize) -> Option<TranscriptEntry> {
        let e = record.event.as_ref()?;
        let (payload_json, payload_truncated) = cut(&e.payload_json, max_payload);
        Some(TranscriptEntry {
            seq: record.seq,
            unix_ms: e.unix_ms,
            offset_ms: e.unix_ms as i64 - start_ms as i64,
            direction: e.direction.clone(),
            method: e.method.clone(),
            tool: e.tool.clone(),
            jsonrpc_id: e.jsonrpc_id.clone(),
            verdict: e.verdict.clone(),
            reasons: e.reasons.clone(),
            approval_id: e.approval_id.clone(),
            payload_json,
            payload_truncated,
        })
    }
}

impl TranscriptEntry {
    /// What the message is, in a few words: `tools/call query`, `response 3 (query)`.
    pub fn what(&self) -> String {
        match (self.method.as_str(), self.tool.as_str()) {
            ("", "") => format!("response {}", self.jsonrpc_id),
            ("", tool) => format!("response {} ({tool})", self.jsonrpc_id),
            (method, "") => method.to_owned(),
            (method, tool) => format!("{method} {tool}"),
        }
    }
}

/// `text` cut to at most `max` bytes on a character boundary, and whether it was.
fn cut(text: &str, max: usize) -> (String, bool) {
    if text.len() <= max {
        return (text.to_owned(), false);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (text[..end].to_owned(), true)
}

/// One session's messages in log order, as `GET /ui/api/sessions/{id}` answers.
#[derive(Debug, Clone, Serialize)]
pub struct Transcript {
    /// The session id.
    pub session_id: String,
    /// The caller's subject (of the first message shown).
    pub identity: String,
    /// The upstream's name.
    pub server: String,
    /// When the first message shown was seen; offsets count from it.
    pub first_unix_ms: u64,
    /// The messages, in log order.
    pub events: Vec<TranscriptEntry>,
    /// The held call this transcript leads up to (an approval's session).
    pub held_seq: Option<u64>,
    /// Records read.
    pub scanned: u64,
    /// Earlier messages of the session may exist that are not shown (scan, event
    /// or payload bounds).
    pub truncated: bool,
    /// The bounds applied.
    pub bounds: Bounds,
}

/// A transcript of `records` (one session's, in log order).
pub fn transcript(session_id: &str, records: &[AuditRecord], bounds: Bounds) -> Transcript {
    let first = records.iter().find_map(|r| r.event.as_ref());
    let start = first.map_or(0, |e| e.unix_ms);
    Transcript {
        session_id: session_id.to_owned(),
        identity: first.map(|e| e.identity.clone()).unwrap_or_default(),
        server: first.map(|e| e.server.clone()).unwrap_or_default(),
        first_unix_ms: start,
        events: records
            .iter()
            .filter_map(|r| TranscriptEntry::new(r, start, bounds.max_payload_bytes))
            .collect(),
        held_seq: None,
        scanned: 0,
        truncated: false,
        bounds,
    }
}

/// Collects one session's records walking the log backwards, within the bounds.
struct Collector<'a> {
    session_id: &'a str,
    bounds: Bounds,
    newest_first: Vec<AuditRecord>,
    payload_bytes: usize,
    full: bool,
}

impl<'a> Collector<'a> {
    fn new(session_id: &'a str, bounds: Bounds) -> Self {
        Collector {
            session_id,
            bounds,
            newest_first: Vec::new(),
            payload_bytes: 0,
            full: false,
        }
    }

    /// Keeps `record` if it is the session's and there is room; `false` once full.
    fn offer(&mut self, record: AuditRecord) -> bool {
        let Some(e) = &record.event else { return true };
        if e.session_id != self.session_id {
            return true;
        }
        let size = e.payload_json.len().min(self.bounds.max_payload_bytes);
        if self.newest_first.len() >= self.bounds.max_events
            || self.payload_bytes.saturating_add(size) > self.bounds.max_total_payload_bytes
        {
            self.full = true;
            return false;
        }
        self.payload_bytes += size;
        self.newest_first.push(record);
        true
    }

    fn finish(mut self, scan: Scan) -> Transcript {
        self.newest_first.reverse();
        let mut t = transcript(self.session_id, &self.newest_first, self.bounds);
        t.scanned = scan.scanned;
        t.truncated = self.full || scan.cut_short;
        t
    }
}

/// How a backward scan ended.
#[derive(Debug, Clone, Copy, Default)]
struct Scan {
    scanned: u64,
    /// It stopped at the scan bound with older records left.
    cut_short: bool,
}

/// Walks the log backwards from before `before_seq`, at most `limit` records, while
/// `visit` returns `true`.
fn scan_back(
    log: &AuditLog,
    before_seq: Option<u64>,
    limit: usize,
    mut visit: impl FnMut(AuditRecord) -> bool,
) -> Result<Scan, StoreError> {
    let mut scan = Scan::default();
    for record in log.records_back(before_seq) {
        if scan.scanned as usize >= limit {
            scan.cut_short = true;
            break;
        }
        scan.scanned += 1;
        if !visit(record?) {
            break;
        }
    }
    Ok(scan)
}

/// The most recently active sessions (blocking).
pub fn recent_sessions(log: &AuditLog, bounds: Bounds) -> Result<SessionList, StoreError> {
    let mut index = SessionIndex::new(bounds.max_sessions);
    let scan = scan_back(log, None, bounds.scan_records, |record| {
        if let Some(e) = &record.event {
            index.add(e);
        }
        true
    })?;
    Ok(SessionList {
        truncated: scan.cut_short || index.truncated(),
        sessions: index.newest_first(),
        scanned: scan.scanned,
        bounds,
    })
}

/// The newest messages of `session_id` at or before `until_seq` (`None`: the whole
/// log), within the bounds (blocking); `None` when the scan found none.
pub fn session_transcript(
    log: &AuditLog,
    session_id: &str,
    until_seq: Option<u64>,
    bounds: Bounds,
) -> Result<Option<Transcript>, StoreError> {
    let mut collector = Collector::new(session_id, bounds);
    let before = until_seq.map(|s| s.saturating_add(1));
    let scan = scan_back(log, before, bounds.scan_records, |r| collector.offer(r))?;
    if collector.newest_first.is_empty() {
        return Ok(None);
    }
    Ok(Some(collector.finish(scan)))
}

/// How far from the approval's creation the held call's event may lie: the proxy
/// records the call, then submits it; the two clocks may differ a little.
const CLOCK_SKEW_MS: u64 = 60_000;
/// How long before the approval's creation the scan for its held call gives up.
const LOOKBACK_MS: u64 = 10 * 60_000;

/// Whether `event` is the held call `approval` was submitted for. Proxies record a
/// held request with its approval id, and that decides. An event without one (from
/// an older proxy) matches on the same identity, server, node, method and tool,
/// held, and the same masked canonical payload (both are masked with every detector
/// on the proxy).
pub fn is_held_call(event: &AuditEvent, approval: &ApprovalRecord) -> bool {
    if !event.approval_id.is_empty() {
        return event.approval_id == approval.approval_id
            && event.direction == "client_to_server"
            && event.verdict == "require_approval";
    }
    if event.verdict != "require_approval"
        || event.direction != "client_to_server"
        || event.identity != approval.subject
        || event.server != approval.server
        || event.node_id != approval.node_id
        || event.method != approval.method
        || event.tool != approval.tool
    {
        return false;
    }
    let Ok(message) = serde_json::from_str::<serde_json::Value>(&event.payload_json) else {
        return false;
    };
    let params = message.get("params").cloned().unwrap_or_default();
    recanonicalize(&approval.payload_json).as_deref()
        == Some(canonical_payload(&event.method, &params).as_str())
}

/// The record of the held call `approval` was submitted for (blocking): the latest
/// matching one recorded before the approval was created, else (clocks apart) the
/// earliest within [`CLOCK_SKEW_MS`] after.
pub fn find_held_call(
    log: &AuditLog,
    approval: &ApprovalRecord,
    bounds: Bounds,
) -> Result<Option<AuditRecord>, StoreError> {
    let created = approval.created_unix_ms;
    let mut found = None;
    let mut after_creation = None;
    scan_back(log, None, bounds.scan_records, |record| {
        let Some(e) = &record.event else { return true };
        if e.unix_ms.saturating_add(LOOKBACK_MS) < created {
            return false;
        }
        if e.unix_ms > created.saturating_add(CLOCK_SKEW_MS) || !is_held_call(e, approval) {
            return true;
        }
        if e.unix_ms <= created {
            found = Some(record);
            return false;
        }
        after_creation = Some(record);
        true
    })?;
    Ok(found.or(after_creation))
}

impl Audit {
    /// The most recently active sessions, within `bounds`.
    pub async fn recent_sessions(&self, bounds: Bounds) -> Result<SessionList, ControlPlaneError> {
        let log = self.log.clone();
        blocking(move || Ok(recent_sessions(&log, bounds)?)).await
    }

    /// One session's newest messages in log order, within `bounds`.
    pub async fn session(
        &self,
        session_id: String,
        bounds: Bounds,
    ) -> Result<Transcript, ControlPlaneError> {
        let log = self.log.clone();
        blocking(move || {
            session_transcript(&log, &session_id, None, bounds)?.ok_or_else(|| {
                ControlPlaneError::SessionNotFound(format!(
                    "no message of session {session_id:?} in the newest {} records of the audit log; pick one from GET /ui/api/sessions (or `airlock sessions list`)",
                    bounds.scan_records
                ))
            })
        })
        .await
    }

    /// The messages of the session of `approval`'s held call, up to and including
    /// it (`held_seq`): what a reviewer sees as context for the decision.
    pub async fn held_call_session(
        &self,
        approval: ApprovalRecord,
        bounds: Bounds,
    ) -> Result<Transcript, ControlPlaneError> {
        let log = self.log.clone();
        blocking(move || {
            let not_found = || {
                ControlPlaneError::SessionNotFound(format!(
                    "the held call of approval {} is not among the newest {} records of the audit log (or its proxy records no audit events); see `airlock approvals show {}`",
                    approval.approval_id, bounds.scan_records, approval.approval_id
                ))
            };
            let held = find_held_call(&log, &approval, bounds)?.ok_or_else(not_found)?;
            let session_id = held
                .event
                .as_ref()
                .map(|e| e.session_id.clone())
                .unwrap_or_default();
            let mut transcript = if session_id.is_empty() {
                // A session-less call: only the call itself belongs to it.
                transcript("", std::slice::from_ref(&held), bounds)
            } else {
                session_transcript(&log, &session_id, Some(held.seq), bounds)?
                    .ok_or_else(not_found)?
            };
            transcript.held_seq = Some(held.seq);
            Ok(transcript)
        })
        .await
    }
}

#[cfg(test)]
#[path = "sessions_test.rs"]
mod tests;
