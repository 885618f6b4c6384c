//! [`BundleVerifier`]: what both planes run on every bundle they accept.

use crate::signature::sha256_hex;
use crate::{BundleArchive, BundleError, Limits, Manifest, PublicKey, Signatures, SIGNATURES};
use std::collections::BTreeMap;

/// Verifies bundle archives against a set of trusted ed25519 public keys.
#[derive(Debug, Clone)]
pub struct BundleVerifier {
    keys: BTreeMap<String, PublicKey>,
    limits: Limits,
}

/// An archive that passed verification, with its parsed contents.
#[derive(Debug, Clone)]
pub struct VerifiedBundle {
    /// The manifest (revision and roots).
    pub manifest: Manifest,
    /// Id of the key that signed it.
    pub key_id: String,
    /// Lower-case hex SHA-256 of the archive bytes.
    pub digest: String,
    /// The archive's files.
    pub archive: BundleArchive,
    /// The modules and data, ready for `CompiledPolicy::compile`.
    pub bundle: airlock_policy::Bundle,
}

impl BundleVerifier {
    /// A verifier trusting `keys`, with the default [`Limits`]. Fails with no key:
    /// an unverifiable bundle must never be accepted.
    pub fn new(keys: impl IntoIterator<Item = PublicKey>) -> Result<BundleVerifier, BundleError> {
        let keys: BTreeMap<String, PublicKey> = keys.into_iter().map(|k| (k.key_id(), k)).collect();
        if keys.is_empty() {
            return Err(BundleError::NoTrustedKeys);
        }
        Ok(BundleVerifier {
            keys,
            limits: Limits::default(),
        })
    }

    /// The same verifier with other limits.
    pub fn with_limits(mut self, limits: Limits) -> BundleVerifier {
        self.limits = limits;
        self
    }

    /// The limits applied to archives.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The ids of the trusted keys.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Reads and verifies an archive: safe paths and sizes, a signature by a trusted
    /// key that covers every file, a valid manifest, UTF-8 modules and an object
    /// `data.json`. Compiling and testing the Rego is the caller's next step.
    pub fn verify(&self, bytes: &[u8]) -> Result<VerifiedBundle, BundleError> {
        let archive = BundleArchive::from_tar_gz(bytes, self.limits)?;
        let signatures =
            Signatures::parse(archive.files.get(SIGNATURES).ok_or(BundleError::Unsigned)?)?;
        let key = self
            .keys
            .get(&signatures.keyid)
            .ok_or_else(|| BundleError::UnknownKey {
                key_id: signatures.keyid.clone(),
            })?;
        signatures.verify(key, &archive.files)?;
        let manifest = archive.manifest()?;
        let bundle = archive.to_policy_bundle()?;
        Ok(VerifiedBundle {
            manifest,
            key_id: signatures.keyid,
            digest: sha256_hex(bytes),
            archive,
            bundle,
        })
    }
}
