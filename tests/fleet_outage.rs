//! End-to-end: the control plane dies (SIGKILL) and comes back. Proxies keep
//! deciding with the bundle they have, reconnect by themselves and pick up newer
//! revisions; the control plane's data survives. A proxy with a bundle cache
//! starts while the control plane is down; one without is not ready and refuses
//! calls (fail closed).

mod support;

use airlock_bundle::{BundleArchive, Limits};
use airlock_data_plane::codes::DENIED;
use serde_json::json;
use std::time::Duration;
use support::demo_server;
use support::fleet::{
    agent, follower, query_refusal, readyz, refusal, wait_for_revision, ControlPlaneProcess,
    Workspace, LOCKDOWN,
};

const WITHIN: Duration = Duration::from_secs(30);

#[tokio::test]
async fn proxies_outlive_the_control_plane_and_follow_it_again() {
    let ws = Workspace::new();
    let (key, public) = ws.keygen("release");
    let k = key.to_str().unwrap();
    let data = ws.path("cp-data");
    let cache = ws.path("cache-a");
    let plane = ControlPlaneProcess::start(&ws, &data, 0, &[&public]);
    let port = plane.port;
    let url = plane.url().to_owned();
    let demo = demo_server();
    let cached = follower(&demo.url, &url, "cached", &[&public], Some(&cache));
    let plain = follower(&demo.url, &url, "plain", &[&public], None);
    plane.push(
        &ws.default_policies("defaults"),
        &["--signing-key", k, "--revision", "r1"],
    );
    for proxy in [&cached, &plain] {
        wait_for_revision(proxy, "r1", WITHIN).await;
        let (_, body) = readyz(proxy).await;
        assert_eq!(body["control_plane"]["connected"], true, "{body}");
    }

    plane.kill();
    for proxy in [&cached, &plain] {
        assert_eq!(query_refusal(proxy).await, None, "still deciding with r1");
        let mut client = agent(proxy).await;
        let drop = client
            .call_tool("execute", json!({"sql": "DROP TABLE customers"}))
            .await;
        assert_eq!(refusal(&drop), Some((DENIED, "sql.ddl".to_owned())));
        assert_eq!(readyz(proxy).await.0, 200, "ready on its last good bundle");
        let body = link_down(proxy).await;
        assert!(
            body["control_plane"]["error"]
                .as_str()
                .is_some_and(|e| !e.is_empty()),
            "{body}"
        );
    }

    // Same data dir, same port: the proxies reconnect by themselves.
    let plane = ControlPlaneProcess::start(&ws, &data, port, &[&public]);
    let list = plane.cli(&["bundle", "list", "--output", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).expect("bundle list");
    assert_eq!(list["active_revision"], "r1", "nothing lost: {list}");
    plane.push(
        &ws.policy_dir("lockdown", &[("airlock.rego", LOCKDOWN)]),
        &["--signing-key", k, "--revision", "r2"],
    );
    for proxy in [&cached, &plain] {
        wait_for_revision(proxy, "r2", WITHIN).await;
        let (_, body) = readyz(proxy).await;
        assert_eq!(body["control_plane"]["connected"], true, "{body}");
        assert_eq!(body["control_plane"]["error"], serde_json::Value::Null);
        assert_eq!(
            query_refusal(proxy).await,
            Some((DENIED, "fleet.lockdown".to_owned()))
        );
    }
    plane.kill();

    // Control plane down: the cache lets a new proxy start on r2, verified again.
    let restarted = follower(&demo.url, &url, "cached-2", &[&public], Some(&cache));
    let (status, body) = readyz(&restarted).await;
    assert_eq!(
        (status, body["revision"].as_str()),
        (200, Some("r2")),
        "{body}"
    );
    assert_eq!(
        query_refusal(&restarted).await,
        Some((DENIED, "fleet.lockdown".to_owned()))
    );

    // Without a cache there is no bundle: not ready, every call refused.
    let empty = follower(&demo.url, &url, "empty", &[&public], None);
    let (status, body) = readyz(&empty).await;
    assert_eq!(status, 503, "{body}");
    let reply = agent_call(&empty).await;
    assert_eq!(
        refusal(&reply),
        Some((DENIED, "policy.no_bundle".to_owned())),
        "{reply:?}"
    );
}

/// Waits until `/readyz` reports the control-plane link down; returns the body.
async fn link_down(proxy: &support::RunningProxy) -> serde_json::Value {
    let started = std::time::Instant::now();
    loop {
        let (_, body) = readyz(proxy).await;
        if body["control_plane"]["connected"] == false {
            return body;
        }
        assert!(
            started.elapsed() < WITHIN,
            "the link still looks up: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The cache is verified again on load: a cached archive whose content changed
/// after signing is not served, while the same archive untouched is.
#[tokio::test]
async fn a_cached_bundle_is_verified_again_on_load() {
    let ws = Workspace::new();
    let (key, public) = ws.keygen("release");
    let lockdown = ws.policy_dir("lockdown", &[("airlock.rego", LOCKDOWN)]);
    let signed = std::fs::read(support::fleet::archive(&lockdown, "r1", &key)).unwrap();
    let mut files = BundleArchive::from_tar_gz(&signed, Limits::default()).unwrap();
    files.files.insert(
        "airlock.rego".into(),
        LOCKDOWN.replace("deny", "allow").into_bytes(),
    );
    let tampered = files.to_tar_gz().unwrap();
    let demo = demo_server();
    // Nothing listens on port 9 (discard): the control plane is down.
    let down = "http://127.0.0.1:9";
    for (name, bytes, ready) in [("good", signed, true), ("tampered", tampered, false)] {
        let cache = ws.path(&format!("cache-{name}"));
        std::fs::create_dir_all(&cache).unwrap();
        std::fs::write(cache.join("active-bundle.tar.gz"), bytes).unwrap();
        let proxy = follower(&demo.url, down, name, &[&public], Some(&cache));
        let (status, body) = readyz(&proxy).await;
        if ready {
            assert_eq!(
                (status, body["revision"].as_str()),
                (200, Some("r1")),
                "{body}"
            );
        } else {
            assert_eq!(status, 503, "{name}: {body}");
            let reply = agent_call(&proxy).await;
            assert_eq!(
                refusal(&reply),
                Some((DENIED, "policy.no_bundle".to_owned()))
            );
        }
    }
}

async fn agent_call(proxy: &support::RunningProxy) -> support::Reply {
    let client = proxy.client("demo", Some(support::AGENT_KEY));
    client
        .post(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "query", "arguments": {"sql": "SELECT 1"}}}))
        .await
}
