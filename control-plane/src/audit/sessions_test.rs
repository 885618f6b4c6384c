use super::*;
use crate::store::{ApprovalState, Mode};

fn event(session: &str, ms: u64, verdict: &str, payload: &str) -> AuditEvent {
    AuditEvent {
        event_id: format!("{session}-{ms}-{verdict}-{}", payload.len()),
        session_id: session.to_owned(),
        identity: "demo-agent".into(),
        server: "demo".into(),
        node_id: "n1".into(),
        direction: "client_to_server".into(),
        method: "tools/call".into(),
        tool: "query".into(),
        unix_ms: ms,
        verdict: verdict.into(),
        payload_json: payload.into(),
        ..AuditEvent::default()
    }
}

fn log_of(events: Vec<AuditEvent>) -> (tempfile::TempDir, AuditLog) {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let log = AuditLog::open(&db, "test").unwrap();
    log.append(events, 1).unwrap();
    (dir, log)
}

const BIG: Bounds = Bounds {
    scan_records: 1000,
    max_sessions: 100,
    max_events: 100,
    max_payload_bytes: 1000,
    max_total_payload_bytes: 100_000,
};

#[test]
fn sessions_are_grouped_with_verdict_counts_newest_first_and_sessionless_skipped() {
    let (_dir, log) = log_of(vec![
        event("", 5, "allow", "{}"),
        event("a", 10, "allow", "{}"),
        event("b", 20, "deny", "{}"),
        event("a", 30, "require_approval", "{}"),
        event("a", 31, "allow", "{}"),
    ]);
    let list = recent_sessions(&log, BIG).unwrap();
    assert!(!list.truncated);
    assert_eq!(list.scanned, 5);
    let ids: Vec<_> = list
        .sessions
        .iter()
        .map(|s| s.session_id.as_str())
        .collect();
    assert_eq!(ids, ["a", "b"]);
    let a = &list.sessions[0];
    assert_eq!((a.first_unix_ms, a.last_unix_ms, a.messages), (10, 31, 3));
    assert_eq!(a.verdicts["allow"], 2);
    assert_eq!(a.verdicts["require_approval"], 1);
    assert_eq!(a.refused(), 1);
    assert_eq!(list.sessions[1].refused(), 1);
}

#[test]
fn the_list_reads_at_most_scan_records_and_keeps_at_most_max_sessions() {
    let events = (0..50)
        .map(|i| event(&format!("s{i}"), i, "allow", "{}"))
        .collect();
    let (_dir, log) = log_of(events);
    let scan = Bounds {
        scan_records: 10,
        ..BIG
    };
    let list = recent_sessions(&log, scan).unwrap();
    assert_eq!(list.scanned, 10);
    assert!(list.truncated);
    assert_eq!(
        list.sessions[0].session_id, "s49",
        "the newest records are read"
    );
    let few = Bounds {
        max_sessions: 3,
        ..BIG
    };
    let list = recent_sessions(&log, few).unwrap();
    assert!(list.truncated);
    let ids: Vec<_> = list
        .sessions
        .iter()
        .map(|s| s.session_id.as_str())
        .collect();
    assert_eq!(ids, ["s49", "s48", "s47"]);
}

#[test]
fn a_transcript_is_in_log_order_with_offsets_from_its_first_message() {
    let (_dir, log) = log_of(vec![
        event("a", 1000, "allow", "{\"n\":1}"),
        event("b", 1001, "allow", "{}"),
        event("a", 1250, "deny", "{\"n\":2}"),
        event("a", 1900, "allow", "{\"n\":3}"),
    ]);
    let t = session_transcript(&log, "a", None, BIG).unwrap().unwrap();
    assert!(!t.truncated);
    let got: Vec<_> = t
        .events
        .iter()
        .map(|e| (e.seq, e.offset_ms, e.payload_json.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (1, 0, "{\"n\":1}"),
            (3, 250, "{\"n\":2}"),
            (4, 900, "{\"n\":3}")
        ]
    );
    assert_eq!(t.first_unix_ms, 1000);
    assert!(session_transcript(&log, "nope", None, BIG)
        .unwrap()
        .is_none());
    let until = session_transcript(&log, "a", Some(3), BIG)
        .unwrap()
        .unwrap();
    assert_eq!(until.events.len(), 2, "nothing after the given record");
}

