//! `tools/call` answered as Server-Sent Events, streamed as produced.

mod support;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{json, Value};
use support::Demo;

/// Reads the SSE body frame by frame; returns each event's JSON in arrival order, and
/// the first data frame as received.
async fn events(mut body: Incoming) -> (Vec<Value>, String) {
    let mut buffer = String::new();
    let mut first_frame = None;
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.unwrap();
        let Some(data) = frame.data_ref() else {
            continue;
        };
        let text = std::str::from_utf8(data).unwrap();
        first_frame.get_or_insert_with(|| text.to_owned());
        buffer.push_str(text);
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let mut lines = event.lines();
            assert_eq!(lines.next(), Some("event: message"), "{event:?}");
            let data = lines.next().unwrap().strip_prefix("data: ").unwrap();
            out.push(serde_json::from_str(data).unwrap());
        }
    }
    assert!(buffer.is_empty(), "trailing partial event: {buffer:?}");
    (out, first_frame.unwrap_or_default())
}

fn call(id: u32, meta: Option<Value>) -> Bytes {
    let mut params = json!({"name": "query", "arguments": {"sql": "SELECT count(*) FROM orders"}});
    if let Some(meta) = meta {
        params["_meta"] = meta;
    }
    Bytes::from(
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}).to_string(),
    )
}

#[tokio::test]
async fn progress_event_arrives_before_the_result() {
    let demo = Demo::default().await;
    let client = demo.client();
    let session = client.initialize("2025-11-25").await;
    let headers = [("mcp-session-id", session.as_str())];
    let request = client.request(
        Method::POST,
        call(11, Some(json!({"progressToken": "tok-1"}))),
        &headers,
    );
    let response = client.stream(request).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let (events, first_frame) = events(response.into_body()).await;
    // Streamed as produced: the first chunk on the wire is the progress event alone, sent
    // before the tool ran (a body buffered into one string would carry the result too).
    assert!(
        first_frame.contains("notifications/progress"),
        "{first_frame:?}"
    );
    assert!(!first_frame.contains("\"result\""), "{first_frame:?}");
    assert!(events.len() >= 2, "{events:?}");
    let (result, progress) = events.split_last().unwrap();
    for event in progress {
        assert_eq!(event["method"], "notifications/progress");
        assert_eq!(event["params"]["progressToken"], "tok-1");
    }
    assert_eq!(result["id"], 11);
    assert_eq!(result["result"]["structuredContent"]["rows"][0][0], 120);
}

#[tokio::test]
async fn without_a_progress_token_the_stream_holds_only_the_result() {
    let demo = Demo::default().await;
    let client = demo.client();
    let session = client.initialize("2025-06-18").await;
    let request = client.request(
        Method::POST,
        call(12, None),
        &[("mcp-session-id", &session)],
    );
    let response = client.stream(request).await;
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let (events, _) = events(response.into_body()).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["id"], 12);
    assert_eq!(events[0]["result"]["isError"], false);
}

#[tokio::test]
async fn json_only_clients_get_json() {
    let demo = Demo::default().await;
    let client = demo.client();
    let session = client.initialize("2025-06-18").await;
    let headers = [
        ("mcp-session-id", session.as_str()),
        ("accept", "application/json"),
    ];
    let reply = client
        .send(
            Method::POST,
            call(13, Some(json!({"progressToken": 5}))),
            &headers,
        )
        .await;
    assert_eq!(reply.headers["content-type"], "application/json");
    assert_eq!(reply.json()["id"], 13);
}
