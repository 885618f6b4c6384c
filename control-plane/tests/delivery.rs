//! Publish → every watcher receives it; activating an older revision rolls every
//! watcher back; late subscribers get the active bundle first.

mod support;

use airlock_bundle::{BundleVerifier, SigningKey};
use airlock_control_plane::api;
use std::time::Duration;
use support::{authed, good_bundle, publish, Plane, ADMIN, NODE};
use tokio_stream::StreamExt as _;
use tonic::Code;

type Watch = tonic::Streaming<api::BundleServiceWatchResponse>;

async fn watch(plane: &Plane) -> Watch {
    let request = authed(
        api::BundleServiceWatchRequest {
            node_id: "n1".into(),
        },
        NODE,
    );
    plane
        .bundles()
        .await
        .watch(request)
        .await
        .unwrap()
        .into_inner()
}

async fn next_revision(stream: &mut Watch, verifier: &BundleVerifier) -> String {
    let message = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("a delivery within 10 s")
        .expect("the stream is open")
        .expect("a delivery, not an error");
    // What a proxy does: verify the archive it received.
    let verified = verifier
        .verify(&message.archive)
        .expect("the delivered archive verifies");
    let summary = message.bundle.unwrap();
    assert_eq!(verified.manifest.revision, summary.revision);
    assert!(summary.active);
    summary.revision
}

async fn nothing_within(stream: &mut Watch, wait: Duration) {
    if let Ok(item) = tokio::time::timeout(wait, stream.next()).await {
        panic!("unexpected delivery: {item:?}");
    }
}

#[tokio::test]
async fn publish_delivers_and_activate_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    let verifier = BundleVerifier::new([key.public_key()]).unwrap();
    let plane = Plane::start(dir.path(), &key).await;

    let mut early = watch(&plane).await;
    let r1 = publish(&plane, good_bundle("r1", &key), false)
        .await
        .unwrap();
    assert!(r1.active);
    assert_eq!(r1.tests_passed, 2);
    assert_eq!(next_revision(&mut early, &verifier).await, "r1");

    let r2 = publish(&plane, good_bundle("r2", &key), false)
        .await
        .unwrap();
    assert_eq!(r2.published_by, "admin");
    assert_eq!(next_revision(&mut early, &verifier).await, "r2");

    // Stored without activation: nobody receives it.
    let r3 = publish(&plane, good_bundle("r3", &key), true)
        .await
        .unwrap();
    assert!(!r3.active);
    nothing_within(&mut early, Duration::from_millis(300)).await;

    // Rollback to r1.
    let request = authed(
        api::BundleServiceActivateRequest {
            revision: "r1".into(),
        },
        ADMIN,
    );
    let response = plane
        .bundles()
        .await
        .activate(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.previous_revision, "r2");
    assert_eq!(next_revision(&mut early, &verifier).await, "r1");

    // A late subscriber gets the active bundle at once.
    let mut late = watch(&plane).await;
    assert_eq!(next_revision(&mut late, &verifier).await, "r1");

    let list = plane
        .bundles()
        .await
        .list(authed(api::BundleServiceListRequest {}, ADMIN))
        .await
        .unwrap()
        .into_inner();
    let revisions: Vec<_> = list
        .bundles
        .iter()
        .map(|b| (b.revision.as_str(), b.active))
        .collect();
    assert_eq!(revisions, [("r1", true), ("r2", false), ("r3", false)]);
    assert_eq!(list.active_revision, "r1");
    plane.stop().await;
}

#[tokio::test]
async fn republishing_is_idempotent_but_a_changed_revision_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    let plane = Plane::start(dir.path(), &key).await;
    let first = publish(&plane, good_bundle("r1", &key), false)
        .await
        .unwrap();
    let again = publish(&plane, good_bundle("r1", &key), false)
        .await
        .unwrap();
    assert_eq!(
        first.digest, again.digest,
        "deterministic archive, same record"
    );
    assert_eq!(first.published_unix_ms, again.published_unix_ms);

    let other = support::policy_dir(&[(
        "airlock.rego",
        "package airlock\n\ndecision := {\"verdict\": \"deny\"}\n",
    )]);
    let changed = airlock_bundle::build_from_dir(other.path(), Some("r1"), &key).unwrap();
    let err = publish(&plane, changed.bytes, false).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    assert!(
        err.message().contains("bump the revision"),
        "{}",
        err.message()
    );
    plane.stop().await;
}

#[tokio::test]
async fn get_returns_the_archive_and_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    let plane = Plane::start(dir.path(), &key).await;
    let archive = good_bundle("r1", &key);
    publish(&plane, archive.clone(), false).await.unwrap();
    let request = authed(
        api::BundleServiceGetRequest {
            revision: String::new(),
        },
        NODE,
    );
    let got = plane
        .bundles()
        .await
        .get(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.archive.as_ref(), archive.as_slice());
    let paths: Vec<_> = got.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            ".manifest",
            ".signatures.json",
            "airlock.rego",
            "airlock_test.rego"
        ]
    );
    assert_eq!(got.manifest.unwrap().revision, "r1");
    assert!(got.bundle.unwrap().active);
    plane.stop().await;
}

#[tokio::test]
async fn a_bundle_published_in_process_before_serving_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    let verifier = BundleVerifier::new([key.public_key()]).unwrap();
    let plane = airlock_control_plane::ControlPlane::start(support::config(dir.path(), &key))
        .await
        .unwrap();
    let summary = plane
        .publish(good_bundle("dev-1", &key), "airlock dev")
        .await
        .unwrap();
    assert!(summary.active);
    assert_eq!(summary.published_by, "airlock dev");
    let refused = plane
        .publish(b"junk".to_vec(), "airlock dev")
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("not a valid bundle archive"),
        "{refused}"
    );

    let addr = plane.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(plane.run(async {
        let _ = stopped.await;
    }));
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let request = authed(api::BundleServiceWatchRequest::default(), NODE);
    let mut stream = api::bundle_service_client::BundleServiceClient::new(channel)
        .watch(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next_revision(&mut stream, &verifier).await, "dev-1");
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
