//! The reviewers' other channels and the client's side of a wait: the `airlock
//! approvals` CLI, webhooks (retried), and a client that hangs up cancelling its
//! request. Real processes on 127.0.0.1; the SDK client from `tests/sdk`.

mod approval_common;
mod sdk_common;

use airlock_control_plane::api::ApprovalState;
use approval_common::{count, ApprovalStack, ADMIN, DANA};
use sdk_common::{ok_step, sdk_tests_enabled};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

const INSERT: &str = "INSERT INTO customers (name, email, phone, card_number, address, city, country, created_at) VALUES ('Cli Call', 'cli@example.com', '+1 555 0101', '4111111111111111', '2 Main St', 'Springfield', 'US', '2026-01-01')";
const COUNT: &str = "SELECT COUNT(*) AS n FROM customers";

fn dba() -> Value {
    json!({"reviewers": ["dba"], "min_approvals": 1, "timeout_s": 60})
}

fn cli(stack: &ApprovalStack, token: &str, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["--control-plane", &stack.cp_url, "--token", token])
        .args(args)
        .output()
        .expect("run airlock approvals");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

fn wait_state(stack: &ApprovalStack, id: &str, state: ApprovalState) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // The proxy announces the id before its submission lands: absent means not yet.
        let now = rt.block_on(stack.try_get(id)).map_or(-1, |a| a.state);
        if now == state as i32 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{id} stayed in state {now}, expected {state:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_reviewer_lists_shows_and_approves_from_the_cli() {
    if !sdk_tests_enabled("approval_channels") {
        return;
    }
    let stack = ApprovalStack::start(dba());
    let client = stack.run_client(json!([
        {"name": "before", "tool": "query", "args": {"sql": COUNT}},
        {"name": "held", "tool": "execute", "args": {"sql": INSERT}},
        {"name": "after", "tool": "query", "args": {"sql": COUNT}},
    ]));
    let deadline = Instant::now() + Duration::from_secs(30);
    let id = loop {
        let (ok, text) = cli(&stack, DANA, &["--output", "json", "approvals", "list"]);
        assert!(ok, "{text}");
        let list: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if let Some(id) = list[0]["approval_id"].as_str() {
            assert_eq!(list[0]["state"], "pending");
            break id.to_owned();
        }
        assert!(Instant::now() < deadline, "nothing pending: {text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let (ok, shown) = cli(&stack, DANA, &["approvals", "show", &id]);
    assert!(ok, "{shown}");
    for expected in [
        "demo-agent",
        "demo",
        "sql.write_on_prod",
        "Cli Call",
        "policy",
    ] {
        assert!(shown.contains(expected), "show lacks {expected}: {shown}");
    }
    // Promise 7: the card number and email of the held INSERT reach reviewers masked;
    // the approval still releases the original payload (the row count below).
    for secret in ["4111111111111111", "cli@example.com"] {
        assert!(!shown.contains(secret), "show leaks {secret}: {shown}");
    }
    assert!(shown.contains("[REDACTED:credit_card]"), "{shown}");
    assert!(shown.contains("sensitive values masked"), "{shown}");
    let (ok, denied) = cli(&stack, DANA, &["approvals", "deny", &id, "--reason", ""]);
    assert!(!ok && denied.contains("needs a reason"), "{denied}");
    let (ok, approved) = cli(
        &stack,
        DANA,
        &["approvals", "approve", &id, "--reason", "looks fine"],
    );
    assert!(ok && approved.contains("approved"), "{approved}");
    let report = client.join().expect("client");
    ok_step(&report, "held");
    assert_eq!(
        count(&report, "after"),
        count(&report, "before") + 1,
        "{report:#}"
    );
}

#[test]
fn a_client_that_hangs_up_cancels_its_request() {
    let stack = ApprovalStack::start(dba());
    let addr = stack
        .mcp_url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "execute", "arguments": {"sql": INSERT}}})
    .to_string();
    let mut stream = TcpStream::connect(&addr).expect("connect to the proxy");
    write!(
        stream,
        "POST /mcp/demo HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n{body}",
        stack.api_key,
        body.len()
    )
    .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut id = String::new();
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap_or(0) > 0 {
        if let Some(rest) = line.trim().strip_prefix(": held for approval ") {
            id = rest.to_owned();
            break;
        }
        line.clear();
    }
    assert!(
        id.starts_with("apr_"),
        "no held-for-approval comment; last line {line:?}"
    );
    wait_state(&stack, &id, ApprovalState::Pending);
    drop(reader); // hang up
    wait_state(&stack, &id, ApprovalState::Cancelled);
    let (ok, text) = cli(&stack, ADMIN, &["approvals", "approve", &id]);
    assert!(!ok, "a cancelled request cannot be approved: {text}");
}

