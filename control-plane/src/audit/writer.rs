//! The audit writer: one OS thread owns appends to the log, so batches arriving on
//! concurrent streams are committed together, with one flush (group commit). A
//! flush costs the same for one batch or sixteen, so under load each stream's
//! acknowledgement waits for at most one flush while throughput grows with the
//! number of streams.
//!
//! Every commit signs one checkpoint of the tree it leaves, stored under the same
//! flush: each batch of the group is acknowledged with it, so no acknowledged
//! record is ever outside a signed checkpoint (no unsigned tail).

use super::WriteRequest;
use crate::bundles::now_ms;
use crate::store::AuditLog;
use crate::ControlPlaneError;
use airlock_checkpoint::CheckpointSigner;
use std::sync::mpsc;
use std::sync::Arc;

/// Most batches committed under one flush.
const GROUP: usize = 32;

/// Starts the writer thread; it ends when every sender is dropped. It holds the log
/// only while committing, so stopping the control plane releases the database as
/// soon as the services are gone (a restart in the same process can reopen it).
pub(super) fn spawn(
    log: &Arc<AuditLog>,
    signer: Arc<CheckpointSigner>,
) -> Result<mpsc::Sender<WriteRequest>, ControlPlaneError> {
    let log = Arc::downgrade(log);
    let (tx, rx) = mpsc::channel::<WriteRequest>();
    std::thread::Builder::new()
        .name("audit-writer".to_owned())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut group = vec![first];
                while group.len() < GROUP {
                    match rx.try_recv() {
                        Ok(next) => group.push(next),
                        Err(_) => break,
                    }
                }
                let (batches, replies): (Vec<_>, Vec<_>) = group.into_iter().unzip();
                let Some(log) = log.upgrade() else {
                    return; // the control plane stopped; the replies' senders drop
                };
                let outcomes = log.append_many(batches, now_ms(), |size, root| {
                    signer.sign(size, root).map_err(|e| e.to_string())
                });
                drop(log);
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
        })
        .map_err(|e| {
            ControlPlaneError::Serve(format!("cannot start the audit writer thread: {e}"))
        })?;
    Ok(tx)
}
