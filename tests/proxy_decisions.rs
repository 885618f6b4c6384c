//! End-to-end: the proxy in front of the demo server decides each call with the
//! default policies (allow, deny, require approval, tools/list filtering, SSE).

mod support;

use serde_json::json;
use support::{count_customers, customers_table_exists, DemoStack, AGENT_KEY, READONLY_KEY};

#[tokio::test]
async fn initialize_goes_through_and_the_session_is_sealed() {
    let stack = DemoStack::start();
    let mut client = stack.client(AGENT_KEY);
    let reply = client.initialize().await;
    assert_eq!(
        reply.last()["result"]["protocolVersion"],
        "2025-06-18",
        "{reply:?}"
    );
    let session = client.session.clone().expect("a session id");
    let (_, tag) = session.rsplit_once('.').expect("sealed id has a tag");
    assert_eq!(tag.len(), 32, "{session}");
}

#[tokio::test]
async fn tools_list_shows_only_the_tools_the_identity_may_call() {
    let stack = DemoStack::start();
    let names = |reply: &support::Reply| -> Vec<String> {
        reply.last()["result"]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("no tools in {reply:?}"))
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let mut reader = stack.client(READONLY_KEY);
    reader.initialize().await;
    let listed = reader
        .post(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        .await;
    let reader_tools = names(&listed);
    assert!(
        reader_tools.contains(&"query".to_owned()),
        "{reader_tools:?}"
    );
    assert!(
        !reader_tools.contains(&"execute".to_owned()),
        "{reader_tools:?}"
    );

    let mut agent = stack.client(AGENT_KEY);
    agent.initialize().await;
    let listed = agent
        .post(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        .await;
    assert!(names(&listed).contains(&"execute".to_owned()), "{listed:?}");
}

#[tokio::test]
async fn an_allowed_query_returns_the_upstream_rows() {
    let stack = DemoStack::start();
    let mut client = stack.client(AGENT_KEY);
    client.initialize().await;
    let reply = client
        .call_tool("query", json!({"sql": "SELECT count(*) FROM customers"}))
        .await;
    assert_eq!(reply.status, 200);
    let count = reply.last()["result"]["structuredContent"]["rows"][0][0].as_i64();
    assert!(count.is_some_and(|c| c > 0), "{reply:?}");
}

#[tokio::test]
async fn a_denied_drop_table_gets_our_error_and_never_reaches_the_database() {
    let stack = DemoStack::start();
    let mut client = stack.client(AGENT_KEY);
    client.initialize().await;
    let reply = client
        .call_tool("execute", json!({"sql": "DROP TABLE customers"}))
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let message = reply.last();
    assert_eq!(message["id"], 2, "the error answers the same id");
    assert_eq!(message["error"]["code"], -32001, "{message}");
    assert!(
        message["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Schema changes (DROP)"),
        "{message}"
    );
    assert_eq!(message["error"]["data"]["reasons"][0], "sql.ddl");
    assert!(
        message["error"]["data"]["revision"].is_string(),
        "{message}"
    );
    assert!(
        customers_table_exists(&stack).await,
        "the table was dropped"
    );
}

#[tokio::test]
async fn an_insert_on_prod_requires_approval_and_is_not_executed() {
    let stack = DemoStack::start();
    let before = count_customers(&stack).await;
    let mut client = stack.client(AGENT_KEY);
    client.initialize().await;
    let sql = "INSERT INTO customers (name, email) VALUES ('Eve', 'eve@example.com')";
    let reply = client.call_tool("execute", json!({"sql": sql})).await;
    let error = &reply.last()["error"];
    assert_eq!(error["code"], -32002, "{reply:?}");
    assert!(
        error["message"].as_str().unwrap().contains("approval"),
        "{error}"
    );
    assert!(error["data"]["reviewers"].is_array(), "{error}");
    assert_eq!(
        count_customers(&stack).await,
        before,
        "the row was inserted"
    );
}

#[tokio::test]
async fn an_sse_answer_streams_progress_then_the_result() {
    let stack = DemoStack::start();
    let mut client = stack.client(AGENT_KEY);
    client.initialize().await;
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {
        "name": "query", "arguments": {"sql": "SELECT 1"}, "_meta": {"progressToken": "p1"}}});
    let reply = client
        .post_raw(
            body.to_string(),
            &[("accept", "application/json, text/event-stream")],
        )
        .await;
    assert!(reply.sse, "expected an SSE answer: {reply:?}");
    assert_eq!(
        reply.messages[0]["method"], "notifications/progress",
        "{reply:?}"
    );
    assert_eq!(reply.last()["id"], 9);
    assert!(reply.last()["result"].is_object(), "{reply:?}");
}

#[tokio::test]
async fn healthz_and_readyz_answer() {
    let stack = DemoStack::start();
    let client = support::McpClient::new(format!("{}/healthz", stack.proxy.url()), None);
    let reply = client
        .send(hyper::Method::GET, bytes::Bytes::new(), &[])
        .await;
    assert_eq!(reply.status, 200);
    let client = support::McpClient::new(format!("{}/readyz", stack.proxy.url()), None);
    let reply = client
        .send(hyper::Method::GET, bytes::Bytes::new(), &[])
        .await;
    assert_eq!(reply.status, 200);
    assert!(reply.last()["revision"].is_string(), "{reply:?}");
}

#[tokio::test]
async fn delete_ends_the_upstream_session() {
    let stack = DemoStack::start();
    let mut client = stack.client(AGENT_KEY);
    client.initialize().await;
    let reply = client
        .send(hyper::Method::DELETE, bytes::Bytes::new(), &[])
        .await;
    assert!(reply.status.is_success(), "{reply:?}");
    let reply = client.call_tool("query", json!({"sql": "SELECT 1"})).await;
    assert_eq!(
        reply.status, 404,
        "the upstream forgot the session: {reply:?}"
    );
}
