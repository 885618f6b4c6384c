//! The audit log on sled: tree `audit` (big-endian u64 sequence number → protobuf
//! `AuditRecord`), `audit_by_event_id` (event id → sequence number, for
//! deduplication) and `checkpoints` (big-endian sequence number → protobuf
//! `AuditCheckpoint`). Shares the control plane's sled database.
//!
//! Appends are serialized by one lock (the chain has one head); the audit writer
//! commits the batches of concurrent streams under one flush (group commit); a
//! batch is acknowledged only after that flush returned.

use super::StoreError;
use crate::api::{AuditCheckpoint, AuditEvent, AuditRecord};
use prost::Message;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::sync::Mutex;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Appended {
    /// Events newly stored.
    pub stored: u32,
    /// Events already stored (or repeated within the batch).
    pub duplicates: u32,
    /// The log's last sequence number afterwards.
    pub last_seq: u64,
}

struct Head {
    seq: u64,
    hash: Vec<u8>,
}

/// The append-only audit log.
pub struct AuditLog {
    db: sled::Db,
    records: sled::Tree,
    by_event: sled::Tree,
    checkpoints: sled::Tree,
    head: Mutex<Head>,
    path: String,
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
                None => Head {
                    seq: 0,
                    hash: GENESIS_HASH.to_vec(),
                },
                Some((key, value)) => {
                    let cp = decode_checkpoint(&key, &value)?;
                    Head {
                        seq: cp.seq,
                        hash: cp.hash,
                    }
                }
            },
            Some((key, value)) => {
                let record = decode_record(&key, &value)?;
                Head {
                    seq: record.seq,
                    hash: record.hash,
                }
            }
        };
        let log = AuditLog {
            by_event: db.open_tree("audit_by_event_id").map_err(err)?,
            checkpoints,
            records,
            db: db.clone(),
            head: Mutex::new(head),
            path: path.to_owned(),
        };
        log.repair_index()?;
        Ok(log)
    }

    fn db_err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Database {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// Appends the events not stored yet, chains them, and returns once durable.
    pub fn append(&self, events: Vec<AuditEvent>, now_ms: u64) -> Result<Appended, StoreError> {
        let outcome = self.append_unflushed(events, now_ms)?;
        self.db.flush().map_err(|e| self.db_err(e))?;
        Ok(outcome)
    }

    /// Appends several batches (from concurrent streams) with one flush for all:
    /// group commit. Each batch gets its own outcome; all are durable on return.
    /// `checkpoint` is offered the new head (sequence number, hash) and may return
    /// a signed checkpoint to store under the same flush.
    pub fn append_many(
        &self,
        batches: Vec<Vec<AuditEvent>>,
        now_ms: u64,
        checkpoint: impl FnOnce(u64, &[u8]) -> Option<AuditCheckpoint>,
    ) -> Vec<Result<Appended, StoreError>> {
        let mut outcomes: Vec<Result<Appended, StoreError>> = batches
            .into_iter()
            .map(|events| self.append_unflushed(events, now_ms))
            .collect();
        let stored = match self.head() {
            Ok((seq, hash)) => match checkpoint(seq, &hash) {
                Some(cp) => self
                    .checkpoints
                    .insert(cp.seq.to_be_bytes(), cp.encode_to_vec())
                    .map(drop)
                    .map_err(|e| self.db_err(e)),
                None => Ok(()),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = stored.and_then(|()| self.db.flush().map(drop).map_err(|e| self.db_err(e)))
        {
            let message = e.to_string();
            for outcome in &mut outcomes {
                if outcome.is_ok() {
                    *outcome = Err(self.db_err(&message));
                }
            }
        }
        outcomes
    }

    fn append_unflushed(
        &self,
        events: Vec<AuditEvent>,
        now_ms: u64,
    ) -> Result<Appended, StoreError> {
        let mut head = self
            .head
            .lock()
            .map_err(|_| self.db_err("the audit log lock is poisoned; restart"))?;
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
        let mut seq = head.seq;
        let mut prev = head.hash.clone();
        let mut rows = Vec::with_capacity(fresh.len());
        for event in fresh {
            seq += 1;
            let mut record = AuditRecord {
                seq,
                stored_unix_ms: now_ms,
                event: Some(event),
                prev_hash: prev,
                hash: Vec::new(),
            };
            record.hash = record_hash(&record);
            prev = record.hash.clone();
            rows.push(record);
        }
        self.commit(&rows)?;
        let stored = rows.len() as u32;
        head.seq = seq;
        head.hash = prev;
        Ok(Appended {
            stored,
            duplicates,
            last_seq: seq,
        })
    }

    /// Writes the records, then their event-id index, each as one atomic batch
    /// (a multi-tree transaction costs more than the whole append). A crash
    /// between the two leaves records without index entries at the tail of the log;
    /// [`AuditLog::open`] repairs exactly that before the first append, so a resend
    /// can never store an event twice.
    fn commit(&self, rows: &[AuditRecord]) -> Result<(), StoreError> {
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
        self.by_event.apply_batch(index).map_err(|e| self.db_err(e))
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
        let head = self
            .head
            .lock()
            .map_err(|_| self.db_err("the audit log lock is poisoned; restart"))?;
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
        let _head = self
            .head
            .lock()
            .map_err(|_| self.db_err("the audit log lock is poisoned; restart"))?;
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

fn decode_checkpoint(key: &[u8], value: &[u8]) -> Result<AuditCheckpoint, StoreError> {
    AuditCheckpoint::decode(value).map_err(|e| StoreError::Corrupt {
        key: format!("checkpoints/{}", key_seq(key)),
        message: e.to_string(),
    })
}

fn decode_record(key: &[u8], value: &[u8]) -> Result<AuditRecord, StoreError> {
    AuditRecord::decode(value).map_err(|e| StoreError::Corrupt {
        key: format!("audit/{}", key_seq(key)),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str) -> AuditEvent {
        AuditEvent {
            event_id: id.to_owned(),
            payload_json: format!("{{\"id\":\"{id}\"}}"),
            ..AuditEvent::default()
        }
    }

    #[test]
    fn resent_events_are_stored_once_and_the_chain_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().display().to_string();
        {
            let db = sled::open(dir.path()).unwrap();
            let log = AuditLog::open(&db, &path).unwrap();
            let first = log
                .append(vec![event("a"), event("b"), event("a")], 1)
                .unwrap();
            assert_eq!((first.stored, first.duplicates, first.last_seq), (2, 1, 2));
            let again = log.append(vec![event("b"), event("c")], 2).unwrap();
            assert_eq!((again.stored, again.duplicates, again.last_seq), (1, 1, 3));
        }
        let db = sled::open(dir.path()).unwrap();
        let log = AuditLog::open(&db, &path).unwrap();
        assert_eq!(log.head().unwrap().0, 3);
        let records = log.records_after(0, 10).unwrap();
        assert_eq!(records[0].prev_hash, GENESIS_HASH.to_vec());
        for pair in records.windows(2) {
            assert_eq!(pair[1].prev_hash, pair[0].hash);
            assert_eq!(record_hash(&pair[1]), pair[1].hash);
        }
        let next = log.append(vec![event("d")], 3).unwrap();
        assert_eq!(next.last_seq, 4);
        assert_eq!(
            log.records_after(3, 10).unwrap()[0].prev_hash,
            records[2].hash
        );
    }

    #[test]
    fn pruning_keeps_the_newest_record_and_a_checkpoint_of_the_range() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let log = AuditLog::open(&db, "test").unwrap();
        for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
            log.append(vec![event(id)], 10 + i as u64).unwrap();
        }
        // Everything is old: all but the newest go.
        let pruned = log
            .prune_before(1_000, 1_000, |cp| cp.signature = vec![1])
            .unwrap();
        assert_eq!(pruned, 3);
        let cp = log.last_checkpoint().unwrap().unwrap();
        assert_eq!((cp.first_pruned_seq, cp.seq), (1, 3));
        let left = log.records_after(0, 10).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].prev_hash, cp.hash);
        assert_eq!(log.prune_before(1_000, 1_000, |_| {}).unwrap(), 0);
        drop(log);
        // The head survives a reopen even when only the checkpoint remembers it.
        let log = AuditLog::open(&db, "test").unwrap();
        assert_eq!(log.head().unwrap().0, 4);
    }

    #[test]
    fn records_left_unindexed_by_a_crash_are_reindexed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        {
            let log = AuditLog::open(&db, "test").unwrap();
            log.append(vec![event("a"), event("b")], 1).unwrap();
        }
        // As if the process died between the records batch and the index batch.
        db.open_tree("audit_by_event_id")
            .unwrap()
            .remove("b")
            .unwrap();
        let log = AuditLog::open(&db, "test").unwrap();
        let again = log.append(vec![event("b")], 2).unwrap();
        assert_eq!((again.stored, again.duplicates), (0, 1));
    }
}
