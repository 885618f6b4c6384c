//! ed25519 keys for signing bundles.
//!
//! File format: `PREFIX.key` holds the 32-byte secret seed and `PREFIX.pub` the
//! 32-byte public key, each as one line of standard base64. A key's id is the first
//! 16 hex digits of the SHA-256 of the public key, so signatures name their key
//! without any registry.

use crate::BundleError;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// A secret ed25519 key that signs bundles.
pub struct SigningKey(ed25519_dalek::SigningKey);

/// A public ed25519 key that verifies bundle signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        write!(f, "SigningKey({})", self.public_key().key_id())
    }
}

impl SigningKey {
    /// A fresh random key.
    pub fn generate() -> SigningKey {
        let seed: [u8; 32] = rand::random();
        SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// Reads a `.key` file (one line of base64: the 32-byte seed).
    pub fn from_file(path: &Path) -> Result<SigningKey, BundleError> {
        let seed = read_key_bytes(path, "secret key")?;
        Ok(SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    /// The seed as one line of base64, the `.key` file format.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.to_bytes())
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer as _;
        self.0.sign(message).to_bytes()
    }
}

impl PublicKey {
    /// Reads a `.pub` file (one line of base64: the 32-byte public key).
    pub fn from_file(path: &Path) -> Result<PublicKey, BundleError> {
        let bytes = read_key_bytes(path, "public key")?;
        Self::from_bytes(&bytes).map_err(|message| BundleError::Key {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses one line of base64 (the `.pub` file format).
    pub fn from_base64(text: &str) -> Result<PublicKey, BundleError> {
        let bytes = decode_32(text).map_err(|message| BundleError::Key {
            path: PathBuf::from("<inline>"),
            message,
        })?;
        Self::from_bytes(&bytes).map_err(|message| BundleError::Key {
            path: PathBuf::from("<inline>"),
            message,
        })
    }

    fn from_bytes(bytes: &[u8; 32]) -> Result<PublicKey, String> {
        ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .map(PublicKey)
            .map_err(|_| {
                "not a valid ed25519 public key; regenerate it with `airlock bundle keygen`"
                    .to_owned()
            })
    }

    /// The key as one line of base64.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.as_bytes())
    }

    /// The first 16 hex digits of the SHA-256 of the public key.
    pub fn key_id(&self) -> String {
        let digest = hex::encode(Sha256::digest(self.0.as_bytes()));
        digest[..16].to_owned()
    }

    pub(crate) fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let signature = ed25519_dalek::Signature::from_bytes(signature);
        self.0.verify_strict(message, &signature).is_ok()
    }
}

/// Generates a key pair and writes `PREFIX.key` (mode 0600 on Unix) and `PREFIX.pub`.
/// Refuses to overwrite an existing key. Returns both paths.
pub fn write_keypair(prefix: &Path) -> Result<(PathBuf, PathBuf), BundleError> {
    let key = SigningKey::generate();
    let key_path = with_suffix(prefix, "key");
    let pub_path = with_suffix(prefix, "pub");
    for path in [&key_path, &pub_path] {
        if path.exists() {
            return Err(BundleError::Key {
                path: path.clone(),
                message: "already exists; choose another prefix or delete it first".to_owned(),
            });
        }
    }
    write_secret(&key_path, &format!("{}\n", key.to_base64()))?;
    std::fs::write(&pub_path, format!("{}\n", key.public_key().to_base64()))
        .map_err(BundleError::io(&pub_path))?;
    Ok((key_path, pub_path))
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

fn write_secret(path: &Path, text: &str) -> Result<(), BundleError> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(BundleError::io(path))?;
    file.write_all(text.as_bytes())
        .map_err(BundleError::io(path))
}

fn read_key_bytes(path: &Path, what: &str) -> Result<[u8; 32], BundleError> {
    let text = std::fs::read_to_string(path).map_err(BundleError::io(path))?;
    decode_32(&text).map_err(|message| BundleError::Key {
        path: path.to_path_buf(),
        message: format!("not an ed25519 {what} file: {message}"),
    })
}

fn decode_32(text: &str) -> Result<[u8; 32], String> {
    let bytes = STANDARD.decode(text.trim()).map_err(|err| {
        format!("{err}; expected one line of base64 as written by `airlock bundle keygen`")
    })?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        format!(
            "{} bytes instead of 32; expected a file written by `airlock bundle keygen`",
            bytes.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keypair_files_round_trip_and_are_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("release");
        let (key_path, pub_path) = write_keypair(&prefix).unwrap();
        let key = SigningKey::from_file(&key_path).unwrap();
        let public = PublicKey::from_file(&pub_path).unwrap();
        assert_eq!(key.public_key(), public);
        assert_eq!(public.key_id().len(), 16);
        let sig = key.sign(b"hello");
        assert!(public.verify(b"hello", &sig));
        assert!(!public.verify(b"hellp", &sig));
        let err = write_keypair(&prefix).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_malformed_key_file_says_what_it_expected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.pub");
        std::fs::write(&path, "c2hvcnQ=\n").unwrap();
        let err = PublicKey::from_file(&path).unwrap_err();
        assert!(err.to_string().contains("bytes instead of 32"), "{err}");
    }
}
