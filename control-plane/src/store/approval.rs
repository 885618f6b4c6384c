//! The stored form of an approval request and its reviews.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    /// Waiting for reviewers.
    Pending,
    /// Approved; the grant is unused.
    Approved,
    /// A reviewer denied it.
    Denied,
    /// Nobody decided in time, or the grant was not used in time.
    Expired,
    /// The waiting client went away.
    Cancelled,
    /// Approved and used once.
    Consumed,
}

impl ApprovalState {
    /// True once nothing can change it any more.
    pub fn is_final(self) -> bool {
        !matches!(self, ApprovalState::Pending | ApprovalState::Approved)
    }
}

/// How the agent waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The call is held open.
    Sync,
    /// The agent repeats the identical call after approval.
    Async,
}

/// A reviewer's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Approve.
    Approve,
    /// Deny.
    Deny,
}

/// One review, kept forever.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    /// The reviewer's token subject.
    pub reviewer: String,
    /// Approve or deny.
    pub verdict: Verdict,
    /// Why.
    pub reason: String,
    /// When, milliseconds since the Unix epoch.
    pub decided_unix_ms: u64,
}

/// One held call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    /// The proxy-chosen id (the key).
    pub approval_id: String,
    /// Where it stands.
    pub state: ApprovalState,
    /// The agent's identity subject.
    pub subject: String,
    /// The agent's groups.
    pub subject_groups: Vec<String>,
    /// The upstream name.
    pub server: String,
    /// The node's configured id.
    pub node_id: String,
    /// The node token's subject (who may watch, consume and cancel it).
    pub requested_by: String,
    /// JSON-RPC method.
    pub method: String,
    /// Tool name, if any.
    pub tool: String,
    /// The canonical payload.
    pub payload_json: String,
    /// Its SHA-256 (hex): of the unmasked payload when `payload_masked`.
    pub payload_sha256: String,
    /// Whether `payload_json` was masked by the proxy before it left it.
    #[serde(default)]
    pub payload_masked: bool,
    /// The facts the proxy computed from the unmasked payload (JSON), shown to
    /// reviewers first; empty from proxies that predate it.
    #[serde(default)]
    pub summary_json: String,
    /// Policy reason ids.
    pub reasons: Vec<String>,
    /// Policy message.
    pub message: String,
    /// Deciding bundle revision.
    pub policy_revision: String,
    /// Groups whose members may decide; empty: any reviewer.
    pub reviewer_groups: Vec<String>,
    /// Distinct approvals needed.
    pub min_approvals: u32,
    /// Sync or async.
    pub mode: Mode,
    /// Requested at (Unix ms).
    pub created_unix_ms: u64,
    /// Expires at (Unix ms); an unused grant expires then too.
    pub expires_unix_ms: u64,
    /// Every review, in order.
    pub reviews: Vec<Review>,
}

impl ApprovalRecord {
    /// The key of the grant index: payload hash, identity and server, so a grant
    /// never lets another payload, another agent or another server through.
    pub fn grant_key(&self) -> String {
        grant_key(&self.payload_sha256, &self.subject, &self.server)
    }
}

/// The grant-index key for a payload hash, subject and server.
pub fn grant_key(payload_sha256: &str, subject: &str, server: &str) -> String {
    let mut hasher = Sha256::new();
    for part in [payload_sha256, subject, server] {
        // Length-prefixed so that ("ab","c") and ("a","bc") differ.
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}
