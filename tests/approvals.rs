//! Human-in-the-loop approval end to end (promise 5): the official TypeScript MCP SDK
//! calls through `airlock proxy`; a write on the prod demo database is held until
//! reviewers decide it on a real `airlock control-plane`.
//!
//! Needs `scripts/install-test-deps` (Node 22 and `tests/sdk/node_modules`), unless
//! `AIRLOCK_SKIP_NODE_TESTS=1`.

mod approval_common;
mod sdk_common;

use airlock_control_plane::api::{ApprovalState, ApprovalVerdict};
use approval_common::{count, error_code, ApprovalStack, DANA, OMAR, SAM, SELF};
use sdk_common::{ok_step, sdk_tests_enabled};
use serde_json::{json, Value};
use std::time::Duration;

const INSERT: &str = "INSERT INTO customers (name, email, phone, card_number, address, city, country, created_at) VALUES ('Held Call', 'held@example.com', '+1 555 0100', '4111111111111111', '1 Main St', 'Springfield', 'US', '2026-01-01')";
const COUNT: &str = "SELECT COUNT(*) AS n FROM customers";

fn dba(timeout_s: u64, min_approvals: u32, mode: &str) -> Value {
    json!({"reviewers": ["dba"], "min_approvals": min_approvals, "timeout_s": timeout_s, "mode": mode})
}

/// count before, the held INSERT (with a progress token), count after.
fn held_insert_steps() -> Value {
    json!([
        {"name": "before", "tool": "query", "args": {"sql": COUNT}},
        {"name": "held", "tool": "execute", "args": {"sql": INSERT}, "progress": true},
        {"name": "after", "tool": "query", "args": {"sql": COUNT}},
    ])
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn a_held_write_waits_and_is_released_on_approval_with_rules_enforced() {
    if !sdk_tests_enabled("approvals") {
        return;
    }
    let stack = ApprovalStack::start(dba(60, 1, "sync"));
    let client = stack.run_client(held_insert_steps());
    runtime().block_on(async {
        let pending = stack.wait_pending(1).await;
        let approval = &pending[0];
        assert_eq!(approval.subject, "demo-agent");
        assert_eq!(approval.server, "demo");
        assert_eq!(approval.tool, "execute");
        assert_eq!(approval.reasons, ["sql.write_on_prod"]);
        assert_eq!(approval.reviewer_groups, ["dba"]);
        assert!(
            approval.payload_json.contains("INSERT INTO customers"),
            "{}",
            approval.payload_json
        );
        assert!(
            !approval.payload_json.contains("progressToken"),
            "the token is not part of the payload"
        );
        let id = approval.approval_id.clone();

        // The call waits: keep-alive progress reaches the client meanwhile.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let own = stack
            .decide(SELF, &id, ApprovalVerdict::Approve, "")
            .await
            .unwrap_err();
        assert_eq!(
            own.code(),
            tonic::Code::PermissionDenied,
            "self-approval: {own:?}"
        );
        let outsider = stack
            .decide(SAM, &id, ApprovalVerdict::Approve, "")
            .await
            .unwrap_err();
        assert_eq!(
            outsider.code(),
            tonic::Code::PermissionDenied,
            "outside the group: {outsider:?}"
        );
        assert_eq!(stack.get(&id).await.state, ApprovalState::Pending as i32);

        let approved = stack
            .decide(DANA, &id, ApprovalVerdict::Approve, "ticket DB-42")
            .await
            .unwrap();
        assert_eq!(approved.state, ApprovalState::Approved as i32);
        let report = client.join().expect("client thread");
        let held = ok_step(&report, "held");
        assert_ne!(
            held["isError"],
            Value::Bool(true),
            "the insert failed: {report:#}"
        );
        assert_eq!(
            count(&report, "after"),
            count(&report, "before") + 1,
            "the INSERT happened: {report:#}"
        );
        assert!(
            report["progress"]["held"].as_u64().unwrap_or(0) >= 1,
            "no progress while held: {report:#}"
        );
        let used = stack.get(&id).await;
        assert_eq!(
            used.state,
            ApprovalState::Consumed as i32,
            "the grant was used once"
        );
        assert_eq!(used.reviews.len(), 1);
        assert_eq!(used.reviews[0].reviewer, "dana");
        assert_eq!(used.reviews[0].reason, "ticket DB-42");
        // The log links the held request and its answer to the approval.
        let executions = stack.executions(2);
        assert_eq!(
            executions,
            [
                ("client_to_server".to_owned(), id.clone()),
                ("server_to_client".to_owned(), id)
            ]
        );
    });
}

#[test]
fn a_denied_call_names_the_reviewer_and_reason_and_never_reaches_the_upstream() {
    if !sdk_tests_enabled("approvals") {
        return;
    }
    let stack = ApprovalStack::start(dba(60, 1, "sync"));
    let client = stack.run_client(held_insert_steps());
    runtime().block_on(async {
        let id = stack.wait_pending(1).await[0].approval_id.clone();
        let no_reason = stack
            .decide(DANA, &id, ApprovalVerdict::Deny, " ")
            .await
            .unwrap_err();
        assert_eq!(
            no_reason.code(),
            tonic::Code::InvalidArgument,
            "{no_reason:?}"
        );
        stack
            .decide(DANA, &id, ApprovalVerdict::Deny, "not during the freeze")
            .await
            .unwrap();
    });
    let report = client.join().expect("client thread");
    assert_eq!(error_code(&report, "held"), -32011, "{report:#}");
    let error = &report["held"]["error"];
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("dana") && message.contains("not during the freeze"),
        "{error:#}"
    );
    assert_eq!(error["data"]["decided_by"], "dana");
    assert_eq!(
        count(&report, "after"),
        count(&report, "before"),
        "no upstream effect: {report:#}"
    );
}