#[test]
fn a_transcript_keeps_the_newest_events_within_its_event_and_byte_bounds() {
    let payload = "x".repeat(100);
    let events = (0..20).map(|i| event("a", i, "allow", &payload)).collect();
    let (_dir, log) = log_of(events);
    let few = Bounds {
        max_events: 5,
        ..BIG
    };
    let t = session_transcript(&log, "a", None, few).unwrap().unwrap();
    assert!(t.truncated);
    let seqs: Vec<_> = t.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [16, 17, 18, 19, 20]);
    assert_eq!(
        t.events[0].offset_ms, 0,
        "offsets count from the first shown"
    );
    let cut = Bounds {
        max_payload_bytes: 10,
        max_total_payload_bytes: 35,
        ..BIG
    };
    let t = session_transcript(&log, "a", None, cut).unwrap().unwrap();
    assert!(t.truncated);
    assert_eq!(t.events.len(), 3);
    assert!(t
        .events
        .iter()
        .all(|e| e.payload_truncated && e.payload_json.len() == 10));
}

#[test]
fn payloads_are_cut_on_a_character_boundary() {
    assert_eq!(cut("aé", 2), ("a".to_owned(), true));
    assert_eq!(cut("aé", 3), ("aé".to_owned(), false));
}

fn approval(payload: &str, created: u64) -> ApprovalRecord {
    ApprovalRecord {
        approval_id: "apr_1".into(),
        state: ApprovalState::Pending,
        subject: "demo-agent".into(),
        subject_groups: vec![],
        server: "demo".into(),
        node_id: "n1".into(),
        requested_by: "node".into(),
        method: "tools/call".into(),
        tool: "query".into(),
        payload_json: payload.into(),
        payload_sha256: String::new(),
        payload_masked: true,
        summary_json: String::new(),
        reasons: vec![],
        message: String::new(),
        policy_revision: String::new(),
        reviewer_groups: vec![],
        min_approvals: 1,
        mode: Mode::Sync,
        created_unix_ms: created,
        expires_unix_ms: created + 60_000,
        reviews: vec![],
    }
}

#[test]
fn an_approval_finds_its_held_call_by_identity_node_and_masked_canonical_payload() {
    let held = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"arguments":{"sql":"x"},"name":"query","_meta":{"progressToken":3}}}"#;
    let other = r#"{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"query","arguments":{"sql":"y"}}}"#;
    let canonical = r#"{"method":"tools/call","params":{"name":"query","arguments":{"sql":"x"}}}"#;
    let mut wrong_agent = event("b", 1_000_000, "require_approval", held);
    wrong_agent.identity = "someone-else".into();
    let (_dir, log) = log_of(vec![
        event("a", 999_000, "allow", "{}"),
        event("a", 999_500, "require_approval", held),
        wrong_agent,
        event("c", 999_900, "require_approval", other),
        event("a", 1_000_500, "allow", "{}"),
    ]);
    let found = find_held_call(&log, &approval(canonical, 1_000_000), BIG)
        .unwrap()
        .unwrap();
    assert_eq!(found.seq, 2);
    let t = session_transcript(&log, "a", Some(found.seq), BIG)
        .unwrap()
        .unwrap();
    let seqs: Vec<_> = t.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2], "the messages before the held call, and it");
    let other_payload =
        r#"{"method":"tools/call","params":{"name":"query","arguments":{"sql":"z"}}}"#;
    assert!(
        find_held_call(&log, &approval(other_payload, 1_000_000), BIG)
            .unwrap()
            .is_none()
    );
    // Created long after: the scan stops at the look-back window.
    assert!(
        find_held_call(&log, &approval(canonical, 1_000_000 + 2 * LOOKBACK_MS), BIG)
            .unwrap()
            .is_none()
    );
    // A proxy clock a little ahead of the control plane's: still found.
    assert_eq!(
        find_held_call(&log, &approval(canonical, 999_000), BIG)
            .unwrap()
            .map(|r| r.seq),
        Some(2)
    );
}

#[test]
fn a_recorded_approval_id_links_exactly_whatever_the_payload_looks_like() {
    let held = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"query","arguments":{"sql":"x"}}}"#;
    let canonical = r#"{"method":"tools/call","params":{"name":"query","arguments":{"sql":"x"}}}"#;
    // The identical call from another session, under another approval: the
    // payload matches, the recorded id does not.
    let mut twin = event("b", 999_800, "require_approval", held);
    twin.approval_id = "apr_2".into();
    let mut own = event("a", 999_500, "require_approval", held);
    own.approval_id = "apr_1".into();
    let (_dir, log) = log_of(vec![own, twin]);
    let found = find_held_call(&log, &approval(canonical, 1_000_000), BIG)
        .unwrap()
        .unwrap();
    assert_eq!(found.seq, 1, "not the newer twin of another approval");
    let mut answer = event("a", 999_600, "allow", "{}");
    answer.direction = "server_to_client".into();
    answer.approval_id = "apr_1".into();
    assert!(
        !is_held_call(&answer, &approval(canonical, 1_000_000)),
        "the answer carries the id too but is not the held call"
    );
}
