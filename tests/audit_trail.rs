//! The audit trail end to end, through the `airlock` binary: a real control plane,
//! demo server and proxy as child processes on 127.0.0.1, the official TypeScript
//! SDK as the agent, and `airlock audit ...` as the auditor.

mod audit_support;
mod sdk_common;
mod support;

use audit_support::{eventually, get, AuditedProxy, PlaneFiles, AGENT_KEY};
use sdk_common::{
    has_long_digit_run, node22, ok_step, result_text, run_json_client, sdk_tests_enabled,
};
use serde_json::{json, Value};
use std::collections::HashSet;
use support::McpClient;

/// (direction, method or "response", tool, verdict) of each record.
fn shape(records: &[Value]) -> Vec<(String, String, String, String)> {
    records
        .iter()
        .map(|r| {
            let method = r["method"].as_str().unwrap_or_default();
            (
                r["direction"].as_str().unwrap_or_default().to_owned(),
                if method.is_empty() {
                    "response".to_owned()
                } else {
                    method.to_owned()
                },
                r["tool"].as_str().unwrap_or_default().to_owned(),
                r["verdict"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn every_message_of_an_sdk_session_is_recorded_in_order_and_masked() {
    if !sdk_tests_enabled("every_message_of_an_sdk_session_is_recorded_in_order_and_masked") {
        return;
    }
    let node = node22();
    let files = PlaneFiles::new();
    let plane = files.start("127.0.0.1:0", &files.data_dir());
    let (_demo, demo_url) = sdk_common::demo_process();
    files.publish_default_policies(&plane);
    let proxy = AuditedProxy::start(&demo_url, &plane.url, &files.bundle_key(), "");
    let report = run_json_client(
        &node,
        &["tests/sdk/audit_flow.mjs", &proxy.mcp_url()],
        &[("AIRLOCK_SDK_KEY", AGENT_KEY)],
    );
    let session = ok_step(&report, "connect")["sessionId"]
        .as_str()
        .expect("a session id")
        .to_owned();
    // The default policy masks emails and cards for the agent too (decision.mask).
    let seen = result_text(ok_step(&report, "cards"));
    assert!(
        seen.contains("[REDACTED:email]") && seen.contains("[REDACTED:credit_card]"),
        "{seen}"
    );
    assert!(
        !seen.contains("@example.") && !has_long_digit_run(&seen),
        "{seen}"
    );
    assert_eq!(report["drop"]["ok"], false, "{report:#}");

    let mut records = Vec::new();
    let complete = eventually(20, || {
        records = plane.export();
        records.iter().any(|r| r["verdict"] == "deny")
    });
    assert!(
        complete,
        "the denied DROP never reached the log: {records:#?}"
    );
    let expected = [
        ("client_to_server", "initialize", "", "allow"),
        ("server_to_client", "response", "", "allow"),
        ("client_to_server", "notifications/initialized", "", "allow"),
        ("client_to_server", "tools/list", "", "allow"),
        ("server_to_client", "response", "", "allow"),
        ("client_to_server", "tools/call", "query", "allow"),
        ("server_to_client", "response", "query", "allow"),
        ("client_to_server", "tools/call", "execute", "deny"),
    ];
    let expected: Vec<_> = expected
        .iter()
        .map(|(a, b, c, d)| {
            (
                (*a).to_owned(),
                (*b).to_owned(),
                (*c).to_owned(),
                (*d).to_owned(),
            )
        })
        .collect();
    // The SDK also opens the optional GET stream, in the background; the demo
    // server answers it with an error (id null), recorded too, at a racy position.
    let (probes, calls): (Vec<Value>, Vec<Value>) = records
        .iter()
        .cloned()
        .partition(|r| r["direction"] == "server_to_client" && r["jsonrpc_id"] == "null");
    assert!(probes.len() <= 1, "{probes:#?}");
    assert_eq!(shape(&calls), expected, "{records:#?}");
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record["seq"], i as u64 + 1);
    }
    let records = calls;
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record["identity"], "demo-agent");
        assert_eq!(record["node_id"], "proxy-1");
        if i > 0 {
            assert_eq!(record["session_id"], session, "record {i}");
        }
        let payload = record["payload"].to_string();
        assert!(
            !payload.contains("@example."),
            "an email in clear: {payload}"
        );
        assert!(
            !has_long_digit_run(&payload),
            "a card number in clear: {payload}"
        );
    }
    let stored = records[6]["payload"].to_string();
    assert!(stored.contains("[REDACTED:credit_card]"), "{stored}");
    assert_eq!(
        records[7]["reasons"],
        json!(["sql.ddl"]),
        "{:#}",
        records[7]
    );

    let (code, out) = plane.cli(&["audit", "verify"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = plane.cli(&[
        "audit",
        "query",
        "--verdict",
        "deny",
        "--since",
        "1h",
        "--output",
        "json",
    ]);
    assert_eq!(code, 0, "{out}");
    let denied: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(denied.len(), 1, "{out}");
    assert_eq!(denied[0]["tool"], "execute");
    let (code, out) = plane.cli(&["audit", "tail", "-n", "2"]);
    assert!(
        code == 0 && out.lines().count() == 3,
        "header and two rows: {out}"
    );
    let (code, out) = plane.cli(&["sessions", "list"]);
    assert!(code == 0 && out.contains(&session), "{out}");
    let (code, out) = plane.cli(&["sessions", "replay", &session]);
    assert!(code == 0 && out.contains("tools/call query"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_of_the_control_plane_loses_and_duplicates_nothing() {
    let files = PlaneFiles::new();
    let data = files.data_dir();
    let plane = files.start("127.0.0.1:0", &data);
    let listen = plane.listen();
    let url = plane.url.clone();
    let (_demo, demo_url) = sdk_common::demo_process();
    files.publish_default_policies(&plane);
    let proxy = AuditedProxy::start(
        &demo_url,
        &url,
        &files.bundle_key(),
        "buffer_events = 100000",
    );
    let mut client = McpClient::new(proxy.mcp_url(), Some(AGENT_KEY));
    client.initialize().await;
    const CALLS: usize = 150;
    let calls = tokio::spawn(async move {
        for _ in 0..CALLS {
            let id = client.next_id();
            let reply = client
                .post(json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"}))
                .await;
            assert!(reply.last()["result"]["tools"].is_array(), "{reply:?}");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    drop(plane); // SIGKILL in the middle of the stream
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let plane = files.start(&listen, &data);
    calls
        .await
        .expect("every call succeeded while the control plane was down");

    let expected = 3 + 2 * CALLS;
    let mut records = Vec::new();
    let arrived = eventually(30, || {
        records = plane.export();
        records.len() >= expected
    });
    assert!(arrived, "{} of {expected} events arrived", records.len());
    assert_eq!(records.len(), expected, "duplicates were stored");
    let ids: HashSet<&str> = records
        .iter()
        .filter_map(|r| r["event_id"].as_str())
        .collect();
    assert_eq!(ids.len(), expected, "an event id is stored twice");
    let (code, out) = plane.cli(&["audit", "verify"]);
    assert_eq!(code, 0, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_buffer_with_the_control_plane_down_refuses_calls() {
    let (_demo, demo_url) = sdk_common::demo_process();
    for (mode, refused) in [("refuse", true), ("allow", false)] {
        let files = PlaneFiles::new();
        let plane = files.start("127.0.0.1:0", &files.data_dir());
        files.publish_default_policies(&plane);
        let audit = format!("buffer_events = 4\non_full = \"{mode}\"");
        let proxy = AuditedProxy::start(&demo_url, &plane.url, &files.bundle_key(), &audit);
        drop(plane); // the proxy keeps its bundle; its audit events have nowhere to go
        let mut client = McpClient::new(proxy.mcp_url(), Some(AGENT_KEY));
        client.initialize().await; // 3 events: initialize, its answer, initialized
        let id = client.next_id();
        let list = client
            .post(json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"}))
            .await; // admitted with 3 < 4 waiting; 5 afterwards
        assert!(list.last()["result"]["tools"].is_array(), "{list:?}");
        let reply = client.call_tool("query", json!({"sql": "SELECT 1"})).await;
        if refused {
            assert_eq!(reply.status.as_u16(), 503, "{reply:?}");
            assert_eq!(reply.error_code(), Some(-32020), "{reply:?}");
            let message = reply.last()["error"]["message"]
                .as_str()
                .unwrap_or_default();
            assert!(message.contains("could not be recorded"), "{message}");
            let metrics = get(&proxy.base, "/metrics");
            assert!(
                metrics.contains("airlock_audit_backlog_events 5\n"),
                "{metrics}"
            );
            assert!(
                metrics.contains("airlock_audit_refused_calls_total 1\n"),
                "{metrics}"
            );
        } else {
            assert!(reply.last()["result"].is_object(), "{reply:?}");
        }
    }
}
