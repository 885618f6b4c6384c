//! Start-up: before it signs anything, the control plane checks that its log still
//! matches its newest signed checkpoint, and refuses to serve a log that does not.
//!
//! - The newest checkpoint must verify with the audit key and origin.
//! - The log must hold every record it signs (else it was cut), and the stored
//!   tree's root at its size must be the signed root, and the last signed record
//!   must recompute to its hash and be included in that root. Since each record's
//!   hash covers the one before it, an edit anywhere with the chain recomputed
//!   changes the last record and fails here; the full walk of `verify` then names
//!   the first bad sequence number. This costs O(log n), whatever the log's size.
//! - Records after the newest checkpoint were never acknowledged (every
//!   acknowledgement carries the checkpoint signed in its flush): a crash between
//!   their write and their checkpoint, or records added behind the control plane's
//!   back. Either way they are not signed over: they are set aside (kept in
//!   `audit_set_aside`), and proxies resend what they did not get acknowledged.
//! - A log without any signed checkpoint gets its first one: a new log, the empty
//!   tree; a log written before Merkle checkpoints, its tree is built and the
//!   whole log verified first.

use super::verify;
use crate::store::AuditLog;
use crate::ControlPlaneError;
use airlock_checkpoint::{Checkpoint, CheckpointSigner, CheckpointVerifier};
use ed25519_dalek::VerifyingKey;
use std::sync::Arc;

/// Brings the log to a verified, signed state, or refuses.
pub(super) fn reconcile(
    log: &AuditLog,
    signer: &CheckpointSigner,
    key: &VerifyingKey,
) -> Result<(), ControlPlaneError> {
    let verifier = signer.verifier();
    let Some(note) = log.newest_stored_checkpoint()? else {
        return first_checkpoint(log, signer, key);
    };
    let checkpoint = verifier.verify(&note).map_err(|e| {
        let size = Checkpoint::parse(&note).map_or(1, |c| c.size().max(1));
        ControlPlaneError::AuditMismatch {
            first_bad_seq: size,
            problem: format!(
                "its newest checkpoint does not verify ({e}); check that [audit] signing_key and [audit] origin are the ones this log was signed with, else the checkpoint was forged"
            ),
        }
    })?;
    let size = checkpoint.size();
    let (head, _) = log.head()?;
    if head < size {
        return Err(ControlPlaneError::AuditMismatch {
            first_bad_seq: head + 1,
            problem: format!(
                "records {}..={size} are missing: the log was cut after a checkpoint of {size} records was signed",
                head + 1
            ),
        });
    }
    if let Err(problem) = signed_prefix_matches(log, &checkpoint) {
        return Err(locate(log, &verifier, key, size, problem));
    }
    if head > size || log.tree_size()? > size {
        let moved = log.set_aside_after(size)?;
        if moved > 0 {
            tracing::error!(
                first_seq = size + 1,
                last_seq = head,
                set_aside = moved,
                "records {}..={head} are not covered by the newest signed checkpoint ({size} records): they were never acknowledged. They are set aside (tree audit_set_aside), not signed; proxies resend what was not acknowledged. If the control plane did not crash just before, someone added them or removed checkpoints: compare the checkpoints your proxies and witness hold (`airlock audit verify --checkpoint FILE`)",
                size + 1
            );
        }
    }
    log.set_newest(Arc::new(checkpoint));
    Ok(())
}

/// The stored tree and the last signed record agree with the checkpoint.
fn signed_prefix_matches(log: &AuditLog, checkpoint: &Checkpoint) -> Result<(), String> {
    let size = checkpoint.size();
    let root = log
        .tree_size()
        .and_then(|stored| {
            if stored < size {
                Err(crate::store::StoreError::Corrupt {
                    key: "audit_tree".into(),
                    message: format!("the tree holds {stored} records, the checkpoint {size}"),
                })
            } else {
                log.frontier(size).map(|f| f.root())
            }
        })
        .map_err(|e| e.to_string())?;
    if root != *checkpoint.root() {
        return Err(format!(
            "the stored Merkle tree of {size} records does not hash to the signed root"
        ));
    }
    if size == 0 {
        return Ok(());
    }
    let last = log
        .records_after(size - 1, 1)
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
        .filter(|r| r.seq == size)
        .ok_or_else(|| format!("record {size} is missing"))?;
    if crate::store::record_hash(&last) != last.hash {
        return Err(format!("record {size} does not match its hash (altered)"));
    }
    let proof = log.inclusion_proof(size, size).map_err(|e| e.to_string())?;
    airlock_checkpoint::verify_inclusion(checkpoint, size - 1, &last.hash, &proof).map_err(|_| {
        format!("record {size} is not the record the checkpoint signed: the log was altered and its chain recomputed")
    })
}

/// Names the first bad sequence number by walking the whole log.
fn locate(
    log: &AuditLog,
    verifier: &CheckpointVerifier,
    key: &VerifyingKey,
    size: u64,
    problem: String,
) -> ControlPlaneError {
    let found = verify::verify(log, verifier, key)
        .ok()
        .and_then(|report| report.broken);
    let (first_bad_seq, problem) = found.unwrap_or((size.max(1), problem));
    ControlPlaneError::AuditMismatch {
        first_bad_seq,
        problem,
    }
}

/// The first checkpoint of a new log, or of one written before the tree existed.
fn first_checkpoint(
    log: &AuditLog,
    signer: &CheckpointSigner,
    key: &VerifyingKey,
) -> Result<(), ControlPlaneError> {
    let (head, _) = log.head()?;
    if head == 0 && log.tree_size()? == 0 {
        let empty = signer.sign(0, &tlog_tiles::EMPTY_HASH.0)?;
        log.put_signed(empty)?;
        return Ok(());
    }
    let size = log.extend_tree()?;
    let verifier = signer.verifier();
    let report = verify::verify(log, &verifier, key)?;
    if let Some((first_bad_seq, problem)) = report.broken {
        return Err(ControlPlaneError::AuditMismatch {
            first_bad_seq,
            problem,
        });
    }
    let frontier = log.frontier(size)?;
    let checkpoint = signer.sign(size, &frontier.root())?;
    log.put_signed(checkpoint)?;
    let legacy = log.last_checkpoint()?.map_or(0, |c| c.seq);
    tracing::warn!(
        records = size,
        last_chain_checkpoint = legacy,
        "the audit log had no Merkle checkpoint (written by an older airlock, or its checkpoints were removed): its chain verifies, its tree was built and a first checkpoint of {size} records signed; records after {legacy} had no signature before this one"
    );
    Ok(())
}

#[cfg(test)]
#[path = "startup_test.rs"]
mod tests;
