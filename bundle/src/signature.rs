//! `.signatures.json`: the signed list of a bundle's files.
//!
//! In the spirit of OPA's bundle signatures, but without JWT: the document lists
//! every other file of the bundle with its SHA-256, names the key, and carries an
//! ed25519 signature over the canonical JSON of the file list (compact, files sorted
//! by name, keys in the order `name`, `sha256`).

use crate::{BundleError, PublicKey, SigningKey};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The signature document's path inside a bundle.
pub const SIGNATURES: &str = ".signatures.json";

/// The only algorithm accepted.
const ALGORITHM: &str = "ed25519";

/// One signed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDigest {
    /// Path relative to the bundle root.
    pub name: String,
    /// Lower-case hex SHA-256 of the file's bytes.
    pub sha256: String,
}

/// The `.signatures.json` document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signatures {
    /// Id of the signing key (see [`PublicKey::key_id`]).
    pub keyid: String,
    /// Always `ed25519`.
    pub algorithm: String,
    /// Every other file of the bundle, sorted by name.
    pub files: Vec<FileDigest>,
    /// Base64 ed25519 signature over the canonical JSON of `files`.
    pub signature: String,
}

impl Signatures {
    /// Signs the given files (everything but `.signatures.json` itself).
    pub fn sign(files: &BTreeMap<String, Vec<u8>>, key: &SigningKey) -> Signatures {
        let files: Vec<FileDigest> = files
            .iter()
            .filter(|(name, _)| name.as_str() != SIGNATURES)
            .map(|(name, bytes)| FileDigest {
                name: name.clone(),
                sha256: sha256_hex(bytes),
            })
            .collect();
        let signature = key.sign(&canonical(&files));
        Signatures {
            keyid: key.public_key().key_id(),
            algorithm: ALGORITHM.to_owned(),
            files,
            signature: STANDARD.encode(signature),
        }
    }

    /// Parses `.signatures.json` bytes.
    pub fn parse(bytes: &[u8]) -> Result<Signatures, BundleError> {
        serde_json::from_slice(bytes).map_err(|err| {
            BundleError::document(
                SIGNATURES,
                format!("malformed ({err}); re-sign the bundle with `airlock bundle build`"),
            )
        })
    }

    /// The document as pretty JSON.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// Checks the signature with `key` and that `files` are exactly the signed files
    /// with the signed digests.
    pub fn verify(
        &self,
        key: &PublicKey,
        files: &BTreeMap<String, Vec<u8>>,
    ) -> Result<(), BundleError> {
        if self.algorithm != ALGORITHM {
            return Err(BundleError::document(
                SIGNATURES,
                format!(
                    "algorithm {:?} is not supported; only ed25519 is",
                    self.algorithm
                ),
            ));
        }
        let bad = || BundleError::BadSignature {
            key_id: self.keyid.clone(),
        };
        let raw = STANDARD.decode(&self.signature).map_err(|_| bad())?;
        let raw = <[u8; 64]>::try_from(raw.as_slice()).map_err(|_| bad())?;
        if !key.verify(&canonical(&self.files), &raw) {
            return Err(bad());
        }
        self.check_coverage(files)
    }

    fn check_coverage(&self, files: &BTreeMap<String, Vec<u8>>) -> Result<(), BundleError> {
        let mut signed: BTreeMap<&str, &str> = BTreeMap::new();
        for file in &self.files {
            if signed.insert(&file.name, &file.sha256).is_some() {
                return Err(BundleError::DuplicateFile {
                    path: file.name.clone(),
                });
            }
        }
        for (name, bytes) in files.iter().filter(|(n, _)| n.as_str() != SIGNATURES) {
            match signed.remove(name.as_str()) {
                None => return Err(BundleError::NotSigned { path: name.clone() }),
                Some(digest) if digest != sha256_hex(bytes) => {
                    return Err(BundleError::DigestMismatch { path: name.clone() })
                }
                Some(_) => {}
            }
        }
        match signed.keys().next() {
            Some(missing) => Err(BundleError::MissingFile {
                path: (*missing).to_owned(),
            }),
            None => Ok(()),
        }
    }
}

/// The bytes the signature covers: compact JSON of the file list.
fn canonical(files: &[FileDigest]) -> Vec<u8> {
    serde_json::to_vec(files).unwrap_or_default()
}

/// Lower-case hex SHA-256.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
