//! The audit log on sled: tree `audit` (big-endian u64 sequence number → protobuf
//! `AuditRecord`), `audit_by_event_id` (event id → sequence number, for
//! deduplication), the Merkle tree and its signed checkpoints (`audit_tree`,
//! `audit_checkpoints`: see [`super::merkle`]), `audit_set_aside` (records set
//! aside at start-up, never signed) and `checkpoints` (big-endian sequence number →
//! protobuf `AuditCheckpoint`: the chain checkpoints of older versions and the
//! signed records of what retention pruned). Shares the control plane's sled
//! database.
//!
//! Appends are serialized by one lock (the chain has one head); the audit writer
//! commits the batches of concurrent streams under one flush (group commit) with
//! the checkpoint that covers them; a batch is acknowledged only after that flush
//! returned.

use super::merkle::{self, Frontier, Tail};
use super::StoreError;
use crate::api::{AuditCheckpoint, AuditEvent, AuditRecord};
use airlock_checkpoint::Checkpoint;
use prost::Message;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// The hash the first record chains to.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// SHA-256 of a record's protobuf encoding with its `hash` field empty: the
/// canonical encoding (prost writes fields in number order, no maps are used, so the
/// encoding of a given record is unique).
pub fn record_hash(record: &AuditRecord) -> Vec<u8> {
    let mut unhashed = record.clone();
    unhashed.hash.clear();
    Sha256::digest(unhashed.encode_to_vec()).to_vec()
}

/// What one appended batch did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Appended {
    /// Events newly stored.
    pub stored: u32,
    /// Events already stored (or repeated within the batch).
    pub duplicates: u32,
    /// The log's last sequence number afterwards.
    pub last_seq: u64,
    /// The checkpoint signed under the same flush, covering this batch (`None`
    /// only from [`AuditLog::append`], which signs nothing).
    pub checkpoint: Option<Arc<Checkpoint>>,
}

pub(super) struct Head {
    pub(super) seq: u64,
    pub(super) hash: Vec<u8>,
    /// The Merkle tree's right edge; its size is `seq` once the log is open for
    /// appends (start-up brings them in step).
    pub(super) frontier: Frontier,
    /// The end of the stored tree.
    pub(super) tail: Tail,
}

/// The append-only audit log.
pub struct AuditLog {
    pub(super) db: sled::Db,
    pub(super) records: sled::Tree,
    pub(super) by_event: sled::Tree,
    pub(super) checkpoints: sled::Tree,
    pub(super) nodes: sled::Tree,
    pub(super) notes: sled::Tree,
    pub(super) aside: sled::Tree,
    pub(super) head: Mutex<Head>,
    pub(super) newest: Mutex<Option<Arc<Checkpoint>>>,
    pub(super) path: String,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .finish()
    }
}

impl AuditLog {
    /// Opens the audit trees of `db` and finds the chain's head.
    pub fn open(db: &sled::Db, path: &str) -> Result<AuditLog, StoreError> {
        let err = |e: sled::Error| StoreError::Database {
            path: path.to_owned(),
            message: e.to_string(),
        };
        let records = db.open_tree("audit").map_err(err)?;
        let checkpoints = db.open_tree("checkpoints").map_err(err)?;
        let head = match records.last().map_err(err)? {
            // Empty: a new log, or one whose every record was pruned, whose head
            // the last checkpoint keeps.
            None => match checkpoints.last().map_err(err)? {
                None => (0, GENESIS_HASH.to_vec()),
                Some((key, value)) => {
                    let cp = decode_checkpoint(&key, &value)?;
                    (cp.seq, cp.hash)
                }
            },
            Some((key, value)) => {
                let record = decode_record(&key, &value)?;
                (record.seq, record.hash)
            }
        };
        let head = Head {
            seq: head.0,
            hash: head.1,
            frontier: Frontier::default(),
            tail: Tail::default(),
        };
        let nodes = db.open_tree(merkle::NODES).map_err(err)?;
        let frontier = Frontier::load(merkle::stored_size(&nodes)?, &nodes)?;
        let tail = Tail::load(&nodes)?;
        let log = AuditLog {
            by_event: db.open_tree("audit_by_event_id").map_err(err)?,
            notes: db.open_tree(merkle::CHECKPOINTS).map_err(err)?,
            aside: db.open_tree("audit_set_aside").map_err(err)?,
            nodes,
            checkpoints,
            records,
            db: db.clone(),
            head: Mutex::new(Head {
                frontier,
                tail,
                ..head
            }),
            newest: Mutex::new(None),
            path: path.to_owned(),
        };
        log.repair_index()?;
        Ok(log)
    }

