//! Does a bundle swap stall the calls in flight? One node (`BundleFollower` with
//! its own `PolicyStore`) follows a real control plane on 127.0.0.1 while a load
//! thread decides `tools/call` messages back to back with the default policies.
//! Phase A: the load alone. Phase B: the same load during 20 activations, each
//! delivered, verified, compiled and swapped in by the follower. Prints p50, p99,
//! p99.9 and the worst call latency of each phase and the B/A ratios.
//!
//! Run: `cargo bench -p airlock-data-plane --bench swap_stall`
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bench_plane;

use bench_plane::{as_admin, control_plane, NODE_TOKEN};

use airlock_bundle::{BundleVerifier, SigningKey};
use airlock_control_plane::api::bundle_service_client::BundleServiceClient;
use airlock_control_plane::api::{BundleServiceActivateRequest, BundleServicePublishRequest};
use airlock_data_plane::control::{self, BundleFollower, ControlPlaneLink};
use airlock_policy::{
    Direction, IdentityInput, MessageInput, PolicyInput, PolicyStore, ServerInput, SessionInput,
    TimeInput, ToolInput,
};
use serde_json::json;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

const SWAPS: usize = 20;
const SWAP_EVERY: Duration = Duration::from_millis(150);
const PHASE: Duration = Duration::from_millis(150 * 20);

fn input() -> PolicyInput {
    let arguments = json!({"sql": "SELECT name FROM customers WHERE id = 1"});
    PolicyInput {
        identity: IdentityInput {
            subject: "demo-agent".into(),
            groups: vec!["agents".into()],
            kind: "agent".into(),
            claims: Default::default(),
        },
        server: ServerInput {
            name: "demo".into(),
            labels: [("env".to_owned(), "prod".to_owned())].into(),
        },
        direction: Direction::ClientToServer,
        message: MessageInput {
            method: Some("tools/call".into()),
            id: Some(json!(1)),
            params: json!({"name": "query", "arguments": arguments.clone()}),
        },
        tool: Some(ToolInput {
            name: "query".into(),
            arguments,
            pin: None,
        }),
        session: SessionInput {
            id: "s".into(),
            calls: 1,
        },
        time: TimeInput {
            unix_ms: 1_764_000_000_000,
        },
        listing: false,
        limits: None,
        review: None,
    }
}

/// Decides back to back until `stop`; returns every call's latency.
fn load(store: Arc<PolicyStore>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<Duration>> {
    std::thread::spawn(move || {
        let input = input();
        let mut samples = Vec::with_capacity(1 << 20);
        while !stop.load(Ordering::Relaxed) {
            let start = Instant::now();
            let evaluation = store.decide(&input);
            samples.push(start.elapsed());
            assert!(evaluation.revision.is_some());
        }
        samples
    })
}

fn stats(samples: &mut [Duration]) -> [Duration; 4] {
    samples.sort_unstable();
    let at = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize];
    [at(0.5), at(0.99), at(0.999), at(1.0)]
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    let plane = control_plane(dir.path(), &key).await;
    let url = format!("http://{}", plane.local_addr());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(plane.run(async {
        let _ = stop_rx.await;
    }));
    let mut admin = BundleServiceClient::new(
        Channel::from_shared(url.clone())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    )
    .max_encoding_message_size(64 << 20);
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    for revision in ["a", "b"] {
        let built = airlock_bundle::build_from_dir(&policies, Some(revision), &key).unwrap();
        let message = BundleServicePublishRequest {
            archive: built.bytes.into(),
            no_activate: false,
        };
        admin.publish(as_admin(message)).await.unwrap();
    }

    let link = ControlPlaneLink::new(&control::ControlPlaneConfig {
        url,
        token: NODE_TOKEN.into(),
        ca_cert: None,
        node_id: "bench".into(),
        bundle_keys: vec![key.public_key()],
        bundle_cache_dir: None,
        checkpoint_file: None,
        heartbeat: Duration::from_secs(10),
    })
    .unwrap();
    let store = Arc::new(PolicyStore::new(Duration::from_millis(100)));
    let verifier = BundleVerifier::new([key.public_key()]).unwrap();
    let follower = BundleFollower::new(link, verifier, Arc::clone(&store), None);
    let mut status = follower.status();
    tokio::spawn(follower.run());
    status
        .wait_for(|s| s.active_revision.as_deref() == Some("b"))
        .await
        .unwrap();

    // Phase A: the load alone.
    let stop = Arc::new(AtomicBool::new(false));
    let worker = load(Arc::clone(&store), Arc::clone(&stop));
    tokio::time::sleep(PHASE).await;
    stop.store(true, Ordering::Relaxed);
    let mut quiet = worker.join().unwrap();

    // Phase B: the same load during 20 swaps.
    let stop = Arc::new(AtomicBool::new(false));
    let worker = load(Arc::clone(&store), Arc::clone(&stop));
    let mut swap_times = Vec::with_capacity(SWAPS);
    for i in 0..SWAPS {
        let revision = if i % 2 == 0 { "a" } else { "b" };
        let start = Instant::now();
        let message = BundleServiceActivateRequest {
            revision: revision.into(),
        };
        admin.activate(as_admin(message)).await.unwrap();
        status
            .wait_for(|s| s.active_revision.as_deref() == Some(revision))
            .await
            .unwrap();
        swap_times.push(start.elapsed());
        tokio::time::sleep(SWAP_EVERY.saturating_sub(start.elapsed())).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut swapping = worker.join().unwrap();

    let [qp50, qp99, qp999, qmax] = stats(&mut quiet);
    let [sp50, sp99, sp999, smax] = stats(&mut swapping);
    let [_, _, _, swap_max] = stats(&mut swap_times);
    println!("swap stall: 1 load thread deciding tools/call (default policies) back to back; {SWAPS} activations (delivered, verified, compiled, swapped); 2-core machine");
    println!(
        "{:<28} n={:<8} p50={qp50:>9.2?} p99={qp99:>9.2?} p99.9={qp999:>9.2?} max={qmax:>9.2?}",
        "A: load, no swaps",
        quiet.len()
    );
    println!(
        "{:<28} n={:<8} p50={sp50:>9.2?} p99={sp99:>9.2?} p99.9={sp999:>9.2?} max={smax:>9.2?}",
        "B: load during 20 swaps",
        swapping.len()
    );
    println!(
        "ratio B/A: p99 {:.2}x, p99.9 {:.2}x, max {:.2}x; slowest activation -> installed: {swap_max:.2?}",
        sp99.as_secs_f64() / qp99.as_secs_f64(),
        sp999.as_secs_f64() / qp999.as_secs_f64(),
        smax.as_secs_f64() / qmax.as_secs_f64()
    );
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
}
