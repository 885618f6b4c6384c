//! Issue 9's first attack, from the reviewer's chair: an `execute` whose SQL hides a
//! `DELETE FROM customers` after an unterminated `-----BEGIN PRIVATE KEY-----` marker
//! in a comment. Reviewers must see the DELETE, as a fact the proxy parsed from the
//! unmasked call, first and loudly, in the CLI and on the page (headless chromium);
//! the policy must ask for more than one DBA; and after a deny nothing ran.
//!
//! Needs `scripts/install-test-deps` and Debian's chromium, unless
//! `AIRLOCK_SKIP_NODE_TESTS=1`.

mod approval_common;
mod sdk_common;

use airlock_control_plane::api::{ApprovalState, ApprovalVerdict};
use approval_common::{count, error_code, ApprovalStack, DANA};
use sdk_common::sdk_tests_enabled;
use serde_json::{json, Value};
use std::process::Command;

const ATTACK: &str = "UPDATE orders SET status='shipped' WHERE id=7; -- -----BEGIN PRIVATE KEY-----\nDELETE FROM customers";
const COUNT: &str = "SELECT COUNT(*) AS n FROM customers";

#[test]
fn reviewers_see_the_delete_hidden_after_a_key_marker_first_and_loudly() {
    if !sdk_tests_enabled("reviewer_view") {
        return;
    }
    sdk_common::require_chromium();
    let stack =
        ApprovalStack::start(json!({"reviewers": ["dba"], "min_approvals": 1, "timeout_s": 120}));
    let client = stack.run_client(json!([
        {"name": "before", "tool": "query", "args": {"sql": COUNT}},
        {"name": "held", "tool": "execute", "args": {"sql": ATTACK}},
        {"name": "after", "tool": "query", "args": {"sql": COUNT}},
    ]));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let approval = runtime.block_on(async { stack.wait_pending(1).await.remove(0) });

    // The policy read the facts: two statements, a DELETE without WHERE, and a key
    // marker outside any literal: two reviewers, security among them.
    for reason in [
        "sql.multi_statement",
        "sql.unbounded_write",
        "review.masked_code",
    ] {
        assert!(
            approval.reasons.iter().any(|r| r == reason),
            "{:?}",
            approval.reasons
        );
    }
    assert!(approval.min_approvals >= 2, "{approval:?}");
    assert!(
        approval.reviewer_groups.iter().any(|g| g == "security"),
        "{approval:?}"
    );
    let summary: Value = serde_json::from_str(&approval.summary_json).expect("a summary");
    let statements = &summary["arguments"]["sql"]["statements"];
    assert_eq!(statements[1]["kind"], "delete", "{summary:#}");
    assert_eq!(statements[1]["writes"], json!(["customers"]));
    assert!(
        approval.payload_json.contains("DELETE FROM customers"),
        "{}",
        approval.payload_json
    );

    // The CLI shows the facts before the payload, with the warning.
    let shown = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args([
            "approvals",
            "show",
            &approval.approval_id,
            "--control-plane",
            &stack.cp_url,
            "--token",
            DANA,
        ])
        .output()
        .expect("run airlock approvals show");
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    let facts_at = text
        .find("2. DELETE  writes customers")
        .unwrap_or_else(|| panic!("no DELETE fact:\n{text}"));
    assert!(text.contains("WITHOUT WHERE (every row)"), "{text}");
    assert!(
        text.contains("WARNING: `sql`: secret detector(s) matched outside SQL literals"),
        "{text}"
    );
    assert!(
        facts_at < text.find("payload").unwrap_or(usize::MAX),
        "facts come first:\n{text}"
    );

    // The page, in a real browser: the warning, then the facts, then the payload.
    let shot = sdk_common::repo_root().join("target/reviewer-facts.png");
    let page = sdk_common::run_json_client(
        &sdk_common::node22(),
        &[
            "tests/sdk/reviewer_facts.mjs",
            &stack.ui_url,
            DANA,
            &shot.display().to_string(),
        ],
        &[],
    );
    assert!(page["error"].is_null(), "{page:#}");
    assert_eq!(page["id"], approval.approval_id.as_str());
    assert!(
        page["warnings"]
            .to_string()
            .contains("outside SQL literals"),
        "{page:#}"
    );
    assert!(
        page["facts"]
            .as_str()
            .unwrap_or("")
            .contains("DELETE  writes customers"),
        "{page:#}"
    );
    assert!(
        page["payload"]
            .as_str()
            .unwrap_or("")
            .contains("DELETE FROM customers"),
        "{page:#}"
    );
    assert_eq!(page["factsBeforePayload"], true, "{page:#}");

    // Denied: nothing ran.
    let denied = runtime
        .block_on(stack.decide(
            DANA,
            &approval.approval_id,
            ApprovalVerdict::Deny,
            "hidden DELETE",
        ))
        .expect("deny");
    assert_eq!(denied.state, ApprovalState::Denied as i32);
    let report = client.join().expect("client thread");
    assert_eq!(error_code(&report, "held"), -32011, "{report:#}");
    assert_eq!(
        count(&report, "after"),
        count(&report, "before"),
        "{report:#}"
    );
}
