//! The reviewer page's session view end to end: the official TypeScript SDK runs a
//! session through `airlock proxy` (customers' emails and cards, a payload that is
//! HTML, a denied call, a held call); the real control plane's `/ui/api/sessions…`
//! is then read with each role's token, and the page is driven in headless
//! chromium (playwright-core).
//!
//! Needs `scripts/install-test-deps` (Node 22, `tests/sdk/node_modules`, chromium),
//! unless `AIRLOCK_SKIP_NODE_TESTS=1`.

mod approval_common;
mod sdk_common;

use airlock_control_plane::api::ApprovalVerdict;
use approval_common::{error_code, ApprovalStack, ADMIN, AUDITOR, DANA, NODE};
use sdk_common::{has_long_digit_run, ok_step, require_chromium, result_text, sdk_tests_enabled};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// Markup an attacker could put in a payload: must be shown as text, never run.
const XSS: &str = r#"<img src=x onerror="window.__xss=1">"#;
const INSERT: &str = "INSERT INTO customers (name, email, phone, card_number, address, city, country, created_at) VALUES ('Held Call', 'held@example.com', '+1 555 0100', '4111111111111111', '1 Main St', 'Springfield', 'US', '2026-01-01')";

/// Cards and emails read, the HTML probe, a denied DROP, then a held INSERT.
fn steps() -> Value {
    json!([
        {"name": "cards", "tool": "query", "args": {"sql": "SELECT name, email, card_number FROM customers ORDER BY id LIMIT 3"}},
        {"name": "probe", "tool": "query", "args": {"sql": format!("SELECT '{XSS}' AS probe")}},
        {"name": "drop", "tool": "execute", "args": {"sql": "DROP TABLE customers"}},
        {"name": "held", "tool": "execute", "args": {"sql": INSERT}, "progress": true},
    ])
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// `GET path` on the page's port with an optional bearer token: (status, JSON body).
fn get(ui_url: &str, path: &str, token: Option<&str>) -> (u16, Value) {
    let addr = ui_url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .expect("host:port");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the page");
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .expect("send");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read the answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (status, body)
}

/// Waits until the held call's session can be read (the proxy ships events
/// asynchronously); returns it.
fn wait_approval_session(stack: &ApprovalStack, approval: &str) -> Value {
    let path = format!("/ui/api/approvals/{approval}/session");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = get(&stack.ui_url, &path, Some(DANA));
        if status == 200 {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "the held call's session never appeared: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts the stack and the agent; returns them with the pending approval's id
/// once its session is readable.
fn record_session() -> (ApprovalStack, std::thread::JoinHandle<Value>, String, Value) {
    let approval =
        json!({"reviewers": ["dba"], "min_approvals": 1, "timeout_s": 60, "mode": "sync"});
    let stack = ApprovalStack::start(approval);
    let client = stack.run_client(steps());
    let pending = runtime().block_on(stack.wait_pending(1));
    let id = pending[0].approval_id.clone();
    let session = wait_approval_session(&stack, &id);
    (stack, client, id, session)
}

/// Denies the held call so the agent finishes; checks what it saw.
fn finish(stack: &ApprovalStack, client: std::thread::JoinHandle<Value>, id: &str) {
    runtime()
        .block_on(stack.decide(DANA, id, ApprovalVerdict::Deny, "seen the session"))
        .expect("deny");
    let report = client.join().expect("client thread");
    assert_eq!(error_code(&report, "held"), -32011, "{report:#}");
    assert_eq!(report["drop"]["ok"], false, "{report:#}");
    assert!(result_text(ok_step(&report, "probe")).contains("onerror"));
}

fn encode(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// (method or "response", tool, verdict) of each event.
fn shape(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let method = e["method"].as_str().unwrap_or_default();
            let method = if method.is_empty() {
                "response"
            } else {
                method
            };
            format!(
                "{method} {} {}",
                e["tool"].as_str().unwrap_or_default(),
                e["verdict"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

/// As an auditor: the list, then the whole transcript; returns the session id, its
/// path and its events.
fn auditor_view(ui: &str) -> (String, String, Vec<Value>) {
    let (status, list) = get(ui, "/ui/api/sessions", Some(AUDITOR));
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["truncated"], false, "{list}");
    let sessions = list["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 1, "one SDK session: {list:#}");
    let summary = &sessions[0];
    assert_eq!(summary["identity"], "demo-agent");
    assert_eq!(summary["server"], "demo");
    assert_eq!(summary["verdicts"]["deny"], 1, "{summary}");
    assert_eq!(summary["verdicts"]["require_approval"], 1, "{summary}");
    let session_id = summary["session_id"].as_str().expect("an id").to_owned();
    let path = format!("/ui/api/sessions/{}", encode(&session_id));
    let (status, transcript) = get(ui, &path, Some(AUDITOR));
    assert_eq!(status, 200, "{transcript}");
    let events = transcript["events"].as_array().expect("events").clone();
    assert_eq!(events.len() as u64, summary["messages"].as_u64().unwrap());
    let calls: Vec<String> = shape(&events)
        .into_iter()
        .filter(|s| s.starts_with("tools/call") || s.starts_with("response query"))
        .collect();
    assert_eq!(
        calls,
        [
            "tools/call query allow",
            "response query allow",
            "tools/call query allow",
            "response query allow",
            "tools/call execute deny",
            "tools/call execute require_approval",
        ],
        "{transcript:#}"
    );
    assert_eq!(events[0]["offset_ms"], 0);
    for pair in events.windows(2) {
        assert!(
            pair[0]["seq"].as_u64() < pair[1]["seq"].as_u64(),
            "log order"
        );
        assert!(
            pair[0]["offset_ms"].as_i64() <= pair[1]["offset_ms"].as_i64(),
            "relative times go forward: {pair:#?}"
        );
    }
    let payloads: Vec<&str> = events
        .iter()
        .map(|e| e["payload_json"].as_str().expect("a payload"))
        .collect();
    for payload in &payloads {
        assert!(
            !payload.contains("@example.") && !has_long_digit_run(payload),
            "unmasked: {payload}"
        );
    }
    let cards = payloads
        .iter()
        .find(|p| p.contains("card_number") && p.contains("\"result\""))
        .expect("the cards answer");
    assert!(
        cards.contains("[REDACTED:email]") && cards.contains("[REDACTED:credit_card"),
        "{cards}"
    );
    assert!(payloads.iter().any(|p| p.contains("<img src=x onerror=")));

    (session_id, path, events)
}

/// As a reviewer: not the log at large, but the session of an approval, up to the
/// held call.
fn reviewer_view(ui: &str, approval: &str, held: &Value, session: (&str, &str, &[Value])) {
    let (session_id, path, events) = session;
    for path in ["/ui/api/sessions", path] {
        let (status, body) = get(ui, path, Some(DANA));
        assert_eq!(status, 403, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("auditor"),
            "{body}"
        );
    }
    let shown = &held["session"];
    assert_eq!(held["approval_id"], approval);
    assert_eq!(shown["session_id"], session_id);
    let shown_events = shown["events"].as_array().expect("events");
    let last = shown_events.last().expect("the held call");
    assert_eq!(shown["held_seq"], last["seq"], "{held:#}");
    assert_eq!(last["verdict"], "require_approval");
    assert!(last["payload_json"]
        .as_str()
        .unwrap()
        .contains("INSERT INTO customers"));
    assert!(!last["payload_json"]
        .as_str()
        .unwrap()
        .contains("held@example.com"));
    assert_eq!(shape(shown_events), shape(&events[..shown_events.len()]));
    let (status, _) = get(
        ui,
        &format!("/ui/api/approvals/{approval}/session"),
        Some(AUDITOR),
    );
    assert_eq!(status, 200);
}

/// A node and no token: nothing; unknown ids: 404 with what to do.
fn refusals(ui: &str, approval: &str, path: &str) {
    for path in [
        "/ui/api/sessions".to_owned(),
        path.to_owned(),
        format!("/ui/api/approvals/{approval}/session"),
    ] {
        let (status, body) = get(ui, &path, Some(NODE));
        assert_eq!(status, 403, "{path}: {body}");
        let (status, body) = get(ui, &path, None);
        assert_eq!(status, 401, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("bearer token"),
            "{body}"
        );
    }
    let (status, body) = get(ui, "/ui/api/sessions/no-such-session", Some(ADMIN));
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("/ui/api/sessions"),
        "{body}"
    );
    let (status, body) = get(ui, "/ui/api/approvals/apr_missing/session", Some(DANA));
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("no approval"),
        "{body}"
    );
}

#[test]
fn auditors_read_every_session_reviewers_only_their_approvals_and_others_nothing() {
    if !sdk_tests_enabled("session_view") {
        return;
    }
    let (stack, client, approval, held) = record_session();
    let ui = stack.ui_url.as_str();

    let (session_id, path, events) = auditor_view(ui);
    reviewer_view(ui, &approval, &held, (&session_id, &path, &events));
    refusals(ui, &approval, &path);
    finish(&stack, client, &approval);
}

#[test]
fn the_session_view_shows_payloads_as_text_in_a_real_browser() {
    if !sdk_tests_enabled("session_view") {
        return;
    }
    require_chromium();
    let (stack, client, approval, _) = record_session();
    let screenshot = sdk_common::repo_root().join("target/session-view.png");
    let page = sdk_common::run_json_client(
        &sdk_common::node22(),
        &[
            "tests/sdk/session_page.mjs",
            &stack.ui_url,
            AUDITOR,
            DANA,
            &approval,
            &screenshot.display().to_string(),
        ],
        &[],
    );
    assert!(page["error"].is_null(), "the page flow failed: {page:#}");
    assert_eq!(page["sessionsListed"], 1, "{page:#}");
    let verdicts: Vec<&str> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["verdict"].as_str())
        .collect();
    assert!(
        verdicts.contains(&"deny") && verdicts.last() == Some(&"require_approval"),
        "{page:#}"
    );
    assert_eq!(page["probeShownAsText"], true, "{page:#}");
    assert_eq!(page["imgElements"], 0, "{page:#}");
    assert_eq!(page["xssRan"], false, "{page:#}");
    assert!(
        page["reviewerListError"]
            .as_str()
            .unwrap_or_default()
            .contains("may not call GET /ui/api/sessions"),
        "{page:#}"
    );
    assert!(
        page["heldText"]
            .as_str()
            .unwrap_or_default()
            .contains("INSERT INTO customers"),
        "{page:#}"
    );
    assert_eq!(page["reviewerXssRan"], false, "{page:#}");
    assert_eq!(page["cspViolations"], json!([]), "{page:#}");
    assert!(
        screenshot.exists(),
        "no screenshot at {}",
        screenshot.display()
    );
    finish(&stack, client, &approval);
}
