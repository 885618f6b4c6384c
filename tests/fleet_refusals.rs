//! End-to-end: bad bundles never serve. The CLI refuses a directory that does not
//! compile or whose tests fail; the control plane refuses a tampered archive, an
//! untrusted signature, a Rego error and failing tests; and a proxy refuses a
//! bundle its own keys do not verify, serving the previous revision on.

mod support;

use airlock_bundle::{BundleArchive, Limits};
use airlock_data_plane::codes::DENIED;
use std::time::Duration;
use support::demo_server;
use support::fleet::{
    archive, follower, query_refusal, text, wait_for_nodes, wait_for_revision, ControlPlaneProcess,
    Workspace, LOCKDOWN,
};

const WITHIN: Duration = Duration::from_secs(20);
const BROKEN: &str = "package airlock\n\ndecision := {\"verdict\": \n";
const FAILING_TEST: &str = "package airlock_test\n\nimport rego.v1\nimport data.airlock\n\ntest_query_is_allowed if airlock.decision.verdict == \"allow\" with input as {\"message\": {\"method\": \"tools/call\"}}\n";

fn refused(plane: &ControlPlaneProcess, args: &[&str], expected: &str) {
    let out = plane.cli(args);
    let message = text(&out);
    assert!(!out.status.success(), "{args:?} was accepted: {message}");
    assert!(
        message.contains(expected),
        "{args:?}: expected `{expected}` in: {message}"
    );
}

#[tokio::test]
async fn bad_bundles_are_refused_at_push_and_the_active_one_stays() {
    let ws = Workspace::new();
    let (key, public) = ws.keygen("release");
    let (rogue, _) = ws.keygen("rogue");
    let plane = ControlPlaneProcess::start(&ws, &ws.path("cp-data"), 0, &[&public]);
    let k = key.to_str().unwrap();
    plane.push(
        &ws.policy_dir("good", &[("airlock.rego", LOCKDOWN)]),
        &["--signing-key", k, "--revision", "r1"],
    );

    let broken = ws.policy_dir("broken", &[("airlock.rego", BROKEN)]);
    let failing = ws.policy_dir(
        "failing",
        &[
            ("airlock.rego", LOCKDOWN),
            ("airlock_test.rego", FAILING_TEST),
        ],
    );
    // Directories are built and checked by the CLI before anything is sent.
    refused(
        &plane,
        &[
            "bundle",
            "push",
            broken.to_str().unwrap(),
            "--signing-key",
            k,
        ],
        "airlock.rego",
    );
    refused(
        &plane,
        &[
            "bundle",
            "push",
            failing.to_str().unwrap(),
            "--signing-key",
            k,
        ],
        "test_query_is_allowed",
    );

    // Archives go to the control plane, which checks them itself.
    let rego_error = archive(&broken, "r-broken", &key);
    refused(
        &plane,
        &["bundle", "push", rego_error.to_str().unwrap()],
        "airlock.rego",
    );
    let tests_fail = archive(&failing, "r-failing", &key);
    refused(
        &plane,
        &["bundle", "push", tests_fail.to_str().unwrap()],
        "test_query_is_allowed",
    );
    let untrusted = archive(
        &ws.policy_dir("other", &[("airlock.rego", LOCKDOWN)]),
        "r-rogue",
        &rogue,
    );
    refused(
        &plane,
        &["bundle", "push", untrusted.to_str().unwrap()],
        "not trusted",
    );
    let tampered = ws.path("tampered.tar.gz");
    let good = archive(&ws.path("good"), "r-tampered", &key);
    let mut files =
        BundleArchive::from_tar_gz(&std::fs::read(good).unwrap(), Limits::default()).unwrap();
    files.files.insert(
        "airlock.rego".into(),
        LOCKDOWN.replace("deny", "allow").into_bytes(),
    );
    std::fs::write(&tampered, files.to_tar_gz().unwrap()).unwrap();
    refused(
        &plane,
        &["bundle", "push", tampered.to_str().unwrap()],
        "modified after signing",
    );

    let list = plane.cli(&["bundle", "list", "--output", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list["active_revision"], "r1", "{list}");
    assert_eq!(list["bundles"].as_array().unwrap().len(), 1, "{list}");
}

/// The control plane trusts keys A and B; the proxy trusts only A. A bundle signed
/// with B is activated by the control plane and delivered, so only the proxy's own
/// verification stands between it and the decisions.
#[tokio::test]
async fn a_proxy_rejects_a_bundle_its_keys_do_not_verify_and_keeps_serving() {
    let ws = Workspace::new();
    let (key_a, public_a) = ws.keygen("a");
    let (key_b, public_b) = ws.keygen("b");
    let plane = ControlPlaneProcess::start(&ws, &ws.path("cp-data"), 0, &[&public_a, &public_b]);
    let demo = demo_server();
    let proxy = follower(&demo.url, plane.url(), "strict", &[&public_a], None);

    plane.push(
        &ws.default_policies("defaults"),
        &["--signing-key", key_a.to_str().unwrap(), "--revision", "r1"],
    );
    wait_for_revision(&proxy, "r1", WITHIN).await;
    let lockdown = ws.policy_dir("lockdown", &[("airlock.rego", LOCKDOWN)]);
    plane.push(
        &lockdown,
        &["--signing-key", key_b.to_str().unwrap(), "--revision", "r2"],
    );

    let nodes = wait_for_nodes(&plane, WITHIN, |nodes| {
        nodes
            .iter()
            .any(|n| n["last_error"].as_str().is_some_and(|e| e.contains("r2")))
    })
    .await;
    let error = nodes[0]["last_error"].as_str().unwrap();
    assert!(error.contains("not trusted"), "{error}");
    assert_eq!(nodes[0]["active_revision"], "r1", "{nodes:?}");
    let (status, body) = support::fleet::readyz(&proxy).await;
    assert_eq!((status, body["revision"].as_str()), (200, Some("r1")));
    assert_eq!(
        query_refusal(&proxy).await,
        None,
        "r1 still decides: query allowed"
    );

    // The next bundle it can verify is installed and clears the error.
    plane.push(
        &lockdown,
        &["--signing-key", key_a.to_str().unwrap(), "--revision", "r3"],
    );
    wait_for_revision(&proxy, "r3", WITHIN).await;
    assert_eq!(
        query_refusal(&proxy).await,
        Some((DENIED, "fleet.lockdown".to_owned()))
    );
    wait_for_nodes(&plane, WITHIN, |nodes| {
        nodes[0]["active_revision"] == "r3" && nodes[0]["last_error"] == ""
    })
    .await;
}
