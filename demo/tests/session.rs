//! Streamable HTTP transport: sessions, revisions, auth, batches and limits.

mod support;

use airlock_demo::DemoOptions;
use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::json;
use support::{initialize_request, Demo};

#[tokio::test]
async fn initialize_opens_a_session_and_negotiates_the_revision() {
    let demo = Demo::default().await;
    let client = demo.client();
    let reply = client.post(&initialize_request("2025-06-18"), &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["content-type"], "application/json");
    let session = reply.session_id().expect("Mcp-Session-Id header");
    assert!(session.len() >= 16 && session.bytes().all(|b| (0x21..=0x7e).contains(&b)));
    let body = reply.json();
    assert_eq!(body["id"], 1);
    assert_eq!(body["result"]["protocolVersion"], "2025-06-18");
    assert_eq!(body["result"]["serverInfo"]["name"], "airlock-demo");
    assert!(body["result"]["capabilities"]["tools"].is_object());

    // Unsupported request: the latest session revision, and a different session.
    let reply = client.post(&initialize_request("2024-11-05"), &[]).await;
    assert_eq!(reply.json()["result"]["protocolVersion"], "2025-11-25");
    assert_ne!(reply.session_id().unwrap(), session);

    let ping = json!({"jsonrpc": "2.0", "id": "p", "method": "ping"});
    let reply = client.post(&ping, &[("mcp-session-id", &session)]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.json(),
        json!({"jsonrpc": "2.0", "id": "p", "result": {}})
    );
}

#[tokio::test]
async fn requests_need_a_known_session() {
    let demo = Demo::default().await;
    let client = demo.client();
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let missing = client.post(&list, &[]).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert!(missing.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Mcp-Session-Id"));
    let unknown = client
        .post(&list, &[("mcp-session-id", "no-such-session")])
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn delete_ends_the_session() {
    let demo = Demo::default().await;
    let client = demo.client();
    let session = client.initialize("2025-11-25").await;
    let headers = [("mcp-session-id", session.as_str())];
    let ended = client.send(Method::DELETE, Bytes::new(), &headers).await;
    assert!(ended.status == StatusCode::NO_CONTENT || ended.status == StatusCode::OK);
    let ping = json!({"jsonrpc": "2.0", "id": 3, "method": "ping"});
    assert_eq!(
        client.post(&ping, &headers).await.status,
        StatusCode::NOT_FOUND
    );
    let again = client.send(Method::DELETE, Bytes::new(), &headers).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(
        client.send(Method::DELETE, Bytes::new(), &[]).await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn notifications_and_responses_get_202_without_body() {
    let demo = Demo::default().await;
    let client = demo.client();
    let session = client.initialize("2025-06-18").await;
    let headers = [("mcp-session-id", session.as_str())];
    for message in [
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 9}}),
        json!({"jsonrpc": "2.0", "id": 41, "result": {}}),
    ] {
        let reply = client.post(&message, &headers).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{message}");
        assert!(reply.body.is_empty());
    }
}

#[tokio::test]
async fn a_required_bearer_token_is_enforced() {
    let options = DemoOptions {
        required_bearer: Some("s3cret-token".into()),
        ..DemoOptions::default()
    };
    let demo = Demo::start(options).await;
    let mut client = demo.client();
    let reply = client.post(&initialize_request("2025-06-18"), &[]).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.headers["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    assert!(reply.session_id().is_none());
    client.token = Some("wrong".into());
    let reply = client.post(&initialize_request("2025-06-18"), &[]).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    client.token = Some("s3cret-token".into());
    let session = client.initialize("2025-06-18").await;
    assert!(!session.is_empty());
}

#[tokio::test]
async fn server_discover_and_stateless_requests_need_no_session() {
    let demo = Demo::default().await;
    let client = demo.client();
    let discover = json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover"});
    for headers in [vec![], vec![("mcp-protocol-version", "2026-07-28")]] {
        let reply = client.post(&discover, &headers).await;
        assert_eq!(reply.status, StatusCode::OK);
        let result = &reply.json()["result"];
        let versions = result["supportedVersions"].as_array().unwrap();
        for v in ["2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"] {
            assert!(versions.contains(&json!(v)), "{v} missing");
        }
        assert_eq!(
            result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
            "airlock-demo"
        );
        assert!(result["capabilities"]["tools"].is_object());
        assert_eq!(result["resultType"], "complete");
        assert_eq!(result["cacheScope"], "public");
    }
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let reply = client
        .post(&list, &[("mcp-protocol-version", "2026-07-28")])
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["result"]["tools"].as_array().unwrap().len(), 4);
    assert_eq!(reply.json()["result"]["resultType"], "complete");
    assert_eq!(reply.json()["result"]["ttlMs"], 0);
    let bad = client
        .post(&list, &[("mcp-protocol-version", "1999-01-01")])
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn batches_are_answered_on_2025_03_26_only() {
    let demo = Demo::default().await;
    let client = demo.client();
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "no/such/method"},
        {"jsonrpc": "2.0", "id": 4, "method": "tools/call",
         "params": {"name": "query", "arguments": {"sql": "SELECT count(*) FROM customers"}}}
    ]);
    let old = client.initialize("2025-03-26").await;
    let reply = client.post(&batch, &[("mcp-session-id", &old)]).await;
    assert_eq!(reply.status, StatusCode::OK);
    let replies = reply.json();
    let replies = replies.as_array().unwrap();
    assert_eq!(
        replies.len(),
        4,
        "the notification gets no reply: {replies:?}"
    );
    assert_eq!(replies[0]["id"], 1);
    assert_eq!(replies[1]["result"]["tools"].as_array().unwrap().len(), 4);
    assert_eq!(replies[2]["error"]["code"], -32601);
    assert_eq!(replies[3]["result"]["structuredContent"]["rows"][0][0], 50);

    let only_notes = json!([{"jsonrpc": "2.0", "method": "notifications/initialized"}]);
    assert_eq!(
        client
            .post(&only_notes, &[("mcp-session-id", &old)])
            .await
            .status,
        StatusCode::ACCEPTED
    );

    let new = client.initialize("2025-06-18").await;
    let refused = client.post(&batch, &[("mcp-session-id", &new)]).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.json()["error"]["code"], -32600);
}

