//! Verification of the whole log, in one pass: every record is where its sequence
//! number says, decodes, chains to the previous record's hash and hashes to what it
//! claims; its Merkle leaf, and the tree hashes it completed, are the stored ones;
//! every signed checkpoint verifies with the key and its root is the tree's root at
//! its size; no checkpoint signs more records than the log holds (a cut tail). The
//! first failure is reported by sequence number.
//!
//! The chain checkpoints of older versions (`AuditCheckpoint`) are checked too, and
//! the latest pruning record tells where the stored records start.

use super::checkpoint;
use crate::api::{AuditCheckpoint, AuditRecord};
use crate::store::{record_hash, AuditLog, Frontier, StoreError, GENESIS_HASH};
use airlock_checkpoint::CheckpointVerifier;
use ed25519_dalek::VerifyingKey;
use prost::Message;
use std::collections::BTreeMap;
use std::iter::Peekable;

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verification {
    /// Records checked.
    pub records: u64,
    /// Checkpoints checked (signed notes and chain checkpoints).
    pub checkpoints: u64,
    /// Records set aside at start-up (not part of the log).
    pub set_aside: u64,
    /// The first broken sequence number and what is wrong there.
    pub broken: Option<(u64, String)>,
}

type Problem = (u64, String);

/// Walks the log, its tree and its checkpoints. `verifier` checks the signed
/// notes, `key` the chain checkpoints.
pub fn verify(
    log: &AuditLog,
    verifier: &CheckpointVerifier,
    key: &VerifyingKey,
) -> Result<Verification, StoreError> {
    let legacy: BTreeMap<u64, AuditCheckpoint> =
        log.checkpoints()?.into_iter().map(|c| (c.seq, c)).collect();
    let mut report = Verification {
        checkpoints: legacy.len() as u64,
        set_aside: log.set_aside_count(),
        ..Verification::default()
    };
    for cp in legacy.values() {
        if !checkpoint::verify(key, cp) {
            report.broken = Some((cp.seq, "its checkpoint's signature does not verify".into()));
            return Ok(report);
        }
    }
    let mut walk = Walk::start(log, verifier, &legacy)?;
    if let Err(problem) = walk.run(log, &legacy, &mut report) {
        report.broken = Some(problem);
    }
    report.checkpoints += walk.notes_checked;
    Ok(report)
}

/// Stored rows, read lazily.
type Rows<'a, T> = Peekable<Box<dyn Iterator<Item = Result<T, StoreError>> + 'a>>;

/// The walk's state: the chain, the recomputed tree and the stored one, and the
/// signed checkpoints still to meet.
struct Walk<'a> {
    verifier: &'a CheckpointVerifier,
    chain: Chain,
    tree: Frontier,
    stored: Rows<'a, (u64, Vec<u8>)>,
    notes: Rows<'a, (u64, String)>,
    notes_checked: u64,
    /// The size of the last checkpoint whose root matched.
    matched: u64,
}

impl<'a> Walk<'a> {
    fn start(
        log: &'a AuditLog,
        verifier: &'a CheckpointVerifier,
        legacy: &BTreeMap<u64, AuditCheckpoint>,
    ) -> Result<Self, StoreError> {
        let chain = Chain::new(legacy);
        // Records pruned before the walk's start are vouched for by the stored tree
        // (and by every checkpoint signed since).
        let before = chain.next - 1;
        let tree = log.frontier(before)?;
        let stored: Box<dyn Iterator<Item = _>> =
            Box::new(log.stored_hashes(tlog_tiles::stored_hash_index(0, before)));
        let notes: Box<dyn Iterator<Item = _>> = Box::new(log.stored_checkpoints());
        Ok(Walk {
            verifier,
            chain,
            tree,
            stored: stored.peekable(),
            notes: notes.peekable(),
            notes_checked: 0,
            matched: 0,
        })
    }

    fn run(
        &mut self,
        log: &AuditLog,
        legacy: &BTreeMap<u64, AuditCheckpoint>,
        report: &mut Verification,
    ) -> Result<(), Problem> {
        let next = self.chain.next;
        let fail = |e: StoreError| (next, e.to_string());
        // Checkpoints of the pruned prefix: against the stored tree.
        while let Some(size) = self.peek_note().map_err(fail)? {
            if size > self.tree.size() {
                break;
            }
            let root = log.tree_root(size).map_err(|e| (size, e.to_string()))?;
            self.check_note(root)?;
        }
        for row in log.raw_records() {
            let (seq, bytes) = row.map_err(|e| (self.chain.next, e.to_string()))?;
            let record = self.chain.check(seq, &bytes, legacy)?;
            self.check_tree(&record)?;
            while self.peek_note().map_err(|e| (seq, e.to_string()))? == Some(self.tree.size()) {
                let root = self.tree.root();
                self.check_note(root)?;
            }
            report.records += 1;
        }
        self.check_ends(legacy)
    }

