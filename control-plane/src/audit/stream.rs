//! One proxy's `Append` stream. Each request's events are appended (group commit,
//! `writer.rs`) and acknowledged with the checkpoint signed in the same flush, plus
//! an RFC 6962 consistency proof from the checkpoint the proxy held before: the one
//! it sent on the stream's first request, then the one of the previous
//! acknowledgement. A proxy can thus check, at every step, that the log it ships to
//! only ever grew. A request with a checkpoint and no events is answered without
//! appending: a proxy asks it before it sends events to a log it has not checked.

use super::{stopped, Audit};
use crate::api;
use crate::bundles::blocking;
use crate::ControlPlaneError;
use airlock_checkpoint::Checkpoint;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt as _;
use tonic::{Status, Streaming};

type Ack = Result<api::AuditServiceAppendResponse, Status>;

/// Serves one stream until the proxy hangs up, a request fails, or the server stops.
pub(super) fn serve(
    audit: Audit,
    mut incoming: Streaming<api::AuditServiceAppendRequest>,
) -> ReceiverStream<Ack> {
    let (tx, rx) = mpsc::channel(64);
    let mut stopping = audit.stopping.clone();
    tokio::spawn(async move {
        // The tree size of the newest checkpoint the proxy holds.
        let mut known = 0;
        loop {
            // Only the wait for the next batch is cut short: a batch being
            // appended completes and is acknowledged.
            let next = tokio::select! {
                next = incoming.next() => next,
                () = stopped(&mut stopping) => return,
            };
            let Some(next) = next else { return };
            let reply = match next {
                Ok(request) => audit
                    .acknowledge(request, &mut known)
                    .await
                    .map_err(Status::from),
                Err(status) => Err(status),
            };
            let failed = reply.is_err();
            if tx.send(reply).await.is_err() || failed {
                return;
            }
        }
    });
    ReceiverStream::new(rx)
}

impl Audit {
    /// Appends a request's events and builds its acknowledgement.
    async fn acknowledge(
        &self,
        request: api::AuditServiceAppendRequest,
        known: &mut u64,
    ) -> Result<api::AuditServiceAppendResponse, ControlPlaneError> {
        if !request.checkpoint.is_empty() {
            *known = self.held_by_sender(request.checkpoint).await?;
        }
        let (stored, duplicates, last_seq, checkpoint) = if request.events.is_empty() {
            let (last, _) = self.log.head()?;
            (0, 0, last, self.newest_checkpoint())
        } else {
            let a = self.append(request.events).await?;
            (a.stored, a.duplicates, a.last_seq, a.checkpoint)
        };
        let checkpoint = checkpoint.ok_or_else(|| {
            ControlPlaneError::Serve(
                "the audit log has no signed checkpoint yet; restart the control plane".to_owned(),
            )
        })?;
        let from = *known;
        let to = checkpoint.size();
        let proof = if from > 0 && from < to {
            let log = self.log.clone();
            blocking(move || Ok(log.consistency_proof(from, to)?)).await?
        } else {
            Vec::new()
        };
        if from <= to {
            *known = to;
        }
        Ok(api::AuditServiceAppendResponse {
            batch: request.batch,
            stored,
            duplicates,
            last_seq,
            checkpoint: checkpoint.note().to_owned(),
            consistency_from: from,
            consistency_proof: proof.iter().map(|h| h.to_vec()).collect(),
            verifier_key: self.verifier.key().to_owned(),
        })
    }

    /// The tree size of the checkpoint a proxy says it holds. The proxy judges
    /// the proof itself; this only tells the operator, loudly, when this log does
    /// not extend a checkpoint it signed (rolled back or forked).
    async fn held_by_sender(&self, note: String) -> Result<u64, ControlPlaneError> {
        let held = Checkpoint::parse(&note)
            .map_err(|e| ControlPlaneError::InvalidArgument(format!("the checkpoint sent: {e}")))?;
        let verifier = self.verifier.clone();
        let log = self.log.clone();
        let newest = self.newest_checkpoint().map_or(0, |c| c.size());
        blocking(move || {
            let size = held.size();
            if let Err(e) = verifier.verify(&note) {
                tracing::warn!(size, error = %e, "a proxy holds an audit checkpoint this control plane did not sign; it will refuse this log");
            } else if size > newest {
                tracing::error!(
                    held = size,
                    log = newest,
                    "a proxy holds a checkpoint of {size} records signed by this control plane's key, but the log has {newest}: the log was rolled back (an older copy of the data directory?); the proxy will ship nothing to it"
                );
            } else if log.tree_root(size)? != *held.root() {
                tracing::error!(
                    held = size,
                    "a proxy holds a signed checkpoint of {size} records that this log does not match: the log was forked or rewritten; the proxy will ship nothing to it"
                );
            }
            Ok(size)
        })
        .await
    }
}
