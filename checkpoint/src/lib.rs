//! `airlock-checkpoint`: what the audit log's tamper evidence is made of, shared by
//! the control plane (which signs), the proxies (which hold the newest checkpoint
//! they were given and refuse a log that does not extend it) and the CLI (which
//! checks proofs offline).
//!
//! - The log is an RFC 6962 Merkle tree: a leaf is `SHA-256(0x00 || record hash)`
//!   ([`leaf_hash`]), an interior node `SHA-256(0x01 || left || right)`.
//! - A [`Checkpoint`] is a C2SP `tlog-checkpoint` (origin line, tree size, base64
//!   root hash) in a C2SP `signed-note`: `— <key name> <base64(key id || ed25519
//!   signature)>`, key id = `SHA-256(name || 0x0A || 0x01 || public key)[:4]`. The key
//!   name is the origin. [`CheckpointSigner`] signs, [`CheckpointVerifier`] checks a
//!   note against one verifier key (`<name>+<key id hex>+<base64(0x01 || public key)>`,
//!   the format of Go's `golang.org/x/mod/sumdb/note`).
//! - [`verify_consistency`] proves that a newer checkpoint extends an older one
//!   (rollback and fork detection), [`verify_inclusion`] that a record is in a tree.
//!
//! The Merkle arithmetic and the note format come from `tlog_tiles` and
//! `signed_note` (Cloudflare's ports of the Go reference implementations); this
//! crate adds the rules Airlock relies on (origin = key name, one signature that
//! must verify) and errors that say what was found.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod note;
mod proof;

pub use note::{Checkpoint, CheckpointSigner, CheckpointVerifier};
pub use proof::{leaf_hash, verify_consistency, verify_inclusion, HASH_LEN};

/// Why a checkpoint or a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The text is not a signed note holding a checkpoint.
    #[error("not a signed checkpoint ({0}); expected origin, size and root lines, a blank line and `— name signature` lines")]
    Malformed(String),
    /// A verifier key that does not parse.
    #[error("{0:?} is not an ed25519 note verifier key (`<name>+<key id>+<base64 key>`)")]
    BadKey(String),
    /// An origin that cannot be a key name.
    #[error("{0:?} cannot be a log origin: use a non-empty name without spaces or '+', e.g. \"audit.example.com/prod\"")]
    BadOrigin(String),
    /// The note carries no valid signature by the expected key.
    #[error("the checkpoint is not signed by {key}: {why}")]
    Unsigned {
        /// The verifier key that was expected.
        key: String,
        /// What the note carried instead.
        why: String,
    },
    /// The checkpoint names another log.
    #[error("the checkpoint is of log {found:?}, not {expected:?}")]
    WrongOrigin {
        /// The origin expected.
        expected: String,
        /// The origin found.
        found: String,
    },
    /// The newer tree is smaller than the held one.
    #[error("the log was rolled back: it has {offered} records, but a checkpoint of {held} records was signed before")]
    RolledBack {
        /// Size of the checkpoint held.
        held: u64,
        /// Size of the one offered.
        offered: u64,
    },
    /// The consistency proof does not hold.
    #[error("the log of {offered} records does not extend the checkpoint of {held} records (the consistency proof fails): the log was forked or rewritten")]
    Inconsistent {
        /// Size of the checkpoint held.
        held: u64,
        /// Size of the one offered.
        offered: u64,
    },
    /// The inclusion proof does not hold.
    #[error("record index {index} is not in the tree of {size} records signed by the checkpoint (the inclusion proof fails)")]
    NotIncluded {
        /// The leaf index (sequence number - 1).
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// Signing failed (the key could not sign).
    #[error("cannot sign the checkpoint: {0}")]
    Signing(String),
}
