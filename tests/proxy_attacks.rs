//! End-to-end attacks on promise 1 (what is decided is what is forwarded): each body
//! tries to make the policy see one call while the upstream runs another. Every one
//! must be refused before it moves, and the demo database must be untouched.

mod support;

use serde_json::json;
use support::{customers_table_exists, DemoStack, McpClient, AGENT_KEY};

const DROP: &str = r#"{"name":"execute","arguments":{"sql":"DROP TABLE customers"}}"#;
const QUERY: &str = r#"{"name":"query","arguments":{"sql":"SELECT 1"}}"#;

struct Attack {
    name: &'static str,
    body: Vec<u8>,
    headers: Vec<(&'static str, &'static str)>,
    status: u16,
    code: i64,
}

fn attack(
    name: &'static str,
    body: impl Into<Vec<u8>>,
    headers: &[(&'static str, &'static str)],
    status: u16,
    code: i64,
) -> Attack {
    Attack {
        name,
        body: body.into(),
        headers: headers.to_vec(),
        status,
        code,
    }
}

fn nested(depth: usize) -> String {
    let inner = format!("{}1{}", "[".repeat(depth - 3), "]".repeat(depth - 3));
    format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"query","arguments":{{"x":{inner}}}}}}}"#
    )
}

fn attacks() -> Vec<Attack> {
    let call = |params: &str| {
        format!(r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{params}}}"#)
    };
    let mut oversize = call(&format!(
        r#"{{"name":"query","arguments":{{"sql":"SELECT 1","pad":"{}"}}}}"#,
        "x".repeat(4 * 1024 * 1024)
    ));
    oversize.truncate(4 * 1024 * 1024 + 1);
    let mut bad_utf8 = call(QUERY).into_bytes();
    bad_utf8.splice(40..40, [0xff, 0xfe]);
    vec![
        attack(
            "duplicate method",
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/list","method":"tools/call","params":{"name":"execute","arguments":{"sql":"DROP TABLE customers"}}}"#,
            &[],
            400,
            -32700,
        ),
        attack(
            "duplicate params",
            format!(
                r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{QUERY},"params":{DROP}}}"#
            ),
            &[],
            400,
            -32700,
        ),
        attack(
            "duplicate tool name",
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"query","name":"execute","arguments":{"sql":"DROP TABLE customers"}}}"#,
            &[],
            400,
            -32700,
        ),
        attack(
            "batch under 2025-06-18",
            format!(
                "[{},{}]",
                call(QUERY),
                call(DROP).replace("\"id\":7", "\"id\":8")
            ),
            &[],
            400,
            -32600,
        ),
        attack(
            "mixed-case method",
            call(DROP).replace("tools/call", "Tools/Call"),
            &[],
            400,
            -32600,
        ),
        attack(
            "Mcp-Name mismatch",
            call(DROP),
            &[("mcp-name", "query")],
            400,
            -32600,
        ),
        attack(
            "Mcp-Method mismatch",
            call(DROP),
            &[("mcp-method", "tools/list")],
            400,
            -32600,
        ),
        attack(
            "2026-07-28 without Mcp-Method",
            call(DROP),
            &[("mcp-protocol-version", "2026-07-28")],
            400,
            -32600,
        ),
        attack(
            "2026-07-28 with a lying Mcp-Name",
            call(DROP),
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "query"),
            ],
            400,
            -32600,
        ),
        attack("oversize body (4 MiB + 1)", oversize, &[], 413, -32009),
        attack("depth 65", nested(65), &[], 400, -32700),
        attack(
            "UTF-16 charset",
            call(DROP),
            &[("content-type", "application/json; charset=utf-16")],
            400,
            -32600,
        ),
        attack(
            "gzip content coding",
            call(DROP),
            &[("content-encoding", "gzip")],
            400,
            -32600,
        ),
        attack("invalid UTF-8", bad_utf8, &[], 400, -32700),
    ]
}

#[tokio::test]
async fn bodies_that_parsers_could_read_differently_are_refused_before_they_move() {
    let stack = DemoStack::start();
    let mut client = stack.client(AGENT_KEY);
    client.initialize().await;
    let mut failures = Vec::new();
    for attack in attacks() {
        let reply = client.post_raw(attack.body.clone(), &attack.headers).await;
        let code = reply
            .messages
            .first()
            .and_then(|m| m["error"]["code"].as_i64());
        if reply.status.as_u16() != attack.status || code != Some(attack.code) {
            failures.push(format!(
                "{}: got {} {:?}, want {} {}",
                attack.name, reply.status, code, attack.status, attack.code
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(
        customers_table_exists(&stack).await,
        "an attack dropped the table"
    );
}

#[tokio::test]
async fn depth_64_is_still_accepted() {
    let stack = DemoStack::start();
    let mut client = stack.client(AGENT_KEY);
    client.initialize().await;
    let reply = client
        .post_raw(nested(64), &[("accept", "application/json")])
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
}

#[tokio::test]
async fn a_2025_03_26_batch_hiding_a_denied_call_is_refused_whole() {
    let stack = DemoStack::start();
    let mut client = stack.client(AGENT_KEY);
    client.initialize_as("2025-03-26").await;
    client.protocol = None; // no MCP-Protocol-Version: 2025-03-26, where batches exist
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "query", "arguments": {"sql": "SELECT 1"}}},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "execute", "arguments": {"sql": "DROP TABLE customers"}}},
    ]);
    let reply = client.post(batch).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let answers = reply
        .last()
        .as_array()
        .unwrap_or_else(|| panic!("{reply:?}"));
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0]["id"], 1);
    assert_eq!(
        answers[0]["error"]["code"], -32004,
        "the allowed element is not forwarded either"
    );
    assert_eq!(answers[1]["id"], 2);
    assert_eq!(answers[1]["error"]["code"], -32001);
    assert!(customers_table_exists(&stack).await);
}

#[tokio::test]
async fn an_allowed_2025_03_26_batch_is_forwarded() {
    let stack = DemoStack::start();
    let mut client = stack.client(AGENT_KEY);
    client.initialize_as("2025-03-26").await;
    client.protocol = None;
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    ]);
    let reply = client.post(batch).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.last().as_array().map(Vec::len), Some(2), "{reply:?}");
}

#[tokio::test]
async fn a_notification_carrying_a_denied_call_is_refused() {
    let stack = DemoStack::start();
    let mut client = stack.client(AGENT_KEY);
    client.initialize().await;
    let body = json!({"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "execute", "arguments": {"sql": "DROP TABLE customers"}}});
    let reply = client.post(body).await;
    assert_eq!(reply.status, 403, "{reply:?}");
    assert_eq!(reply.last()["error"]["code"], -32001);
    assert!(reply.last()["id"].is_null());
    assert!(customers_table_exists(&stack).await);
}

#[tokio::test]
async fn a_stateless_2026_request_with_matching_headers_is_decided_normally() {
    let stack = DemoStack::start();
    let client = McpClient::new(format!("{}/mcp/demo", stack.proxy.url()), Some(AGENT_KEY));
    let body = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"execute","arguments":{"sql":"DROP TABLE customers"}}}"#;
    let headers = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "execute"),
    ];
    let reply = client.post_raw(body, &headers).await;
    assert_eq!(reply.last()["error"]["code"], -32001, "{reply:?}");
    assert!(customers_table_exists(&stack).await);
}