#[test]
fn an_unanswered_call_expires_with_its_approval_id_and_a_quorum_needs_two_people() {
    if !sdk_tests_enabled("approvals") {
        return;
    }
    let stack = ApprovalStack::start(dba(3, 2, "sync"));
    let client = stack.run_client(held_insert_steps());
    let id = runtime().block_on(async {
        let id = stack.wait_pending(1).await[0].approval_id.clone();
        stack
            .decide(DANA, &id, ApprovalVerdict::Approve, "")
            .await
            .unwrap();
        let twice = stack
            .decide(DANA, &id, ApprovalVerdict::Approve, "")
            .await
            .unwrap_err();
        assert_eq!(
            twice.code(),
            tonic::Code::PermissionDenied,
            "one person counts once: {twice:?}"
        );
        assert_eq!(
            stack.get(&id).await.state,
            ApprovalState::Pending as i32,
            "1 of 2 is not enough"
        );
        id
    });
    let report = client.join().expect("client thread");
    assert_eq!(error_code(&report, "held"), -32012, "{report:#}");
    assert_eq!(
        report["held"]["error"]["data"]["approval_id"],
        Value::String(id.clone())
    );
    assert!(report["held"]["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains(&id));
    assert_eq!(
        count(&report, "after"),
        count(&report, "before"),
        "no upstream effect: {report:#}"
    );
    runtime().block_on(async {
        assert_eq!(stack.get(&id).await.state, ApprovalState::Expired as i32);
        let late = stack
            .decide(OMAR, &id, ApprovalVerdict::Approve, "")
            .await
            .unwrap_err();
        assert_eq!(late.code(), tonic::Code::FailedPrecondition, "{late:?}");
    });
}

#[test]
fn a_quorum_of_two_releases_the_call_after_the_second_distinct_reviewer() {
    if !sdk_tests_enabled("approvals") {
        return;
    }
    let stack = ApprovalStack::start(dba(60, 2, "sync"));
    let client = stack.run_client(held_insert_steps());
    runtime().block_on(async {
        let id = stack.wait_pending(1).await[0].approval_id.clone();
        stack
            .decide(DANA, &id, ApprovalVerdict::Approve, "")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!client.is_finished(), "released after one of two approvals");
        stack
            .decide(OMAR, &id, ApprovalVerdict::Approve, "")
            .await
            .unwrap();
    });
    let report = client.join().expect("client thread");
    ok_step(&report, "held");
    assert_eq!(
        count(&report, "after"),
        count(&report, "before") + 1,
        "{report:#}"
    );
}

#[test]
fn an_async_grant_covers_one_payload_once() {
    if !sdk_tests_enabled("approvals") {
        return;
    }
    let stack = ApprovalStack::start(dba(60, 1, "async"));
    let gate = stack.dir.path().join("approved");
    let other = INSERT.replace("Held Call", "Other Call");
    let client = stack.run_client(json!([
        {"name": "before", "tool": "query", "args": {"sql": COUNT}},
        {"name": "ask", "tool": "execute", "args": {"sql": INSERT}},
        {"name": "gate", "waitFile": gate},
        {"name": "other_payload", "tool": "execute", "args": {"sql": other}},
        {"name": "retry", "tool": "execute", "args": {"sql": INSERT}},
        {"name": "again", "tool": "execute", "args": {"sql": INSERT}},
        {"name": "after", "tool": "query", "args": {"sql": COUNT}},
    ]));
    runtime().block_on(async {
        let id = stack.wait_pending(1).await[0].approval_id.clone();
        stack
            .decide(DANA, &id, ApprovalVerdict::Approve, "")
            .await
            .unwrap();
        std::fs::write(&gate, b"ok").expect("open the gate");
    });
    let report = client.join().expect("client thread");
    assert_eq!(error_code(&report, "ask"), -32013, "{report:#}");
    let asked = report["ask"]["error"]["data"]["approval_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(asked.starts_with("apr_"), "{report:#}");
    assert_eq!(
        error_code(&report, "other_payload"),
        -32013,
        "payload B is not covered by A's grant"
    );
    ok_step(&report, "retry");
    assert_eq!(
        error_code(&report, "again"),
        -32013,
        "a grant is used once: {report:#}"
    );
    assert_eq!(
        count(&report, "after"),
        count(&report, "before") + 1,
        "{report:#}"
    );
    runtime().block_on(async {
        assert_eq!(
            stack.get(&asked).await.state,
            ApprovalState::Consumed as i32
        );
    });
    // ask, other_payload, retry (+ its answer), again: each request names the
    // approval it is waiting on or was released by; the answer names its grant.
    let executions = stack.executions(5);
    let directions: Vec<&str> = executions.iter().map(|(d, _)| d.as_str()).collect();
    assert_eq!(
        directions,
        [
            "client_to_server",
            "client_to_server",
            "client_to_server",
            "server_to_client",
            "client_to_server"
        ],
        "{executions:?}"
    );
    let ids: Vec<&str> = executions.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(ids[0], asked);
    assert!(ids[1].starts_with("apr_") && ids[1] != asked, "{ids:?}");
    assert_eq!(&ids[2..4], [asked.as_str(), asked.as_str()], "{ids:?}");
    assert!(ids[4].starts_with("apr_") && ids[4] != asked, "{ids:?}");
}

#[test]
fn held_calls_complete_after_the_control_plane_is_killed_and_restarted() {
    if !sdk_tests_enabled("approvals") {
        return;
    }
    let mut stack = ApprovalStack::start(dba(60, 1, "sync"));
    let first = stack.run_client(held_insert_steps());
    let second = stack.run_client(json!([
        {"name": "held", "tool": "execute", "args": {"sql": INSERT.replace("Held Call", "Second Call")}, "progress": true},
    ]));
    let ids: Vec<String> = runtime().block_on(async {
        stack
            .wait_pending(2)
            .await
            .into_iter()
            .map(|a| a.approval_id)
            .collect()
    });
    stack.kill_control_plane();
    std::thread::sleep(Duration::from_millis(1500));
    stack.restart_control_plane();
    runtime().block_on(async {
        let pending = stack.wait_pending(2).await;
        for id in &ids {
            assert!(
                pending.iter().any(|a| &a.approval_id == id),
                "{id} lost in the restart"
            );
            stack
                .decide(DANA, id, ApprovalVerdict::Approve, "after restart")
                .await
                .unwrap();
        }
    });
    let report = first.join().expect("first client");
    ok_step(&report, "held");
    ok_step(&second.join().expect("second client"), "held");
    let last = stack
        .run_client(json!([{"name": "after", "tool": "query", "args": {"sql": COUNT}}]))
        .join()
        .expect("last client");
    assert_eq!(
        count(&last, "after"),
        count(&report, "before") + 2,
        "both inserts happened: {report:#}"
    );
}

#[test]
fn a_reviewer_approves_from_the_web_page_in_a_real_browser() {
    if !sdk_tests_enabled("approvals") {
        return;
    }
    sdk_common::require_chromium();
    let stack = ApprovalStack::start(dba(60, 1, "sync"));
    let screenshot = sdk_common::repo_root().join("target/approvals-review-page.png");
    let (node, ui, shot) = (
        sdk_common::node22(),
        stack.ui_url.clone(),
        screenshot.display().to_string(),
    );
    let browser = std::thread::spawn(move || {
        sdk_common::run_json_client(&node, &["tests/sdk/review_page.mjs", &ui, DANA, &shot], &[])
    });
    // The page is open and signed in before the call exists: it must appear live.
    std::thread::sleep(Duration::from_millis(1500));
    let client = stack.run_client(held_insert_steps());
    let page = browser.join().expect("browser thread");
    assert!(page["error"].is_null(), "the page flow failed: {page:#}");
    assert!(
        page["signedInAs"]
            .as_str()
            .unwrap_or_default()
            .contains("dana"),
        "{page:#}"
    );
    assert_eq!(page["payloadShown"], true, "{page:#}");
    assert_eq!(
        page["live"], true,
        "the page follows the change stream: {page:#}"
    );
    assert_eq!(page["reviewShown"], true, "{page:#}");
    let report = client.join().expect("client thread");
    ok_step(&report, "held");
    assert_eq!(
        count(&report, "after"),
        count(&report, "before") + 1,
        "{report:#}"
    );
    let id = page["id"].as_str().expect("an approval id").to_owned();
    runtime().block_on(async {
        let approval = stack.get(&id).await;
        assert_eq!(approval.state, ApprovalState::Consumed as i32);
        assert_eq!(approval.reviews[0].reviewer, "dana");
        assert_eq!(approval.reviews[0].reason, "checked in the browser");
    });
    assert!(
        screenshot.exists(),
        "no screenshot at {}",
        screenshot.display()
    );
}
