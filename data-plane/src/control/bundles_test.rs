use super::*;
use crate::control::ControlPlaneConfig;
use airlock_bundle::SigningKey;
use airlock_proto::v1::BundleSummary;
use std::time::Duration;

const ALLOW: &str = "package airlock\n\nimport rego.v1\n\ndecision := {\"verdict\": \"allow\"}\n";
const BROKEN: &str = "package airlock\n\ndecision := {\"verdict\": \n";

fn signed(key: &SigningKey, revision: &str, rego: &str) -> Bytes {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("airlock.rego"), rego).unwrap();
    Bytes::from(
        airlock_bundle::build_from_dir(dir.path(), Some(revision), key)
            .unwrap()
            .bytes,
    )
}

fn delivery(revision: &str, archive: Bytes) -> BundleServiceWatchResponse {
    BundleServiceWatchResponse {
        bundle: Some(BundleSummary {
            revision: revision.into(),
            ..BundleSummary::default()
        }),
        archive,
    }
}

/// A follower whose link points nowhere (it is never dialled here).
fn follower(key: &SigningKey, cache: Option<PathBuf>) -> BundleFollower {
    let config = ControlPlaneConfig {
        url: "http://127.0.0.1:9".into(),
        token: "t".into(),
        ca_cert: None,
        node_id: "unit".into(),
        bundle_keys: vec![key.public_key()],
        bundle_cache_dir: None,
        checkpoint_file: None,
        heartbeat: Duration::from_secs(10),
    };
    let link = ControlPlaneLink::new(&config).unwrap();
    let verifier = BundleVerifier::new([key.public_key()]).unwrap();
    let store = Arc::new(PolicyStore::new(Duration::from_millis(100)));
    BundleFollower::new(link, verifier, store, cache)
}

#[tokio::test]
async fn a_bad_delivery_is_rejected_and_the_previous_revision_keeps_serving() {
    let key = SigningKey::generate();
    let rogue = SigningKey::generate();
    let mut node = follower(&key, None);
    let status = node.status();
    node.deliver(delivery("r1", signed(&key, "r1", ALLOW)))
        .await;
    assert_eq!(node.store.revision().as_deref(), Some("r1"));

    let cases = [
        ("r2", signed(&key, "r2", BROKEN), "airlock.rego"),
        ("r3", signed(&rogue, "r3", ALLOW), "not trusted"),
        (
            "r4",
            Bytes::from_static(b"not a tar.gz"),
            "not a valid bundle",
        ),
    ];
    for (revision, archive, expected) in cases {
        node.deliver(delivery(revision, archive)).await;
        assert_eq!(node.store.revision().as_deref(), Some("r1"), "{revision}");
        let state = status.borrow().clone();
        assert_eq!(state.active_revision.as_deref(), Some("r1"));
        let error = state.last_error.unwrap_or_default();
        assert!(
            error.contains(&format!("bundle {revision} rejected")),
            "{error}"
        );
        assert!(error.contains(expected), "{error}");
    }

    node.deliver(delivery("r5", signed(&key, "r5", ALLOW)))
        .await;
    let state = status.borrow().clone();
    assert_eq!(state.active_revision.as_deref(), Some("r5"));
    assert_eq!(state.last_error, None, "a good bundle clears the error");
}

#[tokio::test]
async fn a_redelivery_is_not_installed_again_and_the_cache_survives_a_restart() {
    let key = SigningKey::generate();
    let dir = tempfile::tempdir().unwrap();
    let mut node = follower(&key, Some(dir.path().to_path_buf()));
    let archive = signed(&key, "r1", ALLOW);
    assert_eq!(
        node.install(archive.clone(), true).await,
        Ok(Some("r1".into()))
    );
    assert_eq!(node.install(archive, true).await, Ok(None));

    let mut restarted = follower(&key, Some(dir.path().to_path_buf()));
    restarted.load_cache().await;
    assert_eq!(restarted.store.revision().as_deref(), Some("r1"));
    assert_eq!(
        restarted.status().borrow().active_revision.as_deref(),
        Some("r1")
    );

    // A key rotation the cache predates: the cached bundle is not trusted any more.
    let mut rotated = follower(&SigningKey::generate(), Some(dir.path().to_path_buf()));
    rotated.load_cache().await;
    assert_eq!(rotated.store.revision(), None);
}