    /// The size of the next signed checkpoint.
    fn peek_note(&mut self) -> Result<Option<u64>, StoreError> {
        match self.notes.peek() {
            None => Ok(None),
            Some(Ok((size, _))) => Ok(Some(*size)),
            Some(Err(_)) => match self.notes.next() {
                Some(Err(e)) => Err(e),
                _ => Ok(None),
            },
        }
    }

    /// The next signed checkpoint verifies and signs `root`.
    fn check_note(&mut self, root: [u8; 32]) -> Result<(), Problem> {
        let Some(Ok((size, note))) = self.notes.next() else {
            return Ok(());
        };
        self.notes_checked += 1;
        let first = self.matched + 1;
        let cp = self.verifier.verify(&note).map_err(|e| {
            (
                size.max(1),
                format!("the checkpoint of {size} records does not verify: {e}"),
            )
        })?;
        if cp.size() != size {
            return Err((
                size.max(1),
                format!(
                    "the checkpoint stored for {size} records says {} (moved)",
                    cp.size()
                ),
            ));
        }
        if *cp.root() != root {
            return Err((
                first,
                format!("records {first}..={size} do not hash to the Merkle root signed for {size} records: they were rewritten together with their tree hashes"),
            ));
        }
        self.matched = size;
        Ok(())
    }

    /// The record's leaf and the tree hashes it completes are the stored ones.
    fn check_tree(&mut self, record: &AuditRecord) -> Result<(), Problem> {
        let leaf = airlock_checkpoint::leaf_hash(&record.hash);
        let index = tlog_tiles::stored_hash_index(0, self.tree.size());
        for (offset, hash) in (0u64..).zip(self.tree.push(leaf)) {
            let stored = match self.stored.next() {
                Some(Ok((at, value))) if at == index + offset => value,
                Some(Err(e)) => return Err((record.seq, e.to_string())),
                _ => {
                    return Err((
                        record.seq,
                        "its Merkle tree hashes are missing (the tree was cut)".into(),
                    ))
                }
            };
            if stored != hash {
                let problem = if offset == 0 {
                    "its Merkle leaf differs from the stored tree: the record was altered and its chain recomputed"
                } else {
                    "the Merkle tree hashes stored with it were altered"
                };
                return Err((record.seq, problem.into()));
            }
        }
        Ok(())
    }

    /// No checkpoint signs records the log does not hold.
    fn check_ends(&mut self, legacy: &BTreeMap<u64, AuditCheckpoint>) -> Result<(), Problem> {
        let last = self.chain.last;
        let beyond = match self.notes.next() {
            Some(Ok((size, _))) => Some(size),
            _ => None,
        }
        .or_else(|| legacy.keys().next_back().copied().filter(|&s| s > last));
        match beyond {
            Some(signed) if signed > last => Err((
                last + 1,
                format!("missing: a signed checkpoint covers records up to {signed}, the log ends at {last}"),
            )),
            _ => Ok(()),
        }
    }
}

/// The chain's state: the next expected sequence number and the hash it chains to.
struct Chain {
    next: u64,
    prev: Vec<u8>,
    last: u64,
}

impl Chain {
    /// Starts at 1, or after the latest pruned range a signed checkpoint vouches for.
    fn new(checkpoints: &BTreeMap<u64, AuditCheckpoint>) -> Chain {
        let pruned = checkpoints.values().rev().find(|c| c.first_pruned_seq > 0);
        match pruned {
            Some(cp) => Chain {
                next: cp.seq + 1,
                prev: cp.hash.clone(),
                last: cp.seq,
            },
            None => Chain {
                next: 1,
                prev: GENESIS_HASH.to_vec(),
                last: 0,
            },
        }
    }

    fn check(
        &mut self,
        seq: u64,
        bytes: &[u8],
        checkpoints: &BTreeMap<u64, AuditCheckpoint>,
    ) -> Result<AuditRecord, Problem> {
        if seq != self.next {
            let problem = if seq > self.next {
                format!("missing (the next stored record is {seq})")
            } else {
                format!("a record keyed {seq} is out of place (pruned or malformed key)")
            };
            return Err((self.next, problem));
        }
        let record = AuditRecord::decode(bytes)
            .map_err(|e| (seq, format!("the stored record does not decode ({e})")))?;
        if record.seq != seq {
            return Err((
                seq,
                format!(
                    "the record stored here says it is record {} (records were moved)",
                    record.seq
                ),
            ));
        }
        if record.prev_hash != self.prev {
            return Err((
                seq,
                "its prev_hash is not the previous record's hash".to_owned(),
            ));
        }
        if record_hash(&record) != record.hash {
            return Err((
                seq,
                "its content does not match its hash (altered)".to_owned(),
            ));
        }
        if let Some(cp) = checkpoints.get(&seq) {
            if cp.hash != record.hash {
                return Err((
                    seq,
                    "its hash differs from the signed checkpoint".to_owned(),
                ));
            }
        }
        self.prev.clone_from(&record.hash);
        self.last = seq;
        self.next = seq + 1;
        Ok(record)
    }
}

#[cfg(test)]
#[path = "verify_test.rs"]
mod tests;
