//! End-to-end: `airlock dev` runs a control plane, and its printed `export` lines
//! and signing key make the CLI work from another shell: a pushed bundle changes
//! the proxy's decisions live.

mod support;

use airlock_data_plane::codes::DENIED;
use serde_json::json;
use std::time::{Duration, Instant};
use support::fleet::{airlock, refusal, spawn_dev, text, value_after, Workspace, LOCKDOWN};
use support::McpClient;

async fn query(endpoint: &str, key: &str) -> Option<(i64, String)> {
    let mut client = McpClient::new(endpoint.to_owned(), Some(key));
    client.initialize().await;
    let reply = client
        .call_tool("query", json!({"sql": "SELECT count(*) FROM customers"}))
        .await;
    refusal(&reply)
}

#[tokio::test]
async fn a_bundle_pushed_with_the_printed_credentials_changes_the_proxy_live() {
    let ws = Workspace::new();
    let (_dev, lines) = spawn_dev(&ws.path("dev"));
    let endpoint = value_after(&lines, "MCP endpoint:").to_owned();
    let key = value_after(&lines, "API key:").to_owned();
    let env = [
        (
            "AIRLOCK_CONTROL_PLANE",
            value_after(&lines, "export AIRLOCK_CONTROL_PLANE="),
        ),
        (
            "AIRLOCK_TOKEN",
            value_after(&lines, "export AIRLOCK_TOKEN="),
        ),
    ];
    let signing_key = value_after(&lines, "export AIRLOCK_SIGNING_KEY=");
    assert!(
        std::path::Path::new(signing_key).starts_with(ws.path("dev")),
        "{signing_key}"
    );
    assert!(
        lines.iter().any(|l| l.contains("airlock bundle push")),
        "{lines:#?}"
    );
    assert_secrets_are_private(&ws.path("dev"));

    assert_eq!(
        query(&endpoint, &key).await,
        None,
        "the default policies allow a query"
    );

    let lockdown = ws.policy_dir("lockdown", &[("airlock.rego", LOCKDOWN)]);
    let out = airlock(
        &[
            "bundle",
            "push",
            lockdown.to_str().unwrap(),
            "--signing-key",
            signing_key,
            "--revision",
            "lockdown-1",
        ],
        &env,
    );
    assert!(out.status.success(), "{}", text(&out));
    let started = Instant::now();
    while query(&endpoint, &key).await.is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the proxy never took the pushed bundle"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        query(&endpoint, &key).await,
        Some((DENIED, "fleet.lockdown".to_owned()))
    );

    // The token has the admin and reviewer roles: fleet and bundle listings work.
    let nodes = airlock(&["nodes", "list"], &env);
    assert!(
        text(&nodes).contains("dev-proxy") && text(&nodes).contains("lockdown-1"),
        "{}",
        text(&nodes)
    );
    let bundles = airlock(&["bundle", "list"], &env);
    assert!(bundles.status.success(), "{}", text(&bundles));
}

/// Ctrl-C (or SIGTERM) after traffic stops `airlock dev` promptly: the proxy's open
/// audit stream to the control plane must not hold the shutdown forever.
#[tokio::test]
async fn dev_stops_promptly_after_calls_have_been_recorded() {
    let ws = Workspace::new();
    let (mut dev, lines) = spawn_dev(&ws.path("dev"));
    let endpoint = value_after(&lines, "MCP endpoint:").to_owned();
    let key = value_after(&lines, "API key:").to_owned();
    assert_eq!(query(&endpoint, &key).await, None);
    // Let the recorded events reach the control plane over the Append stream.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let status = dev
        .terminate(Duration::from_secs(15))
        .expect("airlock dev still running 15 s after SIGTERM");
    assert!(status.success(), "airlock dev exited with {status}");
}

/// Secrets at rest: the data directory and the keys directory are 0700, the
/// config (node token, upstream credential) and the keys 0600, and the audit
/// checkpoint key sits apart from the control plane's data.
#[cfg(unix)]
fn assert_secrets_are_private(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &std::path::Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(dir), 0o700, "the data directory");
    assert_eq!(mode(&dir.join("keys")), 0o700, "the keys directory");
    for file in [
        "airlock.toml",
        "keys/dev-signing.key",
        "keys/audit-signing.key",
    ] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
    assert!(!dir.join("control-plane").join("audit-signing.key").exists());
}

#[cfg(not(unix))]
fn assert_secrets_are_private(_dir: &std::path::Path) {}
