//! Everything that can be wrong with a bundle, a key or a signature.
//!
//! Every message names the file when there is one and says what to do.

use std::path::PathBuf;

/// What went wrong while building, signing, reading or verifying a bundle.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// A file or directory could not be read or written.
    #[error("cannot access {path}: {source}; check that the path exists and is readable")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a readable `tar.gz`.
    #[error(
        "not a valid bundle archive (tar.gz): {message}; build one with `airlock bundle build`"
    )]
    Archive {
        /// What the decoder said.
        message: String,
    },
    /// A path in the archive is absolute, climbs out with `..`, or is otherwise unsafe.
    #[error("{path}: unsafe path in bundle ({reason}); bundle paths must be relative and stay inside the bundle")]
    UnsafePath {
        /// The path as written in the archive.
        path: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// An archive entry is a symlink, hard link, device or anything but a plain file.
    #[error("{path}: not a regular file (links and special files are refused); replace it with the file's content")]
    NotRegularFile {
        /// The entry's path.
        path: String,
    },
    /// The uncompressed content exceeds the configured limit.
    #[error("bundle larger than the {limit}-byte limit once uncompressed; remove large data or raise the limit")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The same path appears twice in the archive.
    #[error("{path}: appears twice in the archive; rebuild it with `airlock bundle build`")]
    DuplicateFile {
        /// The duplicated path.
        path: String,
    },
    /// A file of a kind bundles do not carry.
    #[error("{path}: unsupported file in a bundle; bundles hold only .manifest, .signatures.json, *.rego and a root data.json")]
    UnsupportedFile {
        /// The file's path.
        path: String,
    },
    /// A file's content is malformed (`.manifest`, `data.json`, a non-UTF-8 module).
    #[error("{file}: {message}")]
    Document {
        /// The bundle file.
        file: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The bundle's Rego or data does not load, compile or prove (file and line).
    #[error(transparent)]
    Policy(#[from] airlock_policy::PolicyError),
    /// The archive has no `.signatures.json`.
    #[error("the bundle is not signed (no .signatures.json); sign it with `airlock bundle build DIR -o FILE --signing-key KEY`")]
    Unsigned,
    /// A file is in the archive but not listed in `.signatures.json`.
    #[error("{path}: not covered by the bundle signature; rebuild and re-sign the bundle")]
    NotSigned {
        /// The uncovered file.
        path: String,
    },
    /// A file listed in `.signatures.json` is missing from the archive.
    #[error("{path}: listed in .signatures.json but missing from the archive; rebuild and re-sign the bundle")]
    MissingFile {
        /// The missing file.
        path: String,
    },
    /// A file's SHA-256 differs from the signed one: it was changed after signing.
    #[error("{path}: content does not match its signed SHA-256 (modified after signing); rebuild and re-sign the bundle")]
    DigestMismatch {
        /// The modified file.
        path: String,
    },
    /// The signature was made with a key the verifier does not trust.
    #[error("the bundle is signed with key `{key_id}`, which is not trusted here; add its .pub file to the trusted keys or sign with a trusted key")]
    UnknownKey {
        /// The signing key's id.
        key_id: String,
    },
    /// The ed25519 signature does not verify.
    #[error(".signatures.json: the signature by key `{key_id}` does not verify; the file list was altered or signed with another key")]
    BadSignature {
        /// The claimed key id.
        key_id: String,
    },
    /// A key file is malformed.
    #[error("{path}: {message}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// No trusted public key was configured.
    #[error("no trusted public key configured; generate one with `airlock bundle keygen -o PREFIX` and configure PREFIX.pub")]
    NoTrustedKeys,
}

impl BundleError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> BundleError {
        let path = path.into();
        move |source| BundleError::Io { path, source }
    }

    pub(crate) fn document(file: &str, message: impl Into<String>) -> BundleError {
        BundleError::Document {
            file: file.to_owned(),
            message: message.into(),
        }
    }
}
