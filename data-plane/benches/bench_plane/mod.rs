//! What the fleet benches share: a real control plane (sled on disk, 127.0.0.1)
//! with one token for the nodes and one for the admin who publishes.

use airlock_bundle::SigningKey;
use airlock_control_plane::{ControlPlane, ControlPlaneConfig, Role, TokenEntry};
use std::path::Path;

/// The nodes' token.
pub const NODE_TOKEN: &str = "bench-node-token";
/// The admin's token (publish, activate).
pub const ADMIN_TOKEN: &str = "bench-admin-token";

/// A control plane on a free port with its data in `dir/data` and its audit key
/// beside it, trusting `key`'s bundles.
pub async fn control_plane(dir: &Path, key: &SigningKey) -> ControlPlane {
    let tokens = vec![
        TokenEntry::from_plain("fleet", NODE_TOKEN, &[Role::Node]),
        TokenEntry::from_plain("ops", ADMIN_TOKEN, &[Role::Admin]),
    ];
    let mut config = ControlPlaneConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        dir.join("data"),
        vec![key.public_key()],
        tokens,
    );
    config.audit.signing_key = Some(dir.join("audit-signing.key"));
    ControlPlane::start(config).await.unwrap()
}

/// `message` with the admin's bearer token.
pub fn as_admin<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let bearer = format!("Bearer {ADMIN_TOKEN}").parse().unwrap();
    request.metadata_mut().insert("authorization", bearer);
    request
}
