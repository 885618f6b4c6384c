//! The audit log's Merkle tree and signed checkpoints as the services use them:
//! the newest checkpoint, proofs, and the start-up repairs (records that no
//! checkpoint covers are set aside; a log written before the tree gets one).

use super::audit::{decode_record, AuditLog, GENESIS_HASH};
use super::merkle::{self, Frontier, Tail};
use super::{key_seq, StoreError};
use crate::api::AuditRecord;
use airlock_checkpoint::Checkpoint;
use std::sync::Arc;

/// Tree hashes written per sled batch while building the tree of an older log.
const BUILD_BATCH: u64 = 10_000;

impl AuditLog {
    /// The newest signed checkpoint, once start-up verified it (then kept by every
    /// commit).
    pub fn newest_checkpoint(&self) -> Option<Arc<Checkpoint>> {
        self.newest.lock().ok().and_then(|n| n.clone())
    }

    /// Makes `checkpoint` the newest one (start-up, once it is verified; then every
    /// commit).
    pub fn set_newest(&self, checkpoint: Arc<Checkpoint>) {
        if let Ok(mut newest) = self.newest.lock() {
            *newest = Some(checkpoint);
        }
    }

    /// The newest stored checkpoint note, as stored (not verified).
    pub fn newest_stored_checkpoint(&self) -> Result<Option<String>, StoreError> {
        let last = self.notes.last().map_err(|e| self.db_err(e))?;
        Ok(last.map(|(_, note)| String::from_utf8_lossy(&note).into_owned()))
    }

