//! End-to-end: who may talk through the proxy, and which credentials cross it.

mod support;

use serde_json::json;
use support::recording::RecordingUpstream;
use support::{DemoStack, ProxyBuilder, AGENT_KEY, OTHER_KEY, UPSTREAM_TOKEN};

#[tokio::test]
async fn no_key_or_a_wrong_key_gets_401_with_a_hint() {
    let stack = DemoStack::start();
    for key in [None, Some("not-a-key")] {
        let client = stack.proxy.client("demo", key);
        let reply = client
            .post(json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
            .await;
        assert_eq!(reply.status, 401, "{reply:?}");
        assert_eq!(
            reply.headers["www-authenticate"],
            "Bearer realm=\"airlock\""
        );
        assert!(
            reply.last()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("api_keys"),
            "{reply:?}"
        );
    }
}

#[tokio::test]
async fn the_client_token_never_reaches_the_upstream_and_the_injected_one_does() {
    let upstream = RecordingUpstream::start().await;
    let proxy = ProxyBuilder::new()
        .upstream("rec", &upstream.url, "dev")
        .start();
    let mut client = proxy.client("rec", Some(AGENT_KEY));
    let reply = client
        .post_raw(
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {}}).to_string(),
            &[("cookie", "agent-cookie=1"), ("x-trace", "t-1")],
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        reply.headers.get("set-cookie").is_none(),
        "upstream cookies must not reach the agent"
    );
    let session = reply.headers["mcp-session-id"].to_str().unwrap().to_owned();
    assert!(session.starts_with("rec-session-1."), "{session}");
    client.session = Some(session);
    client
        .post(json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .await;

    let recorded = upstream.recorded.lock().unwrap().clone();
    assert_eq!(recorded.len(), 2);
    for (headers, _) in &recorded {
        assert_eq!(headers["authorization"], format!("Bearer {UPSTREAM_TOKEN}"));
        assert_eq!(headers["x-injected"], "by-airlock");
        assert!(headers.get("cookie").is_none(), "{headers:?}");
        assert!(
            !format!("{headers:?}").contains(AGENT_KEY),
            "the agent's key leaked: {headers:?}"
        );
    }
    assert_eq!(recorded[0].0["x-trace"], "t-1", "end-to-end headers pass");
    assert_eq!(
        recorded[1].0["mcp-session-id"], "rec-session-1",
        "the upstream sees its own session id"
    );
}

#[tokio::test]
async fn a_session_presented_by_another_identity_gets_404() {
    let stack = DemoStack::start();
    let mut owner = stack.client(AGENT_KEY);
    owner.initialize().await;
    let mut thief = stack.client(OTHER_KEY);
    thief.session = owner.session.clone();
    thief.protocol = owner.protocol.clone();
    let reply = thief
        .call_tool("query", json!({"sql": "SELECT * FROM customers"}))
        .await;
    assert_eq!(reply.status, 404, "{reply:?}");
    assert_eq!(reply.last()["error"]["code"], -32006);
    let reply = owner.call_tool("query", json!({"sql": "SELECT 1"})).await;
    assert_eq!(reply.status, 200, "the owner keeps the session: {reply:?}");
}

#[tokio::test]
async fn a_foreign_origin_gets_403_and_an_allowed_one_passes() {
    let stack = DemoStack::start();
    let client = stack.client(AGENT_KEY);
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
    let reply = client
        .post_raw(ping.clone(), &[("origin", "http://evil.example")])
        .await;
    assert_eq!(reply.status, 403, "{reply:?}");
    let reply = client
        .post_raw(ping, &[("origin", "http://localhost:6274")])
        .await;
    assert_ne!(reply.status, 403, "{reply:?}");
}

#[tokio::test]
async fn an_unreachable_upstream_gets_502_naming_it() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/mcp", closed.local_addr().unwrap());
    drop(closed);
    let proxy = ProxyBuilder::new().upstream("gone", &url, "dev").start();
    let client = proxy.client("gone", Some(AGENT_KEY));
    let reply = client
        .post(json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .await;
    assert_eq!(reply.status, 502, "{reply:?}");
    assert_eq!(reply.last()["error"]["code"], -32003);
    assert!(
        reply.last()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`gone`"),
        "{reply:?}"
    );
}