/// Accepts one HTTP request, answers `status`, returns the body.
fn receive_hook(listener: &TcpListener, status: u16) -> String {
    let (mut stream, _) = listener.accept().expect("webhook connection");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    String::from_utf8(body).unwrap()
}

#[test]
fn a_new_request_is_posted_to_the_webhook_and_retried_after_a_failure() {
    if !sdk_tests_enabled("approval_channels") {
        return;
    }
    let hook = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", hook.local_addr().unwrap());
    let stack = ApprovalStack::start_with(dba(), &format!("[webhooks]\nurls = [\"{url}\"]\n"));
    let client = stack.run_client(json!([
        {"name": "held", "tool": "execute", "args": {"sql": INSERT}},
    ]));
    let first: Value = serde_json::from_str(&receive_hook(&hook, 500)).unwrap();
    let second: Value = serde_json::from_str(&receive_hook(&hook, 200)).unwrap();
    assert_eq!(first, second, "the retry carries the same notification");
    let id = second["approval"]["id"].as_str().unwrap().to_owned();
    let text = second["text"].as_str().unwrap();
    assert!(
        text.contains(&format!("{}#{id}", stack.ui_url)),
        "no link to the page: {text}"
    );
    assert!(
        text.contains("demo-agent") && text.contains("sql.write_on_prod"),
        "{text}"
    );
    let (ok, out) = cli(&stack, DANA, &["approvals", "approve", &id]);
    assert!(ok, "{out}");
    ok_step(&client.join().expect("client"), "held");
}

#[test]
fn an_unreachable_control_plane_fails_closed_with_the_approval_id() {
    if !sdk_tests_enabled("approval_channels") {
        return;
    }
    let mut stack =
        ApprovalStack::start(json!({"reviewers": ["dba"], "min_approvals": 1, "timeout_s": 2}));
    stack.kill_control_plane();
    let report = stack
        .run_client(json!([
            {"name": "before", "tool": "query", "args": {"sql": COUNT}},
            {"name": "held", "tool": "execute", "args": {"sql": INSERT}},
            {"name": "after", "tool": "query", "args": {"sql": COUNT}},
        ]))
        .join()
        .expect("client");
    assert_eq!(
        approval_common::error_code(&report, "held"),
        -32014,
        "{report:#}"
    );
    let error = &report["held"]["error"];
    let id = error["data"]["approval_id"].as_str().unwrap_or_default();
    assert!(id.starts_with("apr_"), "{error:#}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(id) && message.contains("unreachable"),
        "{error:#}"
    );
    assert_eq!(
        count(&report, "after"),
        count(&report, "before"),
        "nothing forwarded"
    );
}

#[test]
fn a_node_refuses_to_hold_more_than_max_pending_calls() {
    if !sdk_tests_enabled("approval_channels") {
        return;
    }
    let stack = ApprovalStack::start_full(dba(), "", "keepalive_s = 1\nmax_pending = 1\n");
    let first = stack.run_client(json!([
        {"name": "held", "tool": "execute", "args": {"sql": INSERT}},
    ]));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let id = rt.block_on(stack.wait_pending(1))[0].approval_id.clone();
    let second = stack
        .run_client(json!([
            {"name": "held", "tool": "execute", "args": {"sql": INSERT.replace("Cli Call", "Second")}},
        ]))
        .join()
        .expect("second client");
    assert_eq!(
        approval_common::error_code(&second, "held"),
        -32010,
        "{second:#}"
    );
    let message = second["held"]["error"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("max_pending"), "{message}");
    let metrics = stack.proxy_metrics();
    assert!(
        metrics.contains("\nairlock_approvals_held 1\n"),
        "{metrics}"
    );
    let (ok, out) = cli(&stack, DANA, &["approvals", "approve", &id]);
    assert!(ok, "{out}");
    ok_step(&first.join().expect("first client"), "held");
    // The slot is given back once the released call's task ends.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stack
        .proxy_metrics()
        .contains("\nairlock_approvals_held 0\n")
    {
        assert!(Instant::now() < deadline, "{}", stack.proxy_metrics());
        std::thread::sleep(Duration::from_millis(50));
    }
}