    /// Every stored checkpoint note with the tree size it is stored under,
    /// smallest first.
    pub fn stored_checkpoints(
        &self,
    ) -> impl Iterator<Item = Result<(u64, String), StoreError>> + '_ {
        self.notes.iter().map(|item| {
            let (key, note) = item.map_err(|e| self.db_err(e))?;
            Ok((key_seq(&key), String::from_utf8_lossy(&note).into_owned()))
        })
    }

    /// Stores a checkpoint signed outside a commit (the first one of a new or
    /// upgraded log), durably, and makes it the newest.
    pub fn put_signed(&self, checkpoint: Checkpoint) -> Result<Arc<Checkpoint>, StoreError> {
        self.notes
            .insert(
                checkpoint.size().to_be_bytes(),
                checkpoint.note().as_bytes(),
            )
            .map_err(|e| self.db_err(e))?;
        self.db.flush().map_err(|e| self.db_err(e))?;
        let checkpoint = Arc::new(checkpoint);
        self.set_newest(checkpoint.clone());
        Ok(checkpoint)
    }

    /// How many records the stored tree holds.
    pub fn tree_size(&self) -> Result<u64, StoreError> {
        merkle::stored_size(&self.nodes)
    }

    /// The tree hash of the first `size` records, from the stored tree.
    pub fn tree_root(&self, size: u64) -> Result<[u8; 32], StoreError> {
        merkle::root(&self.nodes, size)
    }

    /// The right edge of the stored tree of `size` records.
    pub fn frontier(&self, size: u64) -> Result<Frontier, StoreError> {
        Frontier::load(size, &self.nodes)
    }

    /// RFC 6962 consistency proof from `from` to `to` records (empty when `from`
    /// is 0 or not smaller than `to`).
    pub fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<[u8; 32]>, StoreError> {
        merkle::consistency(&self.nodes, from, to)
    }

    /// RFC 6962 audit path of record `seq` in the tree of `size` records.
    pub fn inclusion_proof(&self, seq: u64, size: u64) -> Result<Vec<[u8; 32]>, StoreError> {
        merkle::inclusion(&self.nodes, seq.saturating_sub(1), size)
    }

    /// Stored tree hashes from `index` on, in stored order (for verification).
    pub fn stored_hashes(
        &self,
        index: u64,
    ) -> impl Iterator<Item = Result<(u64, Vec<u8>), StoreError>> + '_ {
        merkle::hashes_from(&self.nodes, index)
    }

    /// The record of an event, by its id.
    pub fn record_by_event(&self, event_id: &str) -> Result<Option<AuditRecord>, StoreError> {
        let Some(seq) = self
            .by_event
            .get(event_id.as_bytes())
            .map_err(|e| self.db_err(e))?
        else {
            return Ok(None);
        };
        let Some(value) = self.records.get(&seq).map_err(|e| self.db_err(e))? else {
            return Ok(None);
        };
        decode_record(&seq, &value).map(Some)
    }

    /// Records set aside so far (never part of the log).
    pub fn set_aside_count(&self) -> u64 {
        self.aside.len() as u64
    }

    /// Brings the log back to its first `size` records: the records after it
    /// move to `audit_set_aside` (kept for investigation, never signed), their
    /// event ids are forgotten (so a proxy's resend stores them again) and their
    /// tree hashes dropped. Returns how many records were set aside.
    pub fn set_aside_after(&self, size: u64) -> Result<u64, StoreError> {
        let mut head = self.lock_head()?;
        let mut moved = 0;
        for item in self.records.range((size + 1).to_be_bytes()..) {
            let (key, value) = item.map_err(|e| self.db_err(e))?;
            self.aside
                .insert(&key, value.clone())
                .map_err(|e| self.db_err(e))?;
            if let Ok(record) = decode_record(&key, &value) {
                let id = record.event.map(|e| e.event_id).unwrap_or_default();
                let indexed = self
                    .by_event
                    .get(id.as_bytes())
                    .map_err(|e| self.db_err(e))?;
                if indexed.as_deref() == Some(&key[..]) {
                    self.by_event
                        .remove(id.as_bytes())
                        .map_err(|e| self.db_err(e))?;
                }
            }
            self.records.remove(&key).map_err(|e| self.db_err(e))?;
            moved += 1;
        }
        merkle::truncate(&self.nodes, tlog_tiles::stored_hash_count(size))?;
        head.hash = self.hash_of(size)?;
        head.seq = size;
        head.frontier = Frontier::load(size, &self.nodes)?;
        head.tail = Tail::load(&self.nodes)?;
        self.db.flush().map_err(|e| self.db_err(e))?;
        Ok(moved)
    }

    /// The chain hash of record `seq` (the genesis hash for 0).
    fn hash_of(&self, seq: u64) -> Result<Vec<u8>, StoreError> {
        if seq == 0 {
            return Ok(GENESIS_HASH.to_vec());
        }
        let key = seq.to_be_bytes();
        match self.records.get(key).map_err(|e| self.db_err(e))? {
            Some(value) => Ok(decode_record(&key, &value)?.hash),
            None => Err(StoreError::Corrupt {
                key: format!("audit/{seq}"),
                message: "the record a checkpoint ends at is missing".to_owned(),
            }),
        }
    }

    /// Builds the tree hashes of the records the stored tree lacks (a log written
    /// before the tree existed), in one pass; returns the tree's size. Needs every
    /// record from the tree's end on (a log pruned before it had a tree has none
    /// for what was pruned).
    pub fn extend_tree(&self) -> Result<u64, StoreError> {
        let mut head = self.lock_head()?;
        let mut frontier = Frontier::load(merkle::stored_size(&self.nodes)?, &self.nodes)?;
        let mut tail = Tail::load(&self.nodes)?;
        let mut batch = sled::Batch::default();
        for item in self.records.range((frontier.size() + 1).to_be_bytes()..) {
            let (key, value) = item.map_err(|e| self.db_err(e))?;
            let record = decode_record(&key, &value)?;
            if record.seq != frontier.size() + 1 {
                return Err(StoreError::Corrupt {
                    key: format!("audit/{}", frontier.size() + 1),
                    message: "missing (pruned before the log had a Merkle tree): this log cannot get one; export it (`airlock audit export`) and start a new data directory".to_owned(),
                });
            }
            let leaf = frontier.size();
            let stored = frontier.push(airlock_checkpoint::leaf_hash(&record.hash));
            tail.stage(&mut batch, leaf, &stored)?;
            if frontier.size().is_multiple_of(BUILD_BATCH) {
                tail.stage_partial(&mut batch);
                self.nodes
                    .apply_batch(std::mem::take(&mut batch))
                    .map_err(|e| self.db_err(e))?;
            }
        }
        tail.stage_partial(&mut batch);
        self.nodes.apply_batch(batch).map_err(|e| self.db_err(e))?;
        self.db.flush().map_err(|e| self.db_err(e))?;
        let size = frontier.size();
        head.frontier = frontier;
        head.tail = tail;
        Ok(size)
    }
}
