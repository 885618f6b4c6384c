//! Durable audit ingest: 4 concurrent `AuditService.Append` streams (as 4 proxies
//! would open), each sending batches of 1,000 events with up to 4 batches in flight,
//! into a real control plane on 127.0.0.1 over sled on disk. Every batch is
//! acknowledged only after its flush. Baseline from the same run: the same events
//! appended in process (`Audit::append`, 4 tasks, no gRPC), so the ratio is the cost
//! of the network path. Target: at least 50,000 events/s over gRPC, with a
//! checkpoint signed in every commit and returned with every acknowledgement
//! (and, on the gRPC path, a consistency proof from the stream's previous one).
//!
//! Run: `cargo bench -p airlock-control-plane --bench audit_ingest`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use airlock_bundle::SigningKey;
use airlock_control_plane::api;
use airlock_control_plane::api::audit_service_client::AuditServiceClient;
use airlock_control_plane::{ControlPlane, ControlPlaneConfig, Role, TokenEntry};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const STREAMS: usize = 4;
const BATCH: usize = 1_000;
const BATCHES_PER_STREAM: usize = 25;
const IN_FLIGHT: usize = 4;

/// A typical masked event: a `tools/call` answer of ~600 bytes.
fn event(stream: usize, n: usize) -> api::AuditEvent {
    let rows =
        "[\"Customer Name\",\"[REDACTED:email]\",\"[REDACTED:credit_card]\",\"London\"],".repeat(6);
    api::AuditEvent {
        event_id: format!("bench-{stream}-{n:08}"),
        node_id: format!("proxy-{stream}"),
        unix_ms: 1_700_000_000_000 + n as u64,
        session_id: "f3c1a5e0.9b2d".into(),
        identity: "demo-agent".into(),
        server: "demo".into(),
        direction: "server_to_client".into(),
        method: String::new(),
        tool: "query".into(),
        jsonrpc_id: n.to_string(),
        payload_json: format!("{{\"jsonrpc\":\"2.0\",\"id\":{n},\"result\":{{\"content\":[{{\"type\":\"text\",\"text\":\"{{\\\"rows\\\":[{rows}]}}\"}}]}}}}"),
        verdict: "allow".into(),
        reasons: vec!["tool.read".into()],
        revision: "sha256:7e442e828851".into(),
        approval_id: String::new(),
        decide_us: 120,
        upstream_ms: 3,
    }
}

fn batches(stream: usize, tag: &str) -> Vec<Vec<api::AuditEvent>> {
    (0..BATCHES_PER_STREAM)
        .map(|b| {
            (0..BATCH)
                .map(|i| {
                    let mut e = event(stream, b * BATCH + i);
                    e.event_id = format!("{tag}-{}", e.event_id);
                    e
                })
                .collect()
        })
        .collect()
}

async fn start(dir: &std::path::Path) -> (ControlPlane, String) {
    let key = SigningKey::generate();
    let mut config = ControlPlaneConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        dir.join("data"),
        vec![key.public_key()],
        vec![TokenEntry::from_plain("node", "tok-node", &[Role::Node])],
    );
    config.audit.signing_key = Some(dir.join("audit-signing.key"));
    let plane = ControlPlane::start(config).await.unwrap();
    let url = format!("http://{}", plane.local_addr());
    (plane, url)
}

/// One proxy's stream: sends every batch, at most `IN_FLIGHT` ahead of the acks.
async fn stream(url: String, batches: Vec<Vec<api::AuditEvent>>) -> usize {
    let mut client = AuditServiceClient::connect(url)
        .await
        .unwrap()
        .max_encoding_message_size(64 << 20);
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    request
        .metadata_mut()
        .insert("authorization", "Bearer tok-node".parse().unwrap());
    let total = batches.len();
    let mut pending = batches.into_iter().enumerate();
    for _ in 0..IN_FLIGHT {
        if let Some((i, events)) = pending.next() {
            tx.send(api::AuditServiceAppendRequest {
                batch: i as u64 + 1,
                events,
                checkpoint: String::new(),
            })
            .await
            .unwrap();
        }
    }
    let mut acks = client.append(request).await.unwrap().into_inner();
    let mut stored = 0;
    let mut held: Option<airlock_checkpoint::Checkpoint> = None;
    for _ in 0..total {
        let ack = acks.message().await.unwrap().expect("an ack per batch");
        stored += ack.stored as usize;
        // What a proxy does with each acknowledgement: verify the checkpoint and
        // the consistency proof from the one it held.
        let verifier = airlock_checkpoint::CheckpointVerifier::from_key(&ack.verifier_key).unwrap();
        let checkpoint = verifier.verify(&ack.checkpoint).unwrap();
        if let Some(old) = &held {
            airlock_checkpoint::verify_consistency(old, &checkpoint, &ack.consistency_proof)
                .unwrap();
        }
        held = Some(checkpoint);
        if let Some((i, events)) = pending.next() {
            tx.send(api::AuditServiceAppendRequest {
                batch: i as u64 + 1,
                events,
                checkpoint: String::new(),
            })
            .await
            .unwrap();
        }
    }
    stored
}

fn rate(events: usize, elapsed: Duration) -> f64 {
    events as f64 / elapsed.as_secs_f64()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let total = STREAMS * BATCHES_PER_STREAM * BATCH;

    // Baseline: in process, no gRPC.
    let dir = tempfile::tempdir().unwrap();
    let (plane, _) = start(dir.path()).await;
    let audit = plane.audit();
    let inputs: Vec<_> = (0..STREAMS).map(|s| batches(s, "local")).collect();
    let started = Instant::now();
    let tasks: Vec<_> = inputs
        .into_iter()
        .map(|batches| {
            let audit = audit.clone();
            tokio::spawn(async move {
                for events in batches {
                    audit.append(events).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let local = started.elapsed();
    drop(plane);

    // Measured: 4 gRPC streams to a served control plane.
    let dir = tempfile::tempdir().unwrap();
    let (plane, url) = start(dir.path()).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(plane.run(async {
        let _ = stopped.await;
    }));
    let inputs: Vec<_> = (0..STREAMS).map(|s| batches(s, "grpc")).collect();
    let started = Instant::now();
    let tasks: Vec<_> = inputs
        .into_iter()
        .map(|b| tokio::spawn(stream(url.clone(), b)))
        .collect();
    let mut stored = 0;
    for task in tasks {
        stored += task.await.unwrap();
    }
    let grpc = started.elapsed();
    assert_eq!(stored, total);
    let _ = stop.send(());
    let _ = server.await;

    println!("{total} events ({STREAMS} streams × {BATCHES_PER_STREAM} batches × {BATCH}), ~{} bytes each", event(0, 0).payload_json.len());
    println!(
        "baseline, in process (Audit::append, 4 tasks): {:>10.0} events/s  ({local:.2?})",
        rate(total, local)
    );
    println!(
        "gRPC, 4 Append streams, durable acks, each with a checkpoint and a consistency proof verified by the client: {:>10.0} events/s  ({grpc:.2?})",
        rate(total, grpc)
    );
    println!(
        "ratio gRPC/baseline: {:.2}  (target: >= 50,000 events/s over gRPC)",
        rate(total, grpc) / rate(total, local)
    );
}
