//! End-to-end: messages inside the upstream's SSE stream are decided one by one.
//! A server-to-client request the policy refuses never reaches the client and is
//! answered to the upstream with our error; a `tools/list` result in an SSE event is
//! filtered; everything else passes as sent.

mod support;

use serde_json::json;
use std::time::Duration;
use support::recording::RecordingUpstream;
use support::{ProxyBuilder, AGENT_KEY, UPSTREAM_TOKEN};

const POLICY: &str = r#"package airlock

import rego.v1

decision := {"verdict": "deny", "reasons": ["test.no_sampling"], "message": "sampling is off here"} if {
	input.direction == "server_to_client"
	input.message.method == "sampling/createMessage"
} else := {"verdict": "deny", "reasons": ["test.hidden"], "message": "execute is hidden"} if {
	input.tool.name == "execute"
} else := {"verdict": "allow", "reasons": ["test.allow"]}
"#;

async fn session(
    upstream: &RecordingUpstream,
    proxy: &support::RunningProxy,
) -> support::McpClient {
    let mut client = proxy.client("rec", Some(AGENT_KEY));
    let reply = client
        .post(json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {}}))
        .await;
    client.session = Some(reply.headers["mcp-session-id"].to_str().unwrap().to_owned());
    client.protocol = Some("2025-06-18".to_owned());
    assert_eq!(upstream.recorded.lock().unwrap().len(), 1);
    client
}

#[tokio::test]
async fn a_refused_server_request_is_dropped_and_answered_upstream() {
    let upstream = RecordingUpstream::start().await;
    let proxy = ProxyBuilder::new()
        .upstream("rec", &upstream.url, "dev")
        .policy(POLICY)
        .start();
    let client = session(&upstream, &proxy).await;
    let call = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "query", "arguments": {}}});
    let reply = client.post_raw(call.to_string(), &[]).await;
    assert!(reply.sse, "{reply:?}");
    let methods: Vec<_> = reply.messages.iter().map(|m| m["method"].clone()).collect();
    assert_eq!(
        reply.messages.len(),
        2,
        "sampling must be dropped: {methods:?}"
    );
    assert_eq!(reply.messages[0]["method"], "elicitation/create");
    assert_eq!(
        reply.messages[1]["id"], 5,
        "the multi-line result event arrives"
    );
    assert!(
        String::from_utf8_lossy(&reply.body).contains(": keep-alive"),
        "comments pass through"
    );

    // The upstream gets our error for "s1" on its own session, with its own credentials.
    let mut answer = None;
    for _ in 0..50 {
        answer = upstream
            .recorded
            .lock()
            .unwrap()
            .iter()
            .find(|(_, body)| body["id"] == "s1")
            .cloned();
        if answer.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (headers, body) = answer.expect("the proxy answered the refused sampling request upstream");
    assert_eq!(body["error"]["code"], -32001, "{body}");
    assert_eq!(body["error"]["message"], "sampling is off here");
    assert_eq!(headers["mcp-session-id"], "rec-session-1");
    assert_eq!(headers["authorization"], format!("Bearer {UPSTREAM_TOKEN}"));
}

#[tokio::test]
async fn a_tools_list_result_in_an_sse_event_is_filtered() {
    let upstream = RecordingUpstream::start().await;
    let proxy = ProxyBuilder::new()
        .upstream("rec", &upstream.url, "dev")
        .policy(POLICY)
        .start();
    let client = session(&upstream, &proxy).await;
    let list = json!({"jsonrpc": "2.0", "id": 6, "method": "tools/list"});
    let reply = client.post_raw(list.to_string(), &[]).await;
    assert!(reply.sse, "{reply:?}");
    let tools = reply.last()["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{reply:?}"));
    let names: Vec<_> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["query"]);

    let reply = client
        .post_raw(list.to_string(), &[("accept", "application/json")])
        .await;
    assert!(!reply.sse);
    let tools = reply.last()["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{reply:?}"));
    assert_eq!(tools.len(), 1, "JSON answers are filtered too: {reply:?}");
}

#[tokio::test]
async fn the_get_stream_is_decided_event_by_event_too() {
    let upstream = RecordingUpstream::start().await;
    let proxy = ProxyBuilder::new()
        .upstream("rec", &upstream.url, "dev")
        .policy(POLICY)
        .start();
    let client = session(&upstream, &proxy).await;
    let reply = client
        .send(
            hyper::Method::GET,
            bytes::Bytes::new(),
            &[("accept", "text/event-stream")],
        )
        .await;
    assert!(reply.sse, "{reply:?}");
    let methods: Vec<_> = reply.messages.iter().map(|m| m["method"].clone()).collect();
    assert_eq!(
        methods,
        [json!("elicitation/create"), serde_json::Value::Null],
        "{reply:?}"
    );
    let get = upstream.recorded.lock().unwrap()[1].0.clone();
    assert_eq!(get["mcp-session-id"], "rec-session-1");
}

#[tokio::test]
async fn sse_events_are_forwarded_as_they_arrive_not_when_the_stream_ends() {
    use http_body_util::BodyExt;
    let upstream = RecordingUpstream::start().await;
    let proxy = ProxyBuilder::new()
        .upstream("rec", &upstream.url, "dev")
        .policy(POLICY)
        .start();
    let client = session(&upstream, &proxy).await;
    let call = json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call",
        "params": {"name": "query", "arguments": {"hold_ms": 1500}}});
    let started = std::time::Instant::now();
    let response = client
        .open(hyper::Method::POST, call.to_string().into(), &[])
        .await;
    let mut body = response.into_body();
    let first = body.frame().await.expect("a frame").expect("no error");
    let first_at = started.elapsed();
    let first = first.into_data().expect("data");
    assert!(
        String::from_utf8_lossy(&first).contains("notifications/progress"),
        "{first:?}"
    );
    assert!(
        first_at < Duration::from_millis(1000),
        "the first event waited for the stream's end: {first_at:?}"
    );
    let rest = body.collect().await.expect("rest").to_bytes();
    assert!(
        String::from_utf8_lossy(&rest).contains("\"id\":8"),
        "{rest:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(1500));
}
