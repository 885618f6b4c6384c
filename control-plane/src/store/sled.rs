//! [`Store`] on sled: trees `bundles` (revision → JSON record), `archives`
//! (revision → archive bytes), `meta` (`active_revision`) and `nodes`
//! (node id → JSON record), `approvals` (approval id → JSON record) and `grants`
//! (grant key → approval id of an approved, unused approval). Every write flushes
//! before returning.

use super::{ApprovalRecord, ApprovalState, BundleRecord, Insert, NodeRecord, Store, StoreError};
use serde::de::DeserializeOwned;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional as _;
use std::path::Path;

const ACTIVE: &[u8] = b"active_revision";

/// The sled-backed store. Opening takes an exclusive lock on the directory.
#[derive(Debug, Clone)]
pub struct SledStore {
    db: sled::Db,
    bundles: sled::Tree,
    archives: sled::Tree,
    meta: sled::Tree,
    nodes: sled::Tree,
    approvals: sled::Tree,
    grants: sled::Tree,
    path: String,
}

impl SledStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        let path = dir.display().to_string();
        let err = |e: sled::Error| StoreError::Database {
            path: path.clone(),
            message: open_hint(&e),
        };
        let db = sled::open(dir).map_err(err)?;
        Ok(SledStore {
            bundles: db.open_tree("bundles").map_err(err)?,
            archives: db.open_tree("archives").map_err(err)?,
            meta: db.open_tree("meta").map_err(err)?,
            nodes: db.open_tree("nodes").map_err(err)?,
            approvals: db.open_tree("approvals").map_err(err)?,
            grants: db.open_tree("grants").map_err(err)?,
            db,
            path,
        })
    }

    /// The audit log, in the same database (trees `audit`, `audit_by_event_id`,
    /// `checkpoints`).
    pub fn audit_log(&self) -> Result<super::AuditLog, StoreError> {
        super::AuditLog::open(&self.db, &self.path)
    }

    /// The tool pins, in the same database (trees `tool_pins`, `tool_observed`).
    pub fn pin_store(&self) -> Result<super::PinStore, StoreError> {
        super::PinStore::open(&self.db, &self.path)
    }

    fn db_err(&self, e: sled::Error) -> StoreError {
        StoreError::Database {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(drop).map_err(|e| self.db_err(e))
    }
}

fn open_hint(e: &sled::Error) -> String {
    let text = e.to_string();
    if text.contains("WouldBlock") || text.contains("lock") {
        format!("{text}; is another control plane using this data directory?")
    } else {
        text
    }
}

fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        message: e.to_string(),
    })
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

impl Store for SledStore {
    fn insert_bundle(&self, record: &BundleRecord, archive: &[u8]) -> Result<Insert, StoreError> {
        let key = record.revision.as_bytes();
        let value = encode(record);
        let outcome = (&self.bundles, &self.archives).transaction(|(bundles, archives)| {
            if let Some(existing) = bundles.get(key)? {
                return Ok(Some(existing));
            }
            bundles.insert(key, value.as_slice())?;
            archives.insert(key, archive)?;
            Ok::<_, ConflictableTransactionError<()>>(None)
        });
        let existing = match outcome {
            Ok(existing) => existing,
            Err(TransactionError::Storage(e)) => return Err(self.db_err(e)),
            Err(TransactionError::Abort(())) => None,
        };
        match existing {
            Some(bytes) => Ok(Insert::Exists(decode(key, &bytes)?)),
            None => {
                self.flush()?;
                Ok(Insert::Stored)
            }
        }
    }

    fn bundle(&self, revision: &str) -> Result<Option<BundleRecord>, StoreError> {
        let key = revision.as_bytes();
        match self.bundles.get(key).map_err(|e| self.db_err(e))? {
            Some(bytes) => Ok(Some(decode(key, &bytes)?)),
            None => Ok(None),
        }
    }

    fn archive(&self, revision: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let bytes = self
            .archives
            .get(revision.as_bytes())
            .map_err(|e| self.db_err(e))?;
        Ok(bytes.map(|b| b.to_vec()))
    }

    fn bundles(&self) -> Result<Vec<BundleRecord>, StoreError> {
        let mut records = Vec::new();
        for item in self.bundles.iter() {
            let (key, bytes) = item.map_err(|e| self.db_err(e))?;
            records.push(decode::<BundleRecord>(&key, &bytes)?);
        }
        records.sort_by(|a, b| {
            (a.published_unix_ms, &a.revision).cmp(&(b.published_unix_ms, &b.revision))
        });
        Ok(records)
    }

