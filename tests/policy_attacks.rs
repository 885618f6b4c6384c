//! Issue 9's attacks, as an outsider sends them, through the official TypeScript MCP
//! SDK and `airlock proxy` (default policies) in front of the real demo server
//! (SQLite, env=prod): each gets the verdict the facts call for, and the database is
//! unchanged (row counts read straight from the demo server before and after).
//!
//! Needs `scripts/install-test-deps` (Node 22 and `tests/sdk/node_modules`).

mod sdk_common;
mod support;

use sdk_common::{node22, run_json_client, sdk_tests_enabled, Stack};
use serde_json::{json, Value};

/// (name, tool, arguments, expected JSON-RPC error code, reason that must be given).
fn attacks() -> Vec<(&'static str, &'static str, Value, i64, &'static str)> {
    const DENIED: i64 = -32001;
    const HELD: i64 = -32002; // this stack has no control plane: held calls are refused
    vec![
        (
            "quote hides a drop from comment stripping",
            "execute",
            json!({"sql": "UPDATE orders SET status='--' WHERE id=0;/*x*/DROP TABLE customers"}),
            DENIED,
            "sql.ddl",
        ),
        (
            "comment opener in a string",
            "execute",
            json!({"sql": "UPDATE orders SET status='/*' WHERE id=0;DROP TABLE customers; -- */"}),
            DENIED,
            "sql.ddl",
        ),
        (
            "secrets read through query",
            "query",
            json!({"sql": "SELECT content FROM files WHERE path='/app/.env'"}),
            DENIED,
            "sql.sensitive_table",
        ),
        (
            "sensitive table in a subquery",
            "query",
            json!({"sql": "SELECT name FROM customers WHERE id IN (SELECT rowid FROM \"FILES\")"}),
            DENIED,
            "sql.sensitive_table",
        ),
        (
            "delete through the read tool",
            "query",
            json!({"sql": "DELETE FROM customers"}),
            DENIED,
            "sql.not_read_only",
        ),
        (
            "replace through the read tool",
            "query",
            json!({"sql": "REPLACE INTO orders (id, customer_id, status) VALUES (1, 1, 'x')"}),
            DENIED,
            "sql.not_read_only",
        ),
        (
            "second statement through the read tool",
            "query",
            json!({"sql": "select 1; delete from orders"}),
            DENIED,
            "sql.not_read_only",
        ),
        (
            "pragma through the read tool",
            "query",
            json!({"sql": "PRAGMA writable_schema = 1"}),
            DENIED,
            "sql.pragma",
        ),
        (
            "attach",
            "execute",
            json!({"sql": "ATTACH DATABASE '/tmp/airlock-attack.db' AS x"}),
            DENIED,
            "sql.attach",
        ),
        (
            "NUL ends the text for SQLite",
            "execute",
            json!({"sql": "DELETE FROM customers -- \u{0}\nWHERE id = 1"}),
            DENIED,
            "sql.unparsed",
        ),
        (
            "backslash userinfo trick",
            "http_request",
            json!({"url": "https://api.github.com\\@evil.com/x", "method": "GET"}),
            DENIED,
            "egress.noncanonical_url",
        ),
        (
            "password in the URL",
            "http_request",
            json!({"url": "https://user:pass@api.github.com/", "method": "GET"}),
            DENIED,
            "egress.noncanonical_url",
        ),
        (
            ".env by read_file",
            "read_file",
            json!({"path": "/app/.env"}),
            DENIED,
            "file.sensitive_path",
        ),
        (
            "traversal by read_file",
            "read_file",
            json!({"path": "/app/../etc/passwd"}),
            DENIED,
            "file.noncanonical_path",
        ),
        (
            "PEM marker hides a DELETE",
            "execute",
            json!({"sql": "UPDATE orders SET status='shipped' WHERE id=7; -- -----BEGIN PRIVATE KEY-----\nDELETE FROM customers"}),
            HELD,
            "sql.unbounded_write",
        ),
    ]
}

/// Rows of `table`, read straight from the demo server.
async fn rows(demo_url: &str, table: &str) -> i64 {
    let mut direct = support::McpClient::new(demo_url.to_owned(), None);
    direct.initialize().await;
    let reply = direct
        .call_tool(
            "query",
            json!({"sql": format!("SELECT count(*) FROM {table}")}),
        )
        .await;
    reply.last()["result"]["structuredContent"]["rows"][0][0]
        .as_i64()
        .unwrap_or_else(|| panic!("no count of {table}: {reply:?}"))
}

async fn counts(demo_url: &str) -> Vec<i64> {
    let mut out = Vec::new();
    for table in ["customers", "orders", "files"] {
        out.push(rows(demo_url, table).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn every_attack_of_the_issue_is_refused_and_the_database_is_unchanged() {
    if !sdk_tests_enabled("every_attack_of_the_issue_is_refused_and_the_database_is_unchanged") {
        return;
    }
    let stack = Stack::start();
    let before = counts(&stack.demo_url).await;
    let cases = attacks();
    let file = tempfile::NamedTempFile::new().unwrap();
    let table: Vec<Value> = cases
        .iter()
        .map(|(name, tool, args, _, _)| json!({"name": name, "tool": tool, "arguments": args}))
        .collect();
    std::fs::write(file.path(), serde_json::to_vec(&table).unwrap()).unwrap();
    let node = node22();
    let (url, key) = (stack.mcp_url.clone(), stack.api_key.clone());
    let path = file.path().to_str().unwrap().to_owned();
    let report = tokio::task::spawn_blocking(move || {
        run_json_client(
            &node,
            &["tests/sdk/attack_table.mjs", &url, &path],
            &[("AIRLOCK_SDK_KEY", &key)],
        )
    })
    .await
    .unwrap();
    let mut wrong = Vec::new();
    for (name, _, _, code, reason) in &cases {
        let outcome = &report[*name];
        let got_code = outcome["error"]["code"].as_i64();
        let reasons = outcome["error"]["data"]["reasons"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if got_code != Some(*code) || !reasons.iter().any(|r| r == reason) {
            wrong.push(format!(
                "{name}: expected {code} with {reason}, got {outcome}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(counts(&stack.demo_url).await, before, "rows changed");
}
