//! Signed checkpoints: every `checkpoint_every` records or `checkpoint_interval_s`
//! seconds, the control plane signs (ed25519) the sequence number and hash of the
//! log's last record. A checkpoint fixes everything before it: an attacker who
//! rewrites the log and recomputes every hash still cannot forge the signature, and
//! one who cuts the tail leaves a checkpoint pointing past the end.

use crate::api::AuditCheckpoint;
use crate::ControlPlaneError;
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use prost::Message;
use std::path::Path;

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

/// Loads the audit signing key (64 hex digits: the ed25519 seed), generating it
/// (mode 0600) when the file does not exist.
pub fn load_or_generate(path: &Path) -> Result<SigningKey, ControlPlaneError> {
    let bad = |message: String| ControlPlaneError::Config {
        file: path.to_path_buf(),
        message,
    };
    if path.exists() {
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
        std::fs::create_dir_all(dir)
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