    pub(super) fn db_err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Database {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// Appends the events not stored yet, chains them, and returns once durable,
    /// without signing a checkpoint (tests and tools; the service uses
    /// [`AuditLog::append_many`]).
    pub fn append(&self, events: Vec<AuditEvent>, now_ms: u64) -> Result<Appended, StoreError> {
        let outcome = self.append_unflushed(events, now_ms)?;
        self.db.flush().map_err(|e| self.db_err(e))?;
        Ok(outcome)
    }

    /// Appends several batches (from concurrent streams) with one flush for all:
    /// group commit. `sign` is offered the new tree (size, root) and returns the
    /// checkpoint stored under the same flush; every batch's outcome carries it, so
    /// nothing is acknowledged that a signed checkpoint does not cover. When no
    /// record was added the newest checkpoint is returned again, unsigned anew.
    pub fn append_many(
        &self,
        batches: Vec<Vec<AuditEvent>>,
        now_ms: u64,
        sign: impl FnOnce(u64, &[u8; 32]) -> Result<Checkpoint, String>,
    ) -> Vec<Result<Appended, StoreError>> {
        let mut outcomes: Vec<Result<Appended, StoreError>> = batches
            .into_iter()
            .map(|events| self.append_unflushed(events, now_ms))
            .collect();
        let signed = self.sign_head(sign).and_then(|cp| {
            self.db.flush().map_err(|e| self.db_err(e))?;
            Ok(cp)
        });
        match signed {
            Ok(cp) => {
                self.set_newest(cp.clone());
                for outcome in outcomes.iter_mut().flatten() {
                    outcome.checkpoint = Some(cp.clone());
                }
            }
            Err(e) => {
                let message = e.to_string();
                for outcome in &mut outcomes {
                    if outcome.is_ok() {
                        *outcome = Err(self.db_err(&message));
                    }
                }
            }
        }
        outcomes
    }

    /// Signs and stages the checkpoint of the current head, unless the newest one
    /// already covers it.
    fn sign_head(
        &self,
        sign: impl FnOnce(u64, &[u8; 32]) -> Result<Checkpoint, String>,
    ) -> Result<Arc<Checkpoint>, StoreError> {
        let (size, root) = {
            let head = self.lock_head()?;
            (head.seq, head.frontier.root())
        };
        if let Some(newest) = self.newest_checkpoint() {
            if newest.size() == size {
                return Ok(newest);
            }
        }
        let cp = sign(size, &root).map_err(|e| self.db_err(e))?;
        self.notes
            .insert(size.to_be_bytes(), cp.note().as_bytes())
            .map_err(|e| self.db_err(e))?;
        Ok(Arc::new(cp))
    }

    pub(super) fn lock_head(&self) -> Result<std::sync::MutexGuard<'_, Head>, StoreError> {
        self.head
            .lock()
            .map_err(|_| self.db_err("the audit log lock is poisoned; restart"))
    }

    fn append_unflushed(
        &self,
        events: Vec<AuditEvent>,
        now_ms: u64,
    ) -> Result<Appended, StoreError> {
        let mut head = self.lock_head()?;
        if head.frontier.size() != head.seq {
            return Err(self.db_err(format!(
                "the Merkle tree holds {} records, the log {}; restart the control plane so that start-up brings them in step",
                head.frontier.size(),
                head.seq
            )));
        }
        let fresh = self.fresh(events)?;
        let duplicates = fresh.1;
        let mut seq = head.seq;
        let mut prev = head.hash.clone();
        let mut frontier = head.frontier.clone();
        let mut tail = head.tail.clone();
        let mut tree = sled::Batch::default();
        let mut rows = Vec::with_capacity(fresh.0.len());
        for event in fresh.0 {
            seq += 1;
            let mut record = AuditRecord {
                seq,
                stored_unix_ms: now_ms,
                event: Some(event),
                prev_hash: prev,
                hash: Vec::new(),
            };
            record.hash = record_hash(&record);
            let stored = frontier.push(airlock_checkpoint::leaf_hash(&record.hash));
            tail.stage(&mut tree, seq - 1, &stored)?;
            prev = record.hash.clone();
            rows.push(record);
        }
        tail.stage_partial(&mut tree);
        self.commit(&rows, tree)?;
        let stored = rows.len() as u32;
        head.seq = seq;
        head.hash = prev;
        head.frontier = frontier;
        head.tail = tail;
        Ok(Appended {
            stored,
            duplicates,
            last_seq: seq,
            checkpoint: None,
        })
    }