    fn active_revision(&self) -> Result<Option<String>, StoreError> {
        let value = self.meta.get(ACTIVE).map_err(|e| self.db_err(e))?;
        Ok(value.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    fn set_active_revision(&self, revision: &str) -> Result<(), StoreError> {
        self.meta
            .insert(ACTIVE, revision.as_bytes())
            .map_err(|e| self.db_err(e))?;
        self.flush()
    }

    fn put_node(&self, node: &NodeRecord) -> Result<(), StoreError> {
        self.nodes
            .insert(node.node_id.as_bytes(), encode(node))
            .map_err(|e| self.db_err(e))?;
        self.flush()
    }

    fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        let mut nodes = Vec::new();
        for item in self.nodes.iter() {
            let (key, bytes) = item.map_err(|e| self.db_err(e))?;
            nodes.push(decode::<NodeRecord>(&key, &bytes)?);
        }
        Ok(nodes)
    }

    fn put_approval(&self, approval: &ApprovalRecord) -> Result<(), StoreError> {
        let key = approval.approval_id.as_bytes();
        let value = encode(approval);
        let grant = approval.grant_key();
        let approved = approval.state == ApprovalState::Approved;
        let outcome = (&self.approvals, &self.grants).transaction(|(approvals, grants)| {
            approvals.insert(key, value.as_slice())?;
            if approved {
                grants.insert(grant.as_bytes(), key)?;
            } else if grants.get(grant.as_bytes())?.as_deref() == Some(key) {
                grants.remove(grant.as_bytes())?;
            }
            Ok::<_, ConflictableTransactionError<()>>(())
        });
        match outcome {
            Ok(()) | Err(TransactionError::Abort(())) => self.flush(),
            Err(TransactionError::Storage(e)) => Err(self.db_err(e)),
        }
    }

    fn approval(&self, approval_id: &str) -> Result<Option<ApprovalRecord>, StoreError> {
        let key = approval_id.as_bytes();
        match self.approvals.get(key).map_err(|e| self.db_err(e))? {
            Some(bytes) => Ok(Some(decode(key, &bytes)?)),
            None => Ok(None),
        }
    }

    fn approvals(&self) -> Result<Vec<ApprovalRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self.approvals.iter() {
            let (key, bytes) = item.map_err(|e| self.db_err(e))?;
            out.push(decode::<ApprovalRecord>(&key, &bytes)?);
        }
        Ok(out)
    }

    fn grant(&self, grant_key: &str) -> Result<Option<String>, StoreError> {
        let value = self
            .grants
            .get(grant_key.as_bytes())
            .map_err(|e| self.db_err(e))?;
        Ok(value.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(revision: &str, published: u64) -> BundleRecord {
        BundleRecord {
            revision: revision.into(),
            digest: format!("digest-{revision}"),
            roots: vec![String::new()],
            key_id: "k".into(),
            tests_passed: 3,
            size_bytes: 5,
            published_unix_ms: published,
            published_by: "ada".into(),
            engine: "rvm".into(),
            engine_reason: "proved".into(),
        }
    }

    fn node(id: &str) -> NodeRecord {
        NodeRecord {
            node_id: id.into(),
            version: "0.1.0".into(),
            active_revision: "r1".into(),
            last_error: String::new(),
            last_seen_unix_ms: 42,
            heartbeat_interval_ms: 10_000,
            reported_by: "proxy".into(),
            engine: "interpreter".into(),
            engine_reason: "no proof".into(),
            audit_trust: 1,
            audit_checkpoint_size: 7,
            audit_problem: String::new(),
        }
    }

    #[test]
    fn bundles_active_revision_and_nodes_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path()).unwrap();
            assert_eq!(store.active_revision().unwrap(), None);
            assert_eq!(
                store.insert_bundle(&record("r2", 20), b"two").unwrap(),
                Insert::Stored
            );
            assert_eq!(
                store.insert_bundle(&record("r1", 10), b"one").unwrap(),
                Insert::Stored
            );
            let again = store.insert_bundle(&record("r1", 99), b"other").unwrap();
            assert_eq!(again, Insert::Exists(record("r1", 10)), "first write wins");
            store.set_active_revision("r2").unwrap();
            store.put_node(&node("b")).unwrap();
            store.put_node(&node("a")).unwrap();
        }
        let store = SledStore::open(dir.path()).unwrap();
        let revisions: Vec<_> = store
            .bundles()
            .unwrap()
            .into_iter()
            .map(|r| r.revision)
            .collect();
        assert_eq!(revisions, ["r1", "r2"], "oldest first");
        assert_eq!(store.archive("r1").unwrap().as_deref(), Some(&b"one"[..]));
        assert_eq!(store.bundle("r2").unwrap(), Some(record("r2", 20)));
        assert_eq!(store.bundle("r3").unwrap(), None);
        assert_eq!(store.active_revision().unwrap().as_deref(), Some("r2"));
        let ids: Vec<_> = store
            .nodes()
            .unwrap()
            .into_iter()
            .map(|n| n.node_id)
            .collect();
        assert_eq!(ids, ["a", "b"]);
    }

    #[test]
    fn a_second_open_of_the_same_directory_says_why_it_fails() {
        let dir = tempfile::tempdir().unwrap();
        let _first = SledStore::open(dir.path()).unwrap();
        match SledStore::open(dir.path()) {
            Err(err) => assert!(
                err.to_string().contains(&dir.path().display().to_string()),
                "{err}"
            ),
            // Some platforms let one process open twice; then both must work.
            Ok(second) => assert!(second.bundles().is_ok()),
        }
    }
}
