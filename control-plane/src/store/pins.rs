//! Tool pins on sled: tree `tool_pins` ((server, tool) → the reviewed definition)
//! and tree `tool_observed` ((server, tool) → the definition a proxy last reported
//! with a new digest). Keys are `server NUL tool`. Every write flushes before it
//! returns.

use super::StoreError;
use serde::{Deserialize, Serialize};

/// A reviewed tool definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinRecord {
    /// The upstream.
    pub server: String,
    /// The tool.
    pub tool: String,
    /// `sha256:...` of the canonical definition.
    pub digest: String,
    /// The canonical definition.
    pub definition_json: String,
    /// Who pinned or accepted it.
    pub pinned_by: String,
    /// When, ms since the Unix epoch.
    pub pinned_unix_ms: u64,
}

/// The definition a proxy last reported for a tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedRecord {
    /// The upstream.
    pub server: String,
    /// The tool.
    pub tool: String,
    /// `sha256:...` of the canonical definition.
    pub digest: String,
    /// The canonical definition.
    pub definition_json: String,
    /// The reporting node.
    pub node_id: String,
    /// When it was reported, ms since the Unix epoch.
    pub seen_unix_ms: u64,
}

/// The pins and sightings, in the control plane's sled database.
#[derive(Debug, Clone)]
pub struct PinStore {
    db: sled::Db,
    pins: sled::Tree,
    observed: sled::Tree,
    path: String,
}

fn key(server: &str, tool: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(server.len() + tool.len() + 1);
    key.extend_from_slice(server.as_bytes());
    key.push(0);
    key.extend_from_slice(tool.as_bytes());
    key
}

impl PinStore {
    /// Opens the trees in `db`.
    pub fn open(db: &sled::Db, path: &str) -> Result<PinStore, StoreError> {
        let err = |e: sled::Error| StoreError::Database {
            path: path.to_owned(),
            message: e.to_string(),
        };
        Ok(PinStore {
            pins: db.open_tree("tool_pins").map_err(err)?,
            observed: db.open_tree("tool_observed").map_err(err)?,
            db: db.clone(),
            path: path.to_owned(),
        })
    }

    fn db_err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Database {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    fn put<T: Serialize>(
        &self,
        tree: &sled::Tree,
        key: Vec<u8>,
        value: &T,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value).map_err(|e| self.db_err(e))?;
        tree.insert(key, bytes).map_err(|e| self.db_err(e))?;
        self.db.flush().map(drop).map_err(|e| self.db_err(e))
    }

    fn all<T: for<'de> Deserialize<'de>>(
        &self,
        tree: &sled::Tree,
        server: Option<&str>,
    ) -> Result<Vec<T>, StoreError> {
        let prefix = server.map(|s| key(s, "")).unwrap_or_default();
        tree.scan_prefix(prefix)
            .map(|entry| {
                let (k, v) = entry.map_err(|e| self.db_err(e))?;
                serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                    key: String::from_utf8_lossy(&k).into_owned(),
                    message: e.to_string(),
                })
            })
            .collect()
    }

    /// Stores (replaces) a pin.
    pub fn put_pin(&self, pin: &PinRecord) -> Result<(), StoreError> {
        self.put(&self.pins, key(&pin.server, &pin.tool), pin)
    }

    /// Stores (replaces) a sighting; returns false when it had that digest already.
    pub fn put_observed(&self, seen: &ObservedRecord) -> Result<bool, StoreError> {
        let k = key(&seen.server, &seen.tool);
        if let Some(old) = self.observed.get(&k).map_err(|e| self.db_err(e))? {
            let old: ObservedRecord = serde_json::from_slice(&old).map_err(|e| self.db_err(e))?;
            if old.digest == seen.digest {
                return Ok(false);
            }
        }
        self.put(&self.observed, k, seen)?;
        Ok(true)
    }

    /// Every pin (of one server), sorted by server and tool.
    pub fn pins(&self, server: Option<&str>) -> Result<Vec<PinRecord>, StoreError> {
        self.all(&self.pins, server)
    }

    /// Every sighting (of one server), sorted by server and tool.
    pub fn observed(&self, server: Option<&str>) -> Result<Vec<ObservedRecord>, StoreError> {
        self.all(&self.observed, server)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_and_sightings_are_kept_per_server_and_tool() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let store = PinStore::open(&db, "test").unwrap();
        let seen = |server: &str, tool: &str, digest: &str| ObservedRecord {
            server: server.into(),
            tool: tool.into(),
            digest: digest.into(),
            definition_json: "{}".into(),
            node_id: "n".into(),
            seen_unix_ms: 1,
        };
        assert!(store.put_observed(&seen("a", "t", "d1")).unwrap());
        assert!(
            !store.put_observed(&seen("a", "t", "d1")).unwrap(),
            "same digest"
        );
        assert!(store.put_observed(&seen("a", "t", "d2")).unwrap());
        assert!(store.put_observed(&seen("ab", "t", "d1")).unwrap());
        assert_eq!(
            store.observed(Some("a")).unwrap().len(),
            1,
            "`a` is not a prefix of `ab`"
        );
        assert_eq!(store.observed(None).unwrap().len(), 2);
        store
            .put_pin(&PinRecord {
                server: "a".into(),
                tool: "t".into(),
                digest: "d2".into(),
                definition_json: "{}".into(),
                pinned_by: "alice".into(),
                pinned_unix_ms: 2,
            })
            .unwrap();
        assert_eq!(store.pins(Some("a")).unwrap()[0].digest, "d2");
    }
}
