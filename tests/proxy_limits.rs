//! End-to-end: the proxy sheds load past `server.max_concurrent_requests`.

mod support;

use serde_json::json;
use std::time::Duration;
use support::recording::RecordingUpstream;
use support::{ProxyBuilder, AGENT_KEY};

#[tokio::test]
async fn requests_past_the_concurrency_limit_get_503_and_may_retry() {
    let upstream = RecordingUpstream::start().await;
    let proxy = ProxyBuilder::new()
        .upstream("rec", &upstream.url, "dev")
        .server_line("max_concurrent_requests = 1")
        .start();
    let slow = proxy.client("rec", Some(AGENT_KEY));
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "query", "arguments": {"delay_ms": 1500}}});
    let in_flight = tokio::spawn(async move { slow.post(call).await });
    tokio::time::sleep(Duration::from_millis(500)).await;

    let client = proxy.client("rec", Some(AGENT_KEY));
    let ping = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"});
    let reply = client.post(ping.clone()).await;
    assert_eq!(reply.status, 503, "{reply:?}");
    assert_eq!(reply.last()["error"]["code"], -32010);

    assert_eq!(in_flight.await.unwrap().status, 200);
    let reply = client.post(ping).await;
    assert_eq!(reply.status, 200, "the permit is released: {reply:?}");
}
