//! A real control plane on 127.0.0.1:0 for the integration tests, with one token
//! per role, a trusted signing key, and helpers to build signed bundles.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use airlock_bundle::SigningKey;
use airlock_control_plane::api;
use airlock_control_plane::api::bundle_service_client::BundleServiceClient;
use airlock_control_plane::api::node_service_client::NodeServiceClient;
use airlock_control_plane::{ControlPlane, ControlPlaneConfig, Role, TokenEntry};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// One token per role: (role name, token, role).
pub const TOKENS: [(&str, &str, Role); 4] = [
    ("admin", "tok-admin", Role::Admin),
    ("reviewer", "tok-reviewer", Role::Reviewer),
    ("auditor", "tok-auditor", Role::Auditor),
    ("node", "tok-node", Role::Node),
];

pub const ADMIN: &str = "tok-admin";
pub const NODE: &str = "tok-node";

/// A running control plane; stops (gracefully) on drop or `stop()`.
pub struct Plane {
    pub addr: SocketAddr,
    /// The reviewer page's address, when `ui_listen` is set.
    pub ui_addr: Option<SocketAddr>,
    pub data_dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// The configuration of a control plane whose files live under `dir`: the data in
/// `dir/data`, the audit signing key beside it (never inside the data directory).
pub fn config(dir: &Path, key: &SigningKey) -> ControlPlaneConfig {
    let tokens = TOKENS
        .iter()
        .map(|(name, token, role)| TokenEntry::from_plain(name, token, &[*role]))
        .collect();
    let mut config = ControlPlaneConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        dir.join("data"),
        vec![key.public_key()],
        tokens,
    );
    config.audit.signing_key = Some(dir.join("audit-signing.key"));
    config
}

impl Plane {
    pub async fn start(dir: &Path, key: &SigningKey) -> Plane {
        Self::start_with(config(dir, key)).await
    }

    pub async fn start_with(config: ControlPlaneConfig) -> Plane {
        let data_dir = config.data_dir.clone();
        let plane = ControlPlane::start(config)
            .await
            .expect("control plane starts");
        let addr = plane.local_addr();
        let ui_addr = plane.ui_addr();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            plane
                .run(async {
                    let _ = rx.await;
                })
                .await
                .expect("control plane serves");
        });
        Plane {
            addr,
            ui_addr,
            data_dir,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .expect("connects to the control plane")
    }

    pub async fn bundles(&self) -> BundleServiceClient<Channel> {
        BundleServiceClient::new(self.channel().await).max_decoding_message_size(64 << 20)
    }

    pub async fn nodes(&self) -> NodeServiceClient<Channel> {
        NodeServiceClient::new(self.channel().await)
    }

    /// Stops the server and waits until it has released the data directory.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(std::time::Duration::from_secs(10), task)
                .await
                .expect("graceful shutdown within 10 s")
                .unwrap();
        }
    }
}

impl Drop for Plane {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// The text of `GET /metrics` on `addr` (blocking: call it off the runtime).
pub fn scrape(addr: SocketAddr) -> String {
    http_get(addr, "/metrics")
}

/// The whole HTTP/1.1 response to `GET path` on `addr`, head and body (blocking).
pub fn http_get(addr: SocketAddr, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut socket = std::net::TcpStream::connect(addr).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).unwrap();
    let mut text = String::new();
    socket.read_to_string(&mut text).unwrap();
    text
}

/// The value of the sample line starting with `series ` in a metrics text.
pub fn sample(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// A request carrying `authorization: Bearer <token>`.
pub fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

pub const POLICY: &str = "package airlock\n\nimport rego.v1\n\ndefault decision := {\"verdict\": \"deny\"}\n\ndecision := {\"verdict\": \"allow\"} if input.tool.name == \"read\"\n";

pub const TESTS: &str = "package airlock_test\n\nimport rego.v1\nimport data.airlock\n\ntest_read_allowed if airlock.decision.verdict == \"allow\" with input as {\"tool\": {\"name\": \"read\"}}\n\ntest_write_denied if airlock.decision.verdict == \"deny\" with input as {\"tool\": {\"name\": \"write\"}}\n";

/// A policy directory with the given files.
pub fn policy_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let full = dir.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
    }
    dir
}

/// A signed archive of the good policy and its passing tests, at `revision`.
pub fn good_bundle(revision: &str, key: &SigningKey) -> Vec<u8> {
    let dir = policy_dir(&[("airlock.rego", POLICY), ("airlock_test.rego", TESTS)]);
    airlock_bundle::build_from_dir(dir.path(), Some(revision), key)
        .unwrap()
        .bytes
}

pub async fn publish(
    plane: &Plane,
    archive: Vec<u8>,
    no_activate: bool,
) -> Result<api::BundleSummary, tonic::Status> {
    let request = api::BundleServicePublishRequest {
        archive: archive.into(),
        no_activate,
    };
    let response = plane
        .bundles()
        .await
        .publish(authed(request, ADMIN))
        .await?;
    Ok(response.into_inner().bundle.unwrap())
}
