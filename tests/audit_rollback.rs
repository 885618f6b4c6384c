//! Tamper evidence that does not trust the control plane's box (promise 6): a proxy
//! keeps the newest checkpoint it was given and ships nothing to a control plane
//! whose log does not extend it. The control plane's data directory is rolled back
//! to an older copy, or replaced by a fork (another history after a common prefix);
//! the proxy refuses it (`/readyz`, `airlock nodes list`), calls go on while its
//! backlog has room, and `airlock audit verify --checkpoint` with a checkpoint kept
//! elsewhere fails too. Restoring the genuine log lets the waiting events through.

mod audit_support;
mod sdk_common;
mod support;

use audit_support::{append_direct, eventually, AuditedProxy, Plane, PlaneFiles, AGENT_KEY};
use serde_json::{json, Value};
use support::McpClient;

/// Waits until the proxy's view of the audit log is `trust` with at least `size`
/// records; returns that view.
fn wait_trust(proxy: &AuditedProxy, trust: &str, size: u64) -> Value {
    let mut seen = Value::Null;
    let reached = eventually(40, || {
        seen = proxy.audit_log();
        seen["trust"] == trust && seen["checkpoint_size"].as_u64().unwrap_or(0) >= size
    });
    assert!(
        reached,
        "the proxy never reached {trust} with {size} records: {seen}"
    );
    seen
}

async fn list_tools(client: &mut McpClient, times: usize) {
    for _ in 0..times {
        let id = client.next_id();
        let reply = client
            .post(json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"}))
            .await;
        assert!(reply.last()["result"]["tools"].is_array(), "{reply:?}");
    }
}

/// The proxy's node line in `airlock nodes list`.
fn node_line(plane: &Plane) -> String {
    let (code, out) = plane.cli(&["nodes", "list"]);
    assert_eq!(code, 0, "{out}");
    out.lines()
        .find(|l| l.starts_with("proxy-1"))
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_control_plane_is_refused_by_the_proxy_and_by_a_saved_checkpoint() {
    let files = PlaneFiles::new();
    let data = files.data_dir();
    let old = files.dir.path().join("data-yesterday");
    let plane = files.start("127.0.0.1:0", &data);
    let listen = plane.listen();
    let (_demo, demo_url) = sdk_common::demo_process();
    files.publish_default_policies(&plane);
    let proxy = AuditedProxy::start(&demo_url, &plane.url, &files.bundle_key(), "");
    let mut client = McpClient::new(proxy.mcp_url(), Some(AGENT_KEY));
    client.initialize().await; // 3 events
    wait_trust(&proxy, "verified", 3);
    drop(plane);
    sdk_common::copy_dir(&data, &old); // yesterday's backup

    let plane = files.start(&listen, &data);
    list_tools(&mut client, 2).await; // 4 more events
    wait_trust(&proxy, "verified", 7);
    assert!(
        eventually(10, || std::fs::read_to_string(proxy.checkpoint_file())
            .is_ok_and(|t| t.lines().nth(1) == Some("7"))),
        "the proxy's checkpoint file never reached 7 records"
    );
    let saved = files.dir.path().join("checkpoint-from-proxy");
    std::fs::copy(proxy.checkpoint_file(), &saved).expect("copy the proxy's checkpoint");
    drop(plane);

    // The data directory is restored from yesterday's copy.
    let plane = files.start(&listen, &old);
    list_tools(&mut client, 1).await; // still answered: the backlog has room
    let refused = wait_trust(&proxy, "refused", 7);
    let problem = refused["problem"].as_str().unwrap_or_default();
    assert!(problem.contains("rolled back"), "{refused}");
    assert!(
        eventually(20, || node_line(&plane)
            .contains("REFUSED: the log was rolled back")),
        "nodes list: {}",
        node_line(&plane)
    );
    assert_eq!(
        plane.export().len(),
        3,
        "events were shipped to the rolled-back log"
    );
    let path = saved.display().to_string();
    let (code, out) = plane.cli(&["audit", "verify", "--checkpoint", &path]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("rolled back"), "{out}");
    drop(plane);

    // The genuine log is back: the proxy trusts it again and ships what waited.
    let plane = files.start(&listen, &data);
    wait_trust(&proxy, "verified", 9);
    assert!(
        eventually(20, || plane.export().len() == 9),
        "{}",
        plane.export().len()
    );
    let (code, out) = plane.cli(&["audit", "verify", "--checkpoint", &path]);
    assert_eq!(code, 0, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forked_log_is_refused_by_the_proxy_and_by_a_saved_checkpoint() {
    let files = PlaneFiles::new();
    let data = files.data_dir();
    let fork = files.dir.path().join("data-fork");
    let plane = files.start("127.0.0.1:0", &data);
    let listen = plane.listen();
    let (_demo, demo_url) = sdk_common::demo_process();
    files.publish_default_policies(&plane);
    let proxy = AuditedProxy::start(&demo_url, &plane.url, &files.bundle_key(), "");
    let mut client = McpClient::new(proxy.mcp_url(), Some(AGENT_KEY));
    client.initialize().await; // 3 events: the common prefix
    wait_trust(&proxy, "verified", 3);
    drop(plane);
    sdk_common::copy_dir(&data, &fork);

    // Another history after the common prefix, signed with the same key.
    let forked = files.start("127.0.0.1:0", &fork);
    assert_eq!(append_direct(&forked.url, "fork-a", 2).await, 5);
    let fork_checkpoint = files.dir.path().join("checkpoint-of-the-fork");
    std::fs::write(&fork_checkpoint, forked.newest_checkpoint()).expect("save");
    assert_eq!(append_direct(&forked.url, "fork-b", 40).await, 45);
    drop(forked);

    // The genuine log grows on: the proxy holds its checkpoint of 7 records.
    let plane = files.start(&listen, &data);
    list_tools(&mut client, 2).await;
    wait_trust(&proxy, "verified", 7);
    let path = fork_checkpoint.display().to_string();
    let (code, out) = plane.cli(&["audit", "verify", "--checkpoint", &path]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("does not extend"), "{out}");
    drop(plane);

    // The fork (longer, same key) replaces the control plane: the proxy refuses it.
    let forked = files.start(&listen, &fork);
    list_tools(&mut client, 1).await;
    let refused = wait_trust(&proxy, "refused", 7);
    assert!(
        refused["problem"]
            .as_str()
            .unwrap_or_default()
            .contains("does not extend"),
        "{refused}"
    );
    assert_eq!(forked.export().len(), 45, "events were shipped to the fork");
}
