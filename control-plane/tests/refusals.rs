//! The control plane refuses a bundle that does not parse, compile, verify or pass
//! its own tests, and says which file (and line).

mod support;

use airlock_bundle::{BundleArchive, Limits, SigningKey};
use airlock_control_plane::api;
use support::{authed, good_bundle, policy_dir, publish, Plane, ADMIN, POLICY, TESTS};
use tonic::Code;

async fn refused(plane: &Plane, archive: Vec<u8>) -> String {
    let err = publish(plane, archive, false).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    err.message().to_owned()
}

async fn assert_nothing_stored(plane: &Plane) {
    let list = plane
        .bundles()
        .await
        .list(authed(api::BundleServiceListRequest {}, ADMIN))
        .await
        .unwrap()
        .into_inner();
    assert!(list.bundles.is_empty(), "{:?}", list.bundles);
    assert!(list.active_revision.is_empty());
}

#[tokio::test]
async fn a_rego_error_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    let plane = Plane::start(dir.path(), &key).await;
    let broken = "package airlock\n\nimport rego.v1\n\ndecision := {\"verdict\": \"allow\"} if {\n  input.x ==\n}\n";
    let src = policy_dir(&[("rules/airlock.rego", broken)]);
    let built = airlock_bundle::build_from_dir(src.path(), Some("bad"), &key).unwrap();
    let message = refused(&plane, built.bytes).await;
    assert!(message.contains("rules/airlock.rego:"), "{message}");
    let line: u32 = message
        .split("rules/airlock.rego:")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!((6..=7).contains(&line), "line {line} in {message}");
    assert_nothing_stored(&plane).await;
}

#[tokio::test]
async fn failing_rego_tests_name_the_test_file() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    let plane = Plane::start(dir.path(), &key).await;
    let failing = format!("{TESTS}\ntest_write_allowed if airlock.decision.verdict == \"allow\" with input as {{\"tool\": {{\"name\": \"write\"}}}}\n");
    let src = policy_dir(&[
        ("airlock.rego", POLICY),
        ("tests/airlock_test.rego", &failing),
    ]);
    let built = airlock_bundle::build_from_dir(src.path(), Some("bad"), &key).unwrap();
    let message = refused(&plane, built.bytes).await;
    assert!(message.contains("1 Rego test(s) failed"), "{message}");
    assert!(
        message.contains("tests/airlock_test.rego:10: data.airlock_test.test_write_allowed"),
        "{message}"
    );
    assert_nothing_stored(&plane).await;
}

#[tokio::test]
async fn an_untrusted_or_tampered_signature_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    let plane = Plane::start(dir.path(), &key).await;

    let stranger = SigningKey::generate();
    let message = refused(&plane, good_bundle("r1", &stranger)).await;
    assert!(message.contains("not trusted"), "{message}");

    let mut archive =
        BundleArchive::from_tar_gz(&good_bundle("r1", &key), Limits::default()).unwrap();
    archive.files.insert(
        "airlock.rego".into(),
        b"package airlock\n\ndecision := {\"verdict\": \"allow\"}\n".to_vec(),
    );
    let message = refused(&plane, archive.to_tar_gz().unwrap()).await;
    assert!(
        message.contains("airlock.rego: content does not match"),
        "{message}"
    );

    let message = refused(&plane, b"\x1f\x8bgarbage".to_vec()).await;
    assert!(message.contains("not a valid bundle archive"), "{message}");
    assert_nothing_stored(&plane).await;
}

#[tokio::test]
async fn a_bundle_without_a_decision_rule_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    let plane = Plane::start(dir.path(), &key).await;
    let src = policy_dir(&[("other.rego", "package other\n\nx := 1\n")]);
    let built = airlock_bundle::build_from_dir(src.path(), Some("r1"), &key).unwrap();
    let message = refused(&plane, built.bytes).await;
    assert!(message.contains("no rule `decision`"), "{message}");
    assert_nothing_stored(&plane).await;
}
