//! `AuditService` over a real control plane on 127.0.0.1: roles, per-batch
//! acknowledgements with deduplication, query filters, follow, verify, and the
//! ingest counters on the metrics port.

mod support;

use airlock_bundle::SigningKey;
use airlock_checkpoint::CheckpointVerifier;
use airlock_control_plane::api;
use api::audit_service_client::AuditServiceClient;
use support::{authed, config, scrape, Plane, ADMIN, NODE};

fn event(n: u64, tool: &str) -> api::AuditEvent {
    api::AuditEvent {
        event_id: format!("svc-{n}"),
        identity: "demo-agent".into(),
        tool: tool.into(),
        verdict: if tool == "execute" { "deny" } else { "allow" }.into(),
        unix_ms: 1_000 + n,
        payload_json: "{}".into(),
        ..Default::default()
    }
}

async fn append(
    client: &mut AuditServiceClient<tonic::transport::Channel>,
    batches: Vec<Vec<api::AuditEvent>>,
    token: &str,
) -> Result<Vec<api::AuditServiceAppendResponse>, tonic::Status> {
    let requests: Vec<_> = batches
        .into_iter()
        .enumerate()
        .map(|(i, events)| api::AuditServiceAppendRequest {
            checkpoint: String::new(),
            batch: i as u64 + 1,
            events,
        })
        .collect();
    let mut acks = client
        .append(authed(tokio_stream::iter(requests), token))
        .await?
        .into_inner();
    let mut out = Vec::new();
    while let Some(ack) = acks.message().await? {
        out.push(ack);
    }
    Ok(out)
}

async fn query(
    client: &mut AuditServiceClient<tonic::transport::Channel>,
    q: api::AuditServiceQueryRequest,
) -> Vec<u64> {
    let mut stream = client.query(authed(q, ADMIN)).await.unwrap().into_inner();
    let mut seqs = Vec::new();
    while let Some(item) = stream.message().await.unwrap() {
        seqs.push(item.record.unwrap().seq);
    }
    seqs
}

#[tokio::test]
async fn batches_are_acknowledged_deduplicated_queried_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut cfg = config(dir.path(), &key);
    cfg.metrics_listen = Some(free);
    let plane = Plane::start_with(cfg).await;
    let mut client = AuditServiceClient::new(plane.channel().await);

    let denied = append(&mut client, vec![vec![event(1, "query")]], ADMIN).await;
    assert_eq!(denied.unwrap_err().code(), tonic::Code::PermissionDenied);
    let refused = client
        .query(authed(api::AuditServiceQueryRequest::default(), NODE))
        .await;
    assert_eq!(refused.unwrap_err().code(), tonic::Code::PermissionDenied);

    let acks = append(
        &mut client,
        vec![
            vec![event(1, "query"), event(2, "execute")],
            vec![event(2, "execute"), event(3, "query")], // 2 is a resend
        ],
        NODE,
    )
    .await
    .unwrap();
    assert_eq!(acks.len(), 2);
    assert_eq!((acks[0].batch, acks[0].stored, acks[0].last_seq), (1, 2, 2));
    // Each acknowledgement carries the checkpoint signed in its flush, and a
    // proof that it extends the one before it on the stream.
    let verifier = CheckpointVerifier::from_key(&acks[0].verifier_key).unwrap();
    let first = verifier.verify(&acks[0].checkpoint).unwrap();
    let second = verifier.verify(&acks[1].checkpoint).unwrap();
    assert_eq!((first.size(), second.size()), (2, 3));
    assert_eq!(acks[1].consistency_from, 2);
    airlock_checkpoint::verify_consistency(&first, &second, &acks[1].consistency_proof).unwrap();
    assert_eq!(
        (
            acks[1].batch,
            acks[1].stored,
            acks[1].duplicates,
            acks[1].last_seq
        ),
        (2, 1, 1, 3)
    );

    let all = query(&mut client, api::AuditServiceQueryRequest::default()).await;
    assert_eq!(all, [1, 2, 3]);
    let deny = api::AuditServiceQueryRequest {
        verdict: "deny".into(),
        ..Default::default()
    };
    assert_eq!(query(&mut client, deny).await, [2]);
    let last = api::AuditServiceQueryRequest {
        last: 1,
        ..Default::default()
    };
    assert_eq!(query(&mut client, last).await, [3]);
    let window = api::AuditServiceQueryRequest {
        since_unix_ms: 1_002,
        until_unix_ms: 1_003,
        ..Default::default()
    };
    assert_eq!(query(&mut client, window).await, [2]);

    // follow: the stored tail, then what is appended afterwards.
    let follow = api::AuditServiceQueryRequest {
        after_seq: 2,
        follow: true,
        ..Default::default()
    };
    let mut stream = client
        .query(authed(follow, ADMIN))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        stream.message().await.unwrap().unwrap().record.unwrap().seq,
        3
    );
    let mut writer = AuditServiceClient::new(plane.channel().await);
    append(&mut writer, vec![vec![event(4, "query")]], NODE)
        .await
        .unwrap();
    assert_eq!(
        stream.message().await.unwrap().unwrap().record.unwrap().seq,
        4
    );

    let report = client
        .verify(authed(api::AuditServiceVerifyRequest {}, ADMIN))
        .await
        .unwrap()
        .into_inner();
    assert!(report.ok && report.records == 4, "{report:?}");
    assert_eq!(verifier.verify(&report.checkpoint).unwrap().size(), 4);

    // Prove: the record of event 2 is in the signed tree; the log extends the
    // checkpoint of the first acknowledgement.
    let proof = client
        .prove(authed(
            api::AuditServiceProveRequest {
                event_id: event(2, "execute").event_id,
                from_size: 2,
            },
            ADMIN,
        ))
        .await
        .unwrap()
        .into_inner();
    let newest = verifier.verify(&proof.checkpoint).unwrap();
    let record = proof.record.unwrap();
    airlock_checkpoint::verify_inclusion(
        &newest,
        record.seq - 1,
        &record.hash,
        &proof.inclusion_proof,
    )
    .unwrap();
    airlock_checkpoint::verify_consistency(&first, &newest, &proof.consistency_proof).unwrap();
    let unknown = client
        .prove(authed(
            api::AuditServiceProveRequest {
                event_id: "no-such-event".into(),
                from_size: 0,
            },
            ADMIN,
        ))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    let metrics = tokio::task::spawn_blocking(move || scrape(free))
        .await
        .unwrap();
    assert!(
        metrics.contains("airlock_audit_events_stored_total 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("airlock_audit_events_duplicate_total 1"),
        "{metrics}"
    );
}
