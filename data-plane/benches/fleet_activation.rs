//! Publish → activation on a fleet of 50 nodes, simulated in one process: 50 real
//! `BundleFollower`s, each with its own `ControlPlaneLink` (its own HTTP/2
//! connection and `Watch` stream) and its own `PolicyStore`, each verifying,
//! compiling and swapping every bundle, against a real control plane (sled on
//! disk) on 127.0.0.1. The bundle is the default `policies/`.
//!
//! Prints p50/p99 of Publish start → installed on each node, and the baseline from
//! the same run: Publish start → installed by one bare in-process consumer of the
//! control plane's activation channel (no gRPC, no fan-out). Target: p99 < 1 s.
//!
//! Run: `cargo bench -p airlock-data-plane --bench fleet_activation`
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bench_plane;

use bench_plane::{as_admin, control_plane, NODE_TOKEN};

use airlock_bundle::{BundleVerifier, SigningKey};
use airlock_control_plane::api::bundle_service_client::BundleServiceClient;
use airlock_control_plane::api::BundleServicePublishRequest;
use airlock_data_plane::control::{self, BundleFollower, ControlPlaneLink};
use airlock_policy::{CompiledPolicy, PolicyStore};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const NODES: usize = 50;
const ROUNDS: usize = 20;

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort_unstable();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn report(label: &str, samples: &mut [Duration]) -> (Duration, Duration) {
    let (p50, p99) = (percentile(samples, 0.5), percentile(samples, 0.99));
    println!(
        "{label:<52} n={:<5} p50={p50:>9.2?} p99={p99:>9.2?} max={:>9.2?}",
        samples.len(),
        percentile(samples, 1.0)
    );
    (p50, p99)
}

fn archive(key: &SigningKey, revision: &str) -> Vec<u8> {
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    airlock_bundle::build_from_dir(&policies, Some(revision), key)
        .unwrap()
        .bytes
}

fn link(url: &str, node: usize, key: &SigningKey) -> control::ControlPlaneConfig {
    control::ControlPlaneConfig {
        url: url.to_owned(),
        token: NODE_TOKEN.to_owned(),
        ca_cert: None,
        node_id: format!("bench-{node}"),
        bundle_keys: vec![key.public_key()],
        bundle_cache_dir: None,
        checkpoint_file: None,
        heartbeat: Duration::from_secs(10),
    }
}

/// Starts the 50 followers; every install is sent as (revision, time).
fn start_fleet(url: &str, key: &SigningKey) -> mpsc::UnboundedReceiver<(String, Instant)> {
    let (tx, rx) = mpsc::unbounded_channel();
    for node in 0..NODES {
        let config = link(url, node, key);
        let link = ControlPlaneLink::new(&config).unwrap();
        let verifier = BundleVerifier::new([key.public_key()]).unwrap();
        let store = Arc::new(PolicyStore::new(Duration::from_millis(100)));
        let follower = BundleFollower::new(link, verifier, store, None);
        let mut status = follower.status();
        let tx = tx.clone();
        tokio::spawn(follower.run());
        tokio::spawn(async move {
            while status.changed().await.is_ok() {
                let revision = status.borrow_and_update().active_revision.clone();
                if let Some(revision) = revision {
                    let _ = tx.send((revision, Instant::now()));
                }
            }
        });
    }
    rx
}

async fn collect(
    rx: &mut mpsc::UnboundedReceiver<(String, Instant)>,
    revision: &str,
    start: Instant,
    count: usize,
) -> Vec<Duration> {
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let (got, at) = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .expect("every node installs the revision within 60 s")
            .unwrap();
        if got == revision {
            out.push(at.duration_since(start));
        }
    }
    out
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    let plane = control_plane(dir.path(), &key).await;
    let url = format!("http://{}", plane.local_addr());
    let archives: Vec<Vec<u8>> = (0..2 * ROUNDS)
        .map(|i| archive(&key, &format!("r{i}")))
        .collect();

    // Baseline: one bare in-process consumer, verify + compile + swap, no gRPC.
    let mut activations = plane.bundle_activations();
    let verifier = Arc::new(BundleVerifier::new([key.public_key()]).unwrap());
    let baseline_store = Arc::new(PolicyStore::new(Duration::from_millis(100)));
    let mut baseline = Vec::new();
    for (i, bytes) in archives.iter().take(ROUNDS).enumerate() {
        let start = Instant::now();
        plane.publish(bytes.clone(), "bench").await.unwrap();
        activations.changed().await.unwrap();
        let delivery = activations.borrow_and_update().clone().unwrap();
        let (verifier, store) = (Arc::clone(&verifier), Arc::clone(&baseline_store));
        tokio::task::spawn_blocking(move || {
            let verified = verifier.verify(&delivery.archive).unwrap();
            store.install(CompiledPolicy::compile(&verified.bundle).unwrap());
        })
        .await
        .unwrap();
        assert_eq!(
            baseline_store.revision().as_deref(),
            Some(format!("r{i}").as_str())
        );
        baseline.push(start.elapsed());
    }

    // The fleet: serve gRPC, start 50 followers, wait for the current revision;
    // then publish over gRPC, as `airlock bundle push` does.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(plane.run(async {
        let _ = stop_rx.await;
    }));
    let mut rx = start_fleet(&url, &key);
    collect(&mut rx, &format!("r{}", ROUNDS - 1), Instant::now(), NODES).await;
    let channel = tonic::transport::Channel::from_shared(url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut admin = BundleServiceClient::new(channel).max_encoding_message_size(64 << 20);
    let mut fleet = Vec::new();
    for (i, bytes) in archives.iter().enumerate().skip(ROUNDS) {
        let start = Instant::now();
        let request = as_admin(BundleServicePublishRequest {
            archive: bytes.clone().into(),
            no_activate: false,
        });
        admin.publish(request).await.unwrap();
        fleet.extend(collect(&mut rx, &format!("r{i}"), start, NODES).await);
    }

    println!("fleet activation: {NODES} nodes (one connection, verifier and PolicyStore each), {ROUNDS} publishes of the default policies, one process, loopback");
    let (_, base99) = report(
        "baseline: Publish -> bare in-process install",
        &mut baseline,
    );
    let (_, fleet99) = report("Publish -> installed, per node (50 nodes)", &mut fleet);
    println!(
        "p99 ratio fleet/baseline: {:.1}x; target p99 < 1 s: {}",
        fleet99.as_secs_f64() / base99.as_secs_f64(),
        if fleet99 < Duration::from_secs(1) {
            "met"
        } else {
            "NOT met"
        }
    );
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
}