#[tokio::test]
async fn malformed_oversized_and_unknown_requests_are_refused() {
    let demo = Demo::default().await;
    let client = demo.client();
    let session = client.initialize("2025-11-25").await;
    let headers = [
        ("mcp-session-id", session.as_str()),
        ("accept", "application/json"),
    ];

    let garbage = client
        .send(
            Method::POST,
            Bytes::from_static(b"{\"jsonrpc\": "),
            &headers,
        )
        .await;
    assert_eq!(garbage.json()["error"]["code"], -32700);

    let huge = Bytes::from(vec![b' '; 4 * 1024 * 1024 + 1]);
    let too_big = client.send(Method::POST, huge, &headers).await;
    assert_eq!(too_big.status, StatusCode::PAYLOAD_TOO_LARGE);

    let unknown = json!({"jsonrpc": "2.0", "id": 5, "method": "resources/list"});
    let reply = client.post(&unknown, &headers).await;
    assert_eq!(reply.json()["error"]["code"], -32601);
    assert_eq!(reply.json()["id"], 5);

    let no_version = json!({"id": 6, "method": "ping"});
    assert_eq!(
        client.post(&no_version, &headers).await.json()["error"]["code"],
        -32600
    );

    assert_eq!(
        client
            .send(Method::GET, Bytes::new(), &headers)
            .await
            .status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    let elsewhere = demo.client();
    let mut request = elsewhere.request(Method::POST, Bytes::from_static(b"{}"), &[]);
    *request.uri_mut() = demo.url.replace("/mcp", "/other").parse().unwrap();
    assert_eq!(
        elsewhere.stream(request).await.status(),
        StatusCode::NOT_FOUND
    );
}
