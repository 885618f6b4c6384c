//! The control plane's state behind one narrow trait, so a deployment that outgrows
//! one machine can put the same records on a distributed database.
//!
//! Every write is durable (flushed) when the method returns: an RPC acknowledges
//! only what survives a crash.

mod approval;
mod audit;
mod audit_checkpoints;
mod merkle;
mod pins;
mod sled;

pub use self::approval::{grant_key, ApprovalRecord, ApprovalState, Mode, Review, Verdict};
pub use self::audit::{key_seq, record_hash, Appended, AuditLog, GENESIS_HASH};
pub use self::merkle::Frontier;
pub use self::pins::{ObservedRecord, PinRecord, PinStore};
pub use self::sled::SledStore;
use serde::{Deserialize, Serialize};

/// A stored bundle's metadata (its archive is stored beside it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleRecord {
    /// The manifest's revision (the key).
    pub revision: String,
    /// Lower-case hex SHA-256 of the archive.
    pub digest: String,
    /// The manifest's roots.
    pub roots: Vec<String>,
    /// Id of the signing key.
    pub key_id: String,
    /// Rego tests that passed at publication.
    pub tests_passed: u32,
    /// Size of the archive in bytes.
    pub size_bytes: u64,
    /// When it was published, milliseconds since the Unix epoch.
    pub published_unix_ms: u64,
    /// The publisher's token subject.
    pub published_by: String,
    /// The Rego engine proxies run it on (`rvm` or `interpreter`); empty for
    /// records stored before engines were chosen.
    #[serde(default)]
    pub engine: String,
    /// Why that engine.
    #[serde(default)]
    pub engine_reason: String,
}

/// The last report of a data-plane node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The node's id (the key).
    pub node_id: String,
    /// Its `airlock` version.
    pub version: String,
    /// The revision it serves.
    pub active_revision: String,
    /// Its last error, empty when none.
    pub last_error: String,
    /// When it last reported, milliseconds since the Unix epoch.
    pub last_seen_unix_ms: u64,
    /// Its heartbeat interval in milliseconds.
    pub heartbeat_interval_ms: u64,
    /// The token subject it reported with.
    pub reported_by: String,
    /// The Rego engine of its active bundle (`rvm` or `interpreter`).
    #[serde(default)]
    pub engine: String,
    /// Why that engine.
    #[serde(default)]
    pub engine_reason: String,
    /// Whether it trusts the audit log: `airlock.v1.AuditTrust` as a number
    /// (0: not reported).
    #[serde(default)]
    pub audit_trust: i32,
    /// The tree size of the newest checkpoint it holds.
    #[serde(default)]
    pub audit_checkpoint_size: u64,
    /// Why it refused the audit log, empty otherwise.
    #[serde(default)]
    pub audit_problem: String,
}

/// What [`Store::insert_bundle`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Insert {
    /// The bundle was stored.
    Stored,
    /// A bundle of that revision was already stored; here is its record.
    Exists(BundleRecord),
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed (disk full, permissions, corruption).
    #[error(
        "storage error in {path}: {message}; check the data directory's disk space and permissions"
    )]
    Database {
        /// The data directory.
        path: String,
        /// The database's message.
        message: String,
    },
    /// A stored record does not decode (written by an incompatible version?).
    #[error("stored record {key} is corrupt: {message}")]
    Corrupt {
        /// The record's key.
        key: String,
        /// The decoder's message.
        message: String,
    },
}

/// The control plane's state: bundles, the active revision, nodes.
pub trait Store: Send + Sync + 'static {
    /// Stores a bundle and its archive, unless its revision already exists.
    fn insert_bundle(&self, record: &BundleRecord, archive: &[u8]) -> Result<Insert, StoreError>;
    /// One bundle's record.
    fn bundle(&self, revision: &str) -> Result<Option<BundleRecord>, StoreError>;
    /// One bundle's archive bytes.
    fn archive(&self, revision: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every bundle record, oldest publication first.
    fn bundles(&self) -> Result<Vec<BundleRecord>, StoreError>;
    /// The active revision, if any.
    fn active_revision(&self) -> Result<Option<String>, StoreError>;
    /// Makes `revision` active; the caller checked that it is stored.
    fn set_active_revision(&self, revision: &str) -> Result<(), StoreError>;
    /// Stores (replaces) a node's last report.
    fn put_node(&self, node: &NodeRecord) -> Result<(), StoreError>;
    /// Every node's last report, sorted by node id.
    fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError>;
    /// Stores (replaces) an approval and keeps the grant index in step: an approved
    /// record is findable by [`ApprovalRecord::grant_key`], any other state is not.
    fn put_approval(&self, approval: &ApprovalRecord) -> Result<(), StoreError>;
    /// One approval by id.
    fn approval(&self, approval_id: &str) -> Result<Option<ApprovalRecord>, StoreError>;
    /// Every approval, in no particular order.
    fn approvals(&self) -> Result<Vec<ApprovalRecord>, StoreError>;
    /// The id of the approved, unused approval for a grant key, if any.
    fn grant(&self, grant_key: &str) -> Result<Option<String>, StoreError>;
}
