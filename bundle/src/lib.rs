//! `airlock-bundle`: policy bundles as the control plane stores them and proxies
//! receive them.
//!
//! A bundle is an OPA-compatible `tar.gz`: `.manifest` (JSON with `revision` and
//! `roots`), `*.rego` modules, an optional root `data.json`, and `.signatures.json`,
//! which lists every other file with its SHA-256 and carries an ed25519 signature
//! over the canonical JSON of that list. [`build_from_dir`] makes a deterministic,
//! signed archive (sorted paths, fixed mtimes); [`BundleVerifier`] checks one against
//! trusted public keys and refuses unsafe paths, links, oversize archives and files
//! the signature does not cover, then yields an [`airlock_policy::Bundle`].

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod archive;
mod error;
mod keys;
mod manifest;
mod signature;
mod verifier;

pub use archive::{
    build_from_dir, build_from_dir_with, BuildOptions, BuiltBundle, BundleArchive, Limits,
    DEFAULT_MAX_BYTES,
};
pub use error::BundleError;
pub use keys::{write_keypair, PublicKey, SigningKey};
pub use manifest::{validate_revision, Manifest, MANIFEST};
pub use signature::{FileDigest, Signatures, SIGNATURES};
pub use verifier::{BundleVerifier, VerifiedBundle};