    /// The events whose id is not stored yet (nor repeated in the batch), and how
    /// many were duplicates.
    fn fresh(&self, events: Vec<AuditEvent>) -> Result<(Vec<AuditEvent>, u32), StoreError> {
        let mut seen = HashSet::with_capacity(events.len());
        let mut fresh = Vec::with_capacity(events.len());
        let mut duplicates = 0;
        for event in events {
            let known = self
                .by_event
                .contains_key(event.event_id.as_bytes())
                .map_err(|e| self.db_err(e))?;
            if known || !seen.insert(event.event_id.clone()) {
                duplicates += 1;
            } else {
                fresh.push(event);
            }
        }
        Ok((fresh, duplicates))
    }

    /// Writes the records, their event-id index, then their tree hashes, each as
    /// one atomic batch (a multi-tree transaction costs more than the whole
    /// append). A crash between them leaves records without index entries or
    /// tree hashes at the tail of the log, which no checkpoint covers: start-up
    /// re-indexes the former and sets aside records no checkpoint covers.
    fn commit(&self, rows: &[AuditRecord], tree: sled::Batch) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut records = sled::Batch::default();
        let mut index = sled::Batch::default();
        for r in rows {
            let id = r
                .event
                .as_ref()
                .map(|e| e.event_id.as_bytes())
                .unwrap_or_default();
            records.insert(&r.seq.to_be_bytes(), r.encode_to_vec());
            index.insert(id, &r.seq.to_be_bytes());
        }
        self.records
            .apply_batch(records)
            .map_err(|e| self.db_err(e))?;
        self.by_event
            .apply_batch(index)
            .map_err(|e| self.db_err(e))?;
        self.nodes.apply_batch(tree).map_err(|e| self.db_err(e))
    }

    /// Re-indexes the records at the tail of the log whose event id is missing
    /// from `audit_by_event_id` (a crash between the two batches of a commit).
    fn repair_index(&self) -> Result<u64, StoreError> {
        let mut repaired = 0;
        for item in self.records.iter().rev() {
            let (key, value) = item.map_err(|e| self.db_err(e))?;
            let record = decode_record(&key, &value)?;
            let id = record.event.map(|e| e.event_id).unwrap_or_default();
            if self
                .by_event
                .contains_key(id.as_bytes())
                .map_err(|e| self.db_err(e))?
            {
                break;
            }
            self.by_event
                .insert(id.as_bytes(), &record.seq.to_be_bytes())
                .map_err(|e| self.db_err(e))?;
            repaired += 1;
        }
        if repaired > 0 {
            self.db.flush().map_err(|e| self.db_err(e))?;
            tracing::warn!(
                repaired,
                "re-indexed audit records written just before a crash"
            );
        }
        Ok(repaired)
    }

    /// The chain's head: last sequence number and its hash.
    pub fn head(&self) -> Result<(u64, Vec<u8>), StoreError> {
        let head = self.lock_head()?;
        Ok((head.seq, head.hash.clone()))
    }

    /// Records after `after_seq`, in order, at most `limit`.
    pub fn records_after(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let start = after_seq.saturating_add(1).to_be_bytes();
        let mut out = Vec::new();
        for item in self.records.range(start..).take(limit) {
            let (key, value) = item.map_err(|e| self.db_err(e))?;
            out.push(decode_record(&key, &value)?);
        }
        Ok(out)
    }

    /// Records from the newest backwards, starting before `before_seq` (`None`: at
    /// the head). Lazy: a caller that stops early reads no further, so a bounded scan
    /// of a large log costs only what it reads.
    pub fn records_back(
        &self,
        before_seq: Option<u64>,
    ) -> impl Iterator<Item = Result<AuditRecord, StoreError>> + '_ {
        let end = before_seq.unwrap_or(u64::MAX).to_be_bytes();
        self.records.range(..end).rev().map(|item| {
            let (key, value) = item.map_err(|e| self.db_err(e))?;
            decode_record(&key, &value)
        })
    }

    /// Every stored row as raw bytes, in key order (for verification, which must see
    /// what is on disk, including rows that no longer decode).
    pub fn raw_records(&self) -> impl Iterator<Item = Result<(u64, Vec<u8>), StoreError>> + '_ {
        self.records.iter().map(|item| {
            let (key, value) = item.map_err(|e| self.db_err(e))?;
            Ok((key_seq(&key), value.to_vec()))
        })
    }

    /// Stores a checkpoint durably.
    pub fn put_checkpoint(&self, checkpoint: &AuditCheckpoint) -> Result<(), StoreError> {
        self.checkpoints
            .insert(checkpoint.seq.to_be_bytes(), checkpoint.encode_to_vec())
            .map_err(|e| self.db_err(e))?;
        self.db.flush().map(drop).map_err(|e| self.db_err(e))
    }

    /// Every checkpoint, oldest first.
    pub fn checkpoints(&self) -> Result<Vec<AuditCheckpoint>, StoreError> {
        let mut out = Vec::new();
        for item in self.checkpoints.iter() {
            let (key, value) = item.map_err(|e| self.db_err(e))?;
            out.push(decode_checkpoint(&key, &value)?);
        }
        Ok(out)
    }

    /// Removes the records stored before `cutoff_ms` (from the front of the log;
    /// never the last record, which the chain continues from). First stores the
    /// checkpoint `sign` completes: `{seq: last pruned, hash: its hash,
    /// first_pruned_seq}`, so the verifier starts after it. Returns how many records
    /// were removed.
    pub fn prune_before(
        &self,
        cutoff_ms: u64,
        now_ms: u64,
        sign: impl FnOnce(&mut AuditCheckpoint),
    ) -> Result<u64, StoreError> {
        let _head = self.lock_head()?;
        let mut old = Vec::new();
        let mut last: Option<AuditRecord> = None;
        let newest = self.records.last().map_err(|e| self.db_err(e))?;
        for item in self.records.iter() {
            let (key, value) = item.map_err(|e| self.db_err(e))?;
            let record = decode_record(&key, &value)?;
            let is_newest = newest.as_ref().is_some_and(|(k, _)| *k == key);
            if record.stored_unix_ms >= cutoff_ms || is_newest {
                break;
            }
            old.push((
                record.seq,
                record.event.as_ref().map(|e| e.event_id.clone()),
            ));
            last = Some(record);
        }
        let (Some(last), Some((first, _))) = (last, old.first()) else {
            return Ok(0);
        };
        let mut cp = AuditCheckpoint {
            seq: last.seq,
            hash: last.hash,
            unix_ms: now_ms,
            first_pruned_seq: *first,
            signature: Vec::new(),
        };
        sign(&mut cp);
        self.put_checkpoint(&cp)?;
        for (seq, id) in &old {
            self.records
                .remove(seq.to_be_bytes())
                .map_err(|e| self.db_err(e))?;
            if let Some(id) = id {
                self.by_event
                    .remove(id.as_bytes())
                    .map_err(|e| self.db_err(e))?;
            }
        }
        self.db.flush().map_err(|e| self.db_err(e))?;
        Ok(old.len() as u64)
    }

    /// The last checkpoint, if any.
    pub fn last_checkpoint(&self) -> Result<Option<AuditCheckpoint>, StoreError> {
        let Some((key, value)) = self.checkpoints.last().map_err(|e| self.db_err(e))? else {
            return Ok(None);
        };
        decode_checkpoint(&key, &value).map(Some)
    }
}

/// The sequence number of a key (0 for a malformed key).
pub fn key_seq(key: &[u8]) -> u64 {
    <[u8; 8]>::try_from(key)
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

pub(super) fn decode_checkpoint(key: &[u8], value: &[u8]) -> Result<AuditCheckpoint, StoreError> {
    AuditCheckpoint::decode(value).map_err(|e| StoreError::Corrupt {
        key: format!("checkpoints/{}", key_seq(key)),
        message: e.to_string(),
    })
}

pub(super) fn decode_record(key: &[u8], value: &[u8]) -> Result<AuditRecord, StoreError> {
    AuditRecord::decode(value).map_err(|e| StoreError::Corrupt {
        key: format!("audit/{}", key_seq(key)),
        message: e.to_string(),
    })
}

#[cfg(test)]
#[path = "audit_test.rs"]
mod tests;
