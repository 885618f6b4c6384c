//! The audit signing key and what it signs.
//!
//! The log's checkpoints are C2SP signed notes over its Merkle tree
//! ([`airlock_checkpoint`]): [`signer`] makes the [`CheckpointSigner`] of this
//! control plane, named by its origin. The key is an ed25519 seed (64 hex digits)
//! in its own file, outside the data directory: whoever restores or copies the data
//! directory does not get the key with it.
//!
//! The chain's own checkpoints (`AuditCheckpoint`, ed25519 over their protobuf
//! encoding) remain for the logs of older versions and for the signed record of
//! what retention pruned ([`sign`], [`verify`]).

use crate::api::AuditCheckpoint;
use crate::ControlPlaneError;
use airlock_checkpoint::CheckpointSigner;
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use prost::Message;
use sha2::Digest as _;
use std::path::Path;

/// The origin (log name) of a key when `[audit] origin` is not set:
/// `airlock-audit/` and 16 hex digits of the public key's SHA-256, so two control
/// planes with different keys never share a name.
pub fn default_origin(key: &VerifyingKey) -> String {
    let digest = sha2::Sha256::digest(key.as_bytes());
    format!("airlock-audit/{}", hex::encode(&digest[..8]))
}

/// The checkpoint signer of `key` for the log `origin` (default: [`default_origin`]).
pub fn signer(
    key: &SigningKey,
    origin: Option<&str>,
) -> Result<CheckpointSigner, ControlPlaneError> {
    let origin = origin.map_or_else(|| default_origin(&key.verifying_key()), str::to_owned);
    Ok(CheckpointSigner::new(key.clone(), &origin)?)
}

/// The bytes a checkpoint's signature covers: its protobuf encoding with
/// `signature` empty.
pub fn signed_bytes(checkpoint: &AuditCheckpoint) -> Vec<u8> {
    let mut unsigned = checkpoint.clone();
    unsigned.signature.clear();
    unsigned.encode_to_vec()
}

/// Signs `checkpoint` in place.
pub fn sign(key: &SigningKey, checkpoint: &mut AuditCheckpoint) {
    checkpoint.signature = key.sign(&signed_bytes(checkpoint)).to_bytes().to_vec();
}

/// Whether `checkpoint` carries a valid signature by `key`.
pub fn verify(key: &VerifyingKey, checkpoint: &AuditCheckpoint) -> bool {
    let Ok(signature) = ed25519_dalek::Signature::from_slice(&checkpoint.signature) else {
        return false;
    };
    key.verify(&signed_bytes(checkpoint), &signature).is_ok()
}

/// The key file must not be inside the data directory: whoever copies, restores
/// or backs up the data directory would get the key that vouches for it. A key
/// left at the old default place (`<data_dir>/audit-signing.key`) is not moved
/// silently: the error says where to put it.
pub fn check_key_location(key: &Path, data_dir: &Path) -> Result<(), ControlPlaneError> {
    let bad = |message: String| ControlPlaneError::Config {
        file: key.to_path_buf(),
        message,
    };
    let absolute = |p: &Path| {
        std::path::absolute(p)
            .ok()
            .map(|p| std::fs::canonicalize(&p).unwrap_or(p))
    };
    let dir = absolute(data_dir);
    let parent = key.parent().and_then(absolute);
    if let (Some(dir), Some(parent)) = (dir, parent) {
        if parent.starts_with(&dir) {
            return Err(bad(format!(
                "the audit signing key is inside the data directory {}: a copy or restore of the data directory would carry the key that vouches for it; set [audit] signing_key to a path outside it (e.g. /etc/airlock/audit-signing.key)",
                data_dir.display()
            )));
        }
    }
    let old = data_dir.join("audit-signing.key");
    if old.exists() && !key.exists() {
        return Err(bad(format!(
            "the audit signing key is at its old place {} (inside the data directory); move it out: `mv {} {}` (or set [audit] signing_key), then start again",
            old.display(),
            old.display(),
            key.display()
        )));
    }
    Ok(())
}

/// Loads the audit signing key (64 hex digits: the ed25519 seed), generating it
/// (mode 0600) when the file does not exist.
pub fn load_or_generate(path: &Path) -> Result<SigningKey, ControlPlaneError> {
    let bad = |message: String| ControlPlaneError::Config {
        file: path.to_path_buf(),
        message,
    };
    if path.exists() {
        crate::secrets::warn_if_exposed(path, "the audit signing key");
        let text = std::fs::read_to_string(path).map_err(|e| {
            bad(format!(
                "cannot read the audit signing key ({e}); check its permissions"
            ))
        })?;
        let seed = hex::decode(text.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| bad("the audit signing key is not 64 hex digits; restore it from backup (or delete it to start a new key, which old checkpoints will not verify with)".to_owned()))?;
        return Ok(SigningKey::from_bytes(&seed));
    }
    let seed: [u8; 32] = rand::random();
    if let Some(dir) = path.parent() {
        crate::secrets::create_private_dir(dir)
            .map_err(|e| bad(format!("cannot create its directory ({e})")))?;
    }
    write_private(path, &hex::encode(seed)).map_err(|e| {
        bad(format!(
            "cannot write a new audit signing key ({e}); check the directory's permissions"
        ))
    })?;
    tracing::info!(path = %path.display(), "generated a new audit signing key");
    Ok(SigningKey::from_bytes(&seed))
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}
