//! End-to-end: a control plane process, two proxy processes following it, and the
//! `airlock` CLI. A pushed bundle reaches every proxy and changes their decisions;
//! `airlock nodes list` shows the fleet; a rollback is delivered too.

mod support;

use airlock_data_plane::codes::DENIED;
use serde_json::json;
use std::time::Duration;
use support::demo_server;
use support::fleet::{
    follower, query_refusal, refusal, wait_for_nodes, wait_for_revision, ControlPlaneProcess,
    Workspace, LOCKDOWN,
};

const WITHIN: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_pushed_bundle_reaches_every_proxy_and_changes_decisions() {
    let ws = Workspace::new();
    let (key, public) = ws.keygen("release");
    let plane = ControlPlaneProcess::start(&ws, &ws.path("cp-data"), 0, &[&public]);
    let demo = demo_server();
    let proxies: Vec<_> = (0..2)
        .map(|i| {
            follower(
                &demo.url,
                plane.url(),
                &format!("proxy-{i}"),
                &[&public],
                None,
            )
        })
        .collect();
    let key = key.to_str().unwrap();

    plane.push(
        &ws.default_policies("defaults"),
        &["--signing-key", key, "--revision", "r1"],
    );
    for proxy in &proxies {
        wait_for_revision(proxy, "r1", WITHIN).await;
        assert_eq!(query_refusal(proxy).await, None, "query allowed under r1");
        let mut client = support::fleet::agent(proxy).await;
        let drop = client
            .call_tool("execute", json!({"sql": "DROP TABLE customers"}))
            .await;
        assert_eq!(
            refusal(&drop),
            Some((DENIED, "sql.ddl".to_owned())),
            "{drop:?}"
        );
    }

    let lockdown = ws.policy_dir("lockdown", &[("airlock.rego", LOCKDOWN)]);
    plane.push(&lockdown, &["--signing-key", key, "--revision", "r2"]);
    for proxy in &proxies {
        wait_for_revision(proxy, "r2", WITHIN).await;
        assert_eq!(
            query_refusal(proxy).await,
            Some((DENIED, "fleet.lockdown".to_owned())),
            "the same query is denied under r2"
        );
    }

    let nodes = wait_for_nodes(&plane, WITHIN, |nodes| {
        nodes.len() == 2 && nodes.iter().all(|n| n["active_revision"] == "r2")
    })
    .await;
    for (i, node) in nodes.iter().enumerate() {
        assert_eq!(node["node_id"], format!("proxy-{i}"));
        assert_eq!(node["stale"], false, "{node}");
        assert_eq!(node["last_error"], "", "{node}");
        assert_eq!(node["reported_by"], "fleet", "{node}");
        assert!(!node["version"].as_str().unwrap().is_empty(), "{node}");
    }
    let table = support::fleet::text(&plane.cli(&["nodes", "list"]));
    assert!(table.contains("proxy-0") && table.contains("r2"), "{table}");

    // Rolling back is an activation: every proxy follows it.
    let out = plane.cli(&["bundle", "activate", "r1"]);
    assert!(out.status.success(), "{}", support::fleet::text(&out));
    for proxy in &proxies {
        wait_for_revision(proxy, "r1", WITHIN).await;
        assert_eq!(query_refusal(proxy).await, None);
    }

    // A node that stops reporting (heartbeat 1 s) is marked stale after 3 intervals.
    let mut proxies = proxies;
    drop(proxies.pop());
    let nodes = wait_for_nodes(&plane, WITHIN, |nodes| nodes[1]["stale"] == true).await;
    assert_eq!(nodes[0]["stale"], false, "{nodes:?}");
    let table = support::fleet::text(&plane.cli(&["nodes", "list"]));
    assert!(table.contains("STALE"), "{table}");
}
