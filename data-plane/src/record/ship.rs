//! Shipping to the control plane: one `AuditService.Append` stream, batches of up to
//! `BATCH` events, up to `IN_FLIGHT` batches sent ahead of their acknowledgements
//! (so the control plane's flush of one batch overlaps the transfer of the next).
//! An acknowledgement removes its batch from the backlog; when the stream breaks,
//! everything still in the backlog is resent on the next stream (the control plane
//! drops duplicates by event id).
//!
//! A stream is opened at start-up and after every break, before there is anything
//! to send (so the first event after a quiet spell goes out at once, and a
//! rolled-back or forked log is noticed at connection time, not at the next
//! call). It opens with the newest checkpoint this node holds and no events; the
//! control plane answers with its newest checkpoint and a consistency proof, and
//! nothing is shipped unless the [`CheckpointKeeper`] accepts it. Every later
//! acknowledgement is judged the same way before its batch leaves the backlog: a
//! control plane whose log is rolled back or forked gets no events.

use super::backlog::Backlog;
use super::checkpoint::CheckpointKeeper;
use super::AuditEvent;
use crate::control::ControlPlaneLink;
use airlock_proto::v1 as api;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const BATCH: usize = 1000;
const IN_FLIGHT: usize = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Why a stream ended.
#[derive(Debug)]
enum StreamEnd {
    /// The stream failed (network, control plane down): retry soon.
    Failed(tonic::Status),
    /// The control plane's log does not extend the held checkpoint.
    Refused(String),
}

impl From<tonic::Status> for StreamEnd {
    fn from(status: tonic::Status) -> Self {
        StreamEnd::Failed(status)
    }
}

/// Runs forever: connect, stream, reconnect with backoff.
pub(super) async fn ship(link: ControlPlaneLink, backlog: Arc<Backlog>, keeper: CheckpointKeeper) {
    let mut backoff = FIRST_BACKOFF;
    let mut refused: Option<String> = None;
    loop {
        match stream_once(&link, &backlog, &keeper).await {
            Ok(()) => backoff = FIRST_BACKOFF,
            Err(StreamEnd::Failed(err)) => {
                // With nothing waiting, a control plane away is the bundle
                // follower's news (`/readyz` `control_plane`), not the audit's.
                if backlog.len() > 0 {
                    tracing::warn!(
                        target: "airlock::audit",
                        error = %err,
                        pending = backlog.len(),
                        retry_in = ?backoff,
                        "audit stream to the control plane failed; events are kept and resent"
                    );
                } else {
                    tracing::debug!(target: "airlock::audit", error = %err, retry_in = ?backoff, "audit stream to the control plane failed");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(StreamEnd::Refused(problem)) => {
                if refused.as_deref() != Some(problem.as_str()) {
                    tracing::error!(
                        target: "airlock::audit",
                        %problem,
                        pending = backlog.len(),
                        "the control plane's audit log is refused: no events are shipped to it; they wait in the backlog, and calls are refused once it is full. Restore the control plane's data directory, or see docs/audit.md"
                    );
                    refused = Some(problem);
                }
                tokio::time::sleep(MAX_BACKOFF).await;
                continue;
            }
        }
        refused = None;
    }
}

/// One stream's life; returns when it ends.
async fn stream_once(
    link: &ControlPlaneLink,
    backlog: &Backlog,
    keeper: &CheckpointKeeper,
) -> Result<(), StreamEnd> {
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    let mut client = api::audit_service_client::AuditServiceClient::new(link.channel())
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    let request = link.authorize(tonic::Request::new(ReceiverStream::new(rx)));
    // First the held checkpoint, alone (tonic sends headers with the first
    // message): nothing is shipped before the log is proven to extend it.
    let hello = api::AuditServiceAppendRequest {
        batch: 0,
        events: Vec::new(),
        checkpoint: keeper.held_note(),
    };
    tx.send(hello)
        .await
        .map_err(|_| tonic::Status::unavailable("the audit stream closed"))?;
    let mut acks = client.append(request).await?.into_inner();
    let Some(answer) = acks.message().await? else {
        return Err(tonic::Status::unavailable("the control plane closed the audit stream").into());
    };
    keeper.accept(&answer).map_err(StreamEnd::Refused)?;
    let mut sent_through = 0;
    let mut batch_no = 0;
    let mut in_flight: VecDeque<(u64, u64)> = VecDeque::new();
    send_more(
        backlog,
        &tx,
        &mut sent_through,
        &mut batch_no,
        &mut in_flight,
    )
    .await?;
    loop {
        tokio::select! {
            ack = acks.message() => {
                let Some(ack) = ack? else {
                    return Err(tonic::Status::unavailable("the control plane closed the audit stream").into());
                };
                // A batch leaves the backlog only under a checkpoint this node accepts.
                keeper.accept(&ack).map_err(StreamEnd::Refused)?;
                while let Some((batch, last)) = in_flight.pop_front() {
                    if batch == ack.batch {
                        backlog.acknowledge(last);
                        break;
                    }
                }
            }
            () = backlog.pushed(), if in_flight.len() < IN_FLIGHT => {}
        }
        send_more(
            backlog,
            &tx,
            &mut sent_through,
            &mut batch_no,
            &mut in_flight,
        )
        .await?;
    }
}

async fn send_more(
    backlog: &Backlog,
    tx: &mpsc::Sender<api::AuditServiceAppendRequest>,
    sent_through: &mut u64,
    batch_no: &mut u64,
    in_flight: &mut VecDeque<(u64, u64)>,
) -> Result<(), tonic::Status> {
    while in_flight.len() < IN_FLIGHT {
        let batch = backlog.after(*sent_through, BATCH);
        let Some((last, _)) = batch.last() else {
            return Ok(());
        };
        let last = *last;
        *batch_no += 1;
        let request = api::AuditServiceAppendRequest {
            batch: *batch_no,
            events: batch.iter().map(|(_, e)| to_proto(e)).collect(),
            checkpoint: String::new(),
        };
        tx.send(request)
            .await
            .map_err(|_| tonic::Status::unavailable("the audit stream closed"))?;
        in_flight.push_back((*batch_no, last));
        *sent_through = last;
    }
    Ok(())
}

/// The border: the domain event becomes the protobuf message.
fn to_proto(e: &AuditEvent) -> api::AuditEvent {
    api::AuditEvent {
        event_id: e.event_id.clone(),
        node_id: e.node_id.clone(),
        unix_ms: e.unix_ms,
        session_id: e.session_id.clone(),
        identity: e.identity.clone(),
        server: e.server.clone(),
        direction: e.direction.clone(),
        method: e.method.clone(),
        tool: e.tool.clone(),
        jsonrpc_id: e.jsonrpc_id.clone(),
        payload_json: e.payload_json.clone(),
        verdict: e.verdict.clone(),
        reasons: e.reasons.clone(),
        revision: e.revision.clone(),
        approval_id: e.approval_id.clone().unwrap_or_default(),
        decide_us: e.decide_us,
        upstream_ms: e.upstream_ms,
    }
}
