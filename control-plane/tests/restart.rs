//! State survives a restart: stop the server, reopen the same sled directory.

mod support;

use airlock_bundle::SigningKey;
use airlock_control_plane::api;
use std::time::Duration;
use support::{authed, good_bundle, publish, Plane, ADMIN, NODE};
use tokio_stream::StreamExt as _;

#[tokio::test]
async fn bundles_the_active_revision_and_nodes_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    let plane = Plane::start(dir.path(), &key).await;
    publish(&plane, good_bundle("r1", &key), false)
        .await
        .unwrap();
    publish(&plane, good_bundle("r2", &key), true)
        .await
        .unwrap();
    let report = api::NodeServiceReportRequest {
        node_id: "proxy-1".into(),
        version: "0.1.0".into(),
        active_revision: "r1".into(),
        last_error: String::new(),
        heartbeat_interval_ms: 5_000,
        audit: Some(api::NodeAuditStatus {
            trust: api::AuditTrust::Refused.into(),
            checkpoint_size: 12,
            problem: "the log was rolled back".into(),
        }),
        ..Default::default()
    };
    let answer = plane
        .nodes()
        .await
        .report(authed(report, NODE))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.active_revision, "r1");
    // A watcher is open at shutdown: it must not hold the server up.
    let _watching = plane
        .bundles()
        .await
        .watch(authed(api::BundleServiceWatchRequest::default(), NODE))
        .await
        .unwrap();
    plane.stop().await;

    let plane = Plane::start(dir.path(), &key).await;
    let list = plane
        .bundles()
        .await
        .list(authed(api::BundleServiceListRequest {}, ADMIN))
        .await
        .unwrap()
        .into_inner();
    let revisions: Vec<_> = list.bundles.iter().map(|b| b.revision.as_str()).collect();
    assert_eq!(revisions, ["r1", "r2"]);
    assert_eq!(list.active_revision, "r1");

    let mut stream = plane
        .bundles()
        .await
        .watch(authed(api::BundleServiceWatchRequest::default(), NODE))
        .await
        .unwrap()
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.bundle.unwrap().revision, "r1");

    let nodes = plane
        .nodes()
        .await
        .list(authed(api::NodeServiceListRequest {}, ADMIN))
        .await
        .unwrap()
        .into_inner()
        .nodes;
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].node_id, "proxy-1");
    assert_eq!(nodes[0].reported_by, "node");
    assert_eq!(nodes[0].heartbeat_interval_ms, 5_000);
    assert!(!nodes[0].stale);
    // What the node said of the audit log survives the restart.
    let audit = nodes[0].audit.clone().unwrap();
    assert_eq!(audit.trust(), api::AuditTrust::Refused);
    assert_eq!(
        (audit.checkpoint_size, audit.problem.as_str()),
        (12, "the log was rolled back")
    );
    plane.stop().await;
}

#[tokio::test]
async fn a_silent_node_is_listed_as_stale() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    let plane = Plane::start(dir.path(), &key).await;
    let report = api::NodeServiceReportRequest {
        node_id: "proxy-2".into(),
        heartbeat_interval_ms: 20,
        ..Default::default()
    };
    plane
        .nodes()
        .await
        .report(authed(report, NODE))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    let nodes = plane
        .nodes()
        .await
        .list(authed(api::NodeServiceListRequest {}, ADMIN))
        .await
        .unwrap()
        .into_inner()
        .nodes;
    assert!(nodes[0].stale, "{nodes:?}");

    let bad = api::NodeServiceReportRequest {
        node_id: "../etc".into(),
        ..Default::default()
    };
    let err = plane
        .nodes()
        .await
        .report(authed(bad, NODE))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    plane.stop().await;
}
