//! Publish-to-delivery latency to 50 concurrent `Watch` subscribers, each on its own
//! HTTP/2 connection to a real control plane on 127.0.0.1, in one process.
//!
//! Prints p50/p99 of (a) Publish call start → delivery (includes verifying,
//! compiling and testing the bundle, and the sled flush), (b) Activate call start →
//! delivery (the fan-out alone), and the baseline (c) Activate → an in-process
//! watch receiver with no gRPC in between.
//! Run: `cargo bench -p airlock-control-plane --bench watch_fanout`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use airlock_bundle::SigningKey;
use airlock_control_plane::api;
use airlock_control_plane::api::bundle_service_client::BundleServiceClient;
use airlock_control_plane::{ControlPlane, ControlPlaneConfig, Role, TokenEntry};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::StreamExt as _;
use tonic::transport::Channel;

const SUBSCRIBERS: usize = 50;
const ROUNDS: usize = 30;

const POLICY: &str = "package airlock\n\nimport rego.v1\n\ndefault decision := {\"verdict\": \"deny\"}\n\ndecision := {\"verdict\": \"allow\"} if input.tool.name == \"read\"\n";
const TESTS: &str = "package airlock_test\n\nimport rego.v1\nimport data.airlock\n\ntest_read if airlock.decision.verdict == \"allow\" with input as {\"tool\": {\"name\": \"read\"}}\n";

fn request<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort_unstable();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index]
}

fn report(label: &str, samples: &mut [Duration]) {
    println!(
        "{label:<44} n={:<5} p50={:>8.2?} p99={:>8.2?} max={:>8.2?}",
        samples.len(),
        percentile(samples, 0.50),
        percentile(samples, 0.99),
        percentile(samples, 1.0)
    );
}

/// Waits until every subscriber received `revision`; returns each one's latency.
async fn collect(
    rx: &mut mpsc::UnboundedReceiver<(String, Instant)>,
    revision: &str,
    start: Instant,
) -> Vec<Duration> {
    let mut out = Vec::with_capacity(SUBSCRIBERS);
    while out.len() < SUBSCRIBERS {
        let (got, at) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .unwrap()
            .unwrap();
        if got == revision {
            out.push(at.duration_since(start));
        }
    }
    out
}

/// Opens one connection and one `Watch` stream per subscriber; every delivery is
/// sent to the returned receiver as (revision, arrival time).
async fn subscribe_all(addr: std::net::SocketAddr) -> mpsc::UnboundedReceiver<(String, Instant)> {
    let (tx, rx) = mpsc::unbounded_channel();
    for i in 0..SUBSCRIBERS {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = BundleServiceClient::new(channel);
        let watch = api::BundleServiceWatchRequest {
            node_id: format!("n{i}"),
        };
        let mut stream = client
            .watch(request(watch, "tok-node"))
            .await
            .unwrap()
            .into_inner();
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                let revision = message.bundle.map(|b| b.revision).unwrap_or_default();
                let _ = tx.send((revision, Instant::now()));
            }
        });
    }
    rx
}

/// Signed archives r0..r{ROUNDS-1} of the same policy.
fn archives(key: &SigningKey) -> Vec<Vec<u8>> {
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("airlock.rego"), POLICY).unwrap();
    std::fs::write(src.path().join("airlock_test.rego"), TESTS).unwrap();
    (0..ROUNDS)
        .map(|i| {
            airlock_bundle::build_from_dir(src.path(), Some(&format!("r{i}")), key)
                .unwrap()
                .bytes
        })
        .collect()
}

#[derive(Default)]
struct Samples {
    publish_rpc: Vec<Duration>,
    publish: Vec<Duration>,
    activate: Vec<Duration>,
    baseline: Vec<Duration>,
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    let tokens = vec![
        TokenEntry::from_plain("admin", "tok-admin", &[Role::Admin]),
        TokenEntry::from_plain("node", "tok-node", &[Role::Node]),
    ];
    let mut config = ControlPlaneConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        dir.path().join("data"),
        vec![key.public_key()],
        tokens,
    );
    config.audit.signing_key = Some(dir.path().join("audit-signing.key"));
    let plane = ControlPlane::start(config).await.unwrap();
    let addr = plane.local_addr();
    let mut in_process = plane.bundle_activations();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(plane.run(async {
        let _ = stop_rx.await;
    }));
    let mut rx = subscribe_all(addr).await;
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut admin = BundleServiceClient::new(channel);

    let mut s = Samples::default();
    for (i, archive) in archives(&key).into_iter().enumerate() {
        let start = Instant::now();
        let message = api::BundleServicePublishRequest {
            archive: archive.into(),
            no_activate: false,
        };
        admin.publish(request(message, "tok-admin")).await.unwrap();
        s.publish_rpc.push(start.elapsed());
        s.publish
            .extend(collect(&mut rx, &format!("r{i}"), start).await);
        in_process.borrow_and_update();
        if i == 0 {
            continue;
        }
        // Roll back to the previous revision: the fan-out alone.
        let previous = format!("r{}", i - 1);
        let start = Instant::now();
        let message = api::BundleServiceActivateRequest {
            revision: previous.clone(),
        };
        admin.activate(request(message, "tok-admin")).await.unwrap();
        in_process.changed().await.unwrap();
        s.baseline.push(start.elapsed());
        s.activate.extend(collect(&mut rx, &previous, start).await);
    }
    println!("watch fan-out: {SUBSCRIBERS} subscribers (one connection each), {ROUNDS} rounds, loopback, one process");
    report(
        "Publish RPC (verify+compile+test+flush)",
        &mut s.publish_rpc,
    );
    report("Publish start -> delivery, per subscriber", &mut s.publish);
    report(
        "Activate start -> delivery, per subscriber",
        &mut s.activate,
    );
    report("baseline: Activate start -> in-process rx", &mut s.baseline);
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
}
