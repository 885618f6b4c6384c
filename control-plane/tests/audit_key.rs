//! Where the audit signing key may live: outside the data directory, 0600; the
//! data directory the control plane creates is 0700.

mod support;

use airlock_bundle::SigningKey;
use support::config;

#[tokio::test]
async fn a_key_inside_the_data_directory_or_left_at_the_old_place_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();

    let mut inside = config(dir.path(), &key);
    inside.audit.signing_key = Some(inside.data_dir.join("keys/audit.key"));
    let err = airlock_control_plane::ControlPlane::start(inside)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("inside the data directory"), "{err}");

    // The old default place: refused with the command that moves it.
    let old = config(dir.path(), &key);
    std::fs::write(old.data_dir.join("audit-signing.key"), "00".repeat(32)).unwrap();
    let err = airlock_control_plane::ControlPlane::start(old)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("mv "), "{err}");
}

#[cfg(unix)]
#[tokio::test]
async fn the_key_is_0600_and_the_data_directory_0700() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &SigningKey::generate());
    let (data, key) = (
        config.data_dir.clone(),
        config.audit.signing_key.clone().unwrap(),
    );
    let plane = support::Plane::start_with(config).await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&key), 0o600);
    drop(plane);
}
