//! The bundle archive: a deterministic `tar.gz` of a bundle's files, and the safe
//! reader that refuses path traversal, links, duplicates and oversize content.

use crate::signature::sha256_hex;
use crate::{BundleError, Manifest, Signatures, SigningKey, MANIFEST, SIGNATURES};
use airlock_policy::proof::{ProofOptions, ProofReport};
use std::collections::BTreeMap;
use std::io::{Read, Write as _};
use std::path::Path;

/// Default limit on a bundle's uncompressed content: 16 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 16 * 1024 * 1024;

/// Most entries an archive may hold; far above any real policy bundle.
const MAX_ENTRIES: usize = 10_000;

/// The root data document's path.
const DATA: &str = "data.json";

/// Limits applied when reading an archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes of file content, summed over the archive, once uncompressed.
    pub max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

/// A bundle's files by path (`/`-separated, relative to the bundle root), sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BundleArchive {
    /// Path to content.
    pub files: BTreeMap<String, Vec<u8>>,
}

/// A signed archive ready to publish.
#[derive(Debug, Clone)]
pub struct BuiltBundle {
    /// The `tar.gz` bytes.
    pub bytes: Vec<u8>,
    /// The revision written into `.manifest`.
    pub revision: String,
    /// Lower-case hex SHA-256 of `bytes`.
    pub digest: String,
    /// What comparing the two Rego engines on the bundle found; its proof (when
    /// they agreed) is signed into the manifest.
    pub engines: ProofReport,
}

/// How to build a bundle.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The revision; default: the manifest's, else `sha256:` + 12 hex digits of the
    /// content digest (what `airlock policy eval` shows for the same directory).
    pub revision: Option<String>,
    /// What the engine agreement proof replays.
    pub proof: ProofOptions,
}

/// Builds a signed, deterministic archive from a policy directory with the given
/// revision (see [`BuildOptions::revision`]) and the default proof options.
pub fn build_from_dir(
    dir: &Path,
    revision: Option<&str>,
    key: &SigningKey,
) -> Result<BuiltBundle, BundleError> {
    let options = BuildOptions {
        revision: revision.map(str::to_owned),
        ..BuildOptions::default()
    };
    build_from_dir_with(dir, &options, key)
}

/// Builds a signed, deterministic archive from a policy directory: every `*.rego`
/// (recursively, skipping hidden directories), the root `data.json` and `.manifest`,
/// with the engine agreement proof ([`airlock_policy::proof`]) in the manifest when
/// the RVM agrees with the interpreter on the bundle. Rego that does not compile is
/// not refused here (the control plane refuses it, naming the file and line); it
/// simply gets no proof.
pub fn build_from_dir_with(
    dir: &Path,
    options: &BuildOptions,
    key: &SigningKey,
) -> Result<BuiltBundle, BundleError> {
    let mut archive = BundleArchive::from_dir(dir)?;
    let mut manifest = match archive.files.get(MANIFEST) {
        Some(bytes) => Manifest::parse(bytes)?,
        None => Manifest::new(String::new()),
    };
    // Parse the modules and data now, so a broken bundle fails at build, not at push.
    let content = archive.policy_content()?;
    if let Some(revision) = &options.revision {
        manifest.revision = revision.clone();
    } else if manifest.revision.is_empty() {
        manifest.revision = airlock_policy::default_revision(&content.digest);
    }
    crate::validate_revision(&manifest.revision)?;
    let engines = airlock_policy::proof::prove(&content, &options.proof)
        .unwrap_or_else(|err| ProofReport::not_proved(format!("the proof could not run: {err}")));
    manifest.set_engine_proof(engines.proof.as_ref());
    manifest.set_reviewer_groups(&engines.reviewer_groups);
    archive
        .files
        .insert(MANIFEST.to_owned(), manifest.to_bytes());
    archive.to_policy_bundle()?;
    archive.sign(key);
    let bytes = archive.to_tar_gz()?;
    Ok(BuiltBundle {
        digest: sha256_hex(&bytes),
        bytes,
        revision: manifest.revision,
        engines,
    })
}

impl BundleArchive {
    /// Collects a policy directory's bundle files. Symlinks are refused.
    pub fn from_dir(dir: &Path) -> Result<BundleArchive, BundleError> {
        let mut archive = BundleArchive::default();
        collect(dir, dir, &mut archive.files)?;
        for name in [DATA, MANIFEST] {
            let path = dir.join(name);
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(BundleError::NotRegularFile {
                        path: name.to_owned(),
                    })
                }
                Ok(_) => {
                    let bytes = std::fs::read(&path).map_err(BundleError::io(&path))?;
                    archive.files.insert(name.to_owned(), bytes);
                }
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(BundleError::io(&path)(err)),
            }
        }
        Ok(archive)
    }

    /// Adds (or replaces) `.signatures.json`, signing every other file with `key`.
    pub fn sign(&mut self, key: &SigningKey) {
        let signatures = Signatures::sign(&self.files, key);
        self.files
            .insert(SIGNATURES.to_owned(), signatures.to_bytes());
    }

    /// The parsed `.manifest`.
    pub fn manifest(&self) -> Result<Manifest, BundleError> {
        let bytes = self.files.get(MANIFEST).ok_or_else(|| {
            BundleError::document(
                MANIFEST,
                "missing; every bundle needs a .manifest with a revision",
            )
        })?;
        Manifest::parse(bytes)
    }

    /// Writes the deterministic `tar.gz`: sorted paths, mode 0644, uid/gid 0, mtime 0.
    pub fn to_tar_gz(&self) -> Result<Vec<u8>, BundleError> {
        let io = |source| BundleError::Io {
            path: "<bundle archive>".into(),
            source,
        };
        let gz = flate2::GzBuilder::new()
            .mtime(0)
            .write(Vec::new(), flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        tar.mode(tar::HeaderMode::Deterministic);
        for (name, bytes) in &self.files {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_uid(0);
            header.set_gid(0);
            tar.append_data(&mut header, name, bytes.as_slice())
                .map_err(io)?;
        }
        let mut gz = tar.into_inner().map_err(io)?;
        gz.flush().map_err(io)?;
        gz.finish().map_err(io)
    }

    /// Reads a `tar.gz`, refusing unsafe paths, links and special files, duplicate
    /// paths, unsupported files and content over `limits.max_bytes`.
    pub fn from_tar_gz(bytes: &[u8], limits: Limits) -> Result<BundleArchive, BundleError> {
        let archive_err = |err: std::io::Error| BundleError::Archive {
            message: err.to_string(),
        };
        // Tar headers and padding add at most 1.5 KiB per entry; cap the stream too,
        // so a gzip bomb of headers cannot run unbounded.
        let stream_cap = limits
            .max_bytes
            .saturating_mul(2)
            .saturating_add(MAX_ENTRIES as u64 * 1536);
        // Inflate the whole member first: the gzip CRC and length are only checked at
        // its end, and a tar reader stops before it, so a corrupted stream could
        // otherwise yield other bytes without an error.
        let mut tar_bytes = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .take(stream_cap.saturating_add(1))
            .read_to_end(&mut tar_bytes)
            .map_err(archive_err)?;
        if tar_bytes.len() as u64 > stream_cap {
            return Err(BundleError::TooLarge {
                limit: limits.max_bytes,
            });
        }
        let mut tar = tar::Archive::new(tar_bytes.as_slice());
        let mut archive = BundleArchive::default();
        let mut total: u64 = 0;
        for (index, entry) in tar.entries().map_err(archive_err)?.enumerate() {
            if index >= MAX_ENTRIES {
                return Err(BundleError::Archive {
                    message: format!("more than {MAX_ENTRIES} entries"),
                });
            }
            let mut entry = entry.map_err(archive_err)?;
            // `git archive` writes a pax global header (a comment); it names no file.
            if entry.header().entry_type() == tar::EntryType::XGlobalHeader {
                continue;
            }
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let path = safe_path(&raw)?;
            match entry.header().entry_type() {
                tar::EntryType::Directory => continue,
                tar::EntryType::Regular | tar::EntryType::Continuous => {}
                _ => return Err(BundleError::NotRegularFile { path: raw }),
            }
            check_supported(&path)?;
            let size = entry.header().size().map_err(archive_err)?;
            total = total.saturating_add(size);
            if total > limits.max_bytes {
                return Err(BundleError::TooLarge {
                    limit: limits.max_bytes,
                });
            }
            let mut content = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            entry.read_to_end(&mut content).map_err(archive_err)?;
            if archive.files.insert(path.clone(), content).is_some() {
                return Err(BundleError::DuplicateFile { path });
            }
        }
        Ok(archive)
    }

    /// Turns the files into a policy bundle: the modules, `data.json`, the
    /// manifest's revision and engine proof.
    pub fn to_policy_bundle(&self) -> Result<airlock_policy::Bundle, BundleError> {
        self.manifest()?;
        self.bundle_with(self.files.get(MANIFEST))
    }

    /// The modules and `data.json` without the manifest (content revision, no proof).
    fn policy_content(&self) -> Result<airlock_policy::Bundle, BundleError> {
        self.bundle_with(None)
    }

    fn bundle_with(
        &self,
        manifest: Option<&Vec<u8>>,
    ) -> Result<airlock_policy::Bundle, BundleError> {
        let mut modules = Vec::new();
        for (name, bytes) in self.files.iter().filter(|(n, _)| n.ends_with(".rego")) {
            let source = String::from_utf8(bytes.clone()).map_err(|_| {
                BundleError::document(name, "not UTF-8 text; Rego sources must be UTF-8")
            })?;
            modules.push(airlock_policy::Module {
                path: name.clone(),
                source,
            });
        }
        if modules.is_empty() {
            return Err(BundleError::document(
                MANIFEST,
                "the bundle has no .rego file; point at a policy directory such as `policies/`",
            ));
        }
        let data = match self.files.get(DATA) {
            Some(bytes) => {
                parse_data(bytes)?;
                Some(std::str::from_utf8(bytes).map_err(|_| {
                    BundleError::document(DATA, "not UTF-8 text; data.json must be UTF-8")
                })?)
            }
            None => None,
        };
        let manifest = manifest
            .map(|m| std::str::from_utf8(m))
            .transpose()
            .map_err(|_| BundleError::document(MANIFEST, "not UTF-8 text"))?;
        Ok(airlock_policy::Bundle::from_sources(
            modules, data, manifest,
        )?)
    }
}

fn collect(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<String, Vec<u8>>,
) -> Result<(), BundleError> {
    for entry in std::fs::read_dir(dir).map_err(BundleError::io(dir))? {
        let entry = entry.map_err(BundleError::io(dir))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let file_type = entry.file_type().map_err(BundleError::io(&path))?;
        let rel = || {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            rel.components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/")
        };
        // A linked module or directory could pull in files from outside the bundle.
        let linked_dir =
            file_type.is_symlink() && std::fs::metadata(&path).is_ok_and(|m| m.is_dir());
        if file_type.is_symlink() && (name.ends_with(".rego") || linked_dir) {
            return Err(BundleError::NotRegularFile { path: rel() });
        }
        if file_type.is_dir() && !name.starts_with('.') {
            collect(root, &path, out)?;
        } else if file_type.is_file() && name.ends_with(".rego") {
            let bytes = std::fs::read(&path).map_err(BundleError::io(&path))?;
            out.insert(rel(), bytes);
        }
    }
    Ok(())
}

/// Normalizes an archive path (drops a leading `./`) and refuses absolute paths,
/// `..`, empty or `.` components, backslashes and control characters.
fn safe_path(raw: &str) -> Result<String, BundleError> {
    let unsafe_path = |reason| BundleError::UnsafePath {
        path: raw.to_owned(),
        reason,
    };
    if raw.starts_with('/') {
        return Err(unsafe_path("absolute path"));
    }
    if raw.contains('\\') || raw.chars().any(char::is_control) {
        return Err(unsafe_path("backslash or control character"));
    }
    let trimmed = raw.trim_start_matches("./").trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    for part in trimmed.split('/') {
        match part {
            ".." => return Err(unsafe_path("`..` component")),
            "" | "." => return Err(unsafe_path("empty or `.` component")),
            _ => {}
        }
    }
    Ok(trimmed.to_owned())
}

fn check_supported(path: &str) -> Result<(), BundleError> {
    let ok = path == MANIFEST || path == SIGNATURES || path == DATA || path.ends_with(".rego");
    if ok {
        Ok(())
    } else {
        Err(BundleError::UnsupportedFile {
            path: path.to_owned(),
        })
    }
}

fn parse_data(bytes: &[u8]) -> Result<serde_json::Value, BundleError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|err| {
        BundleError::document(
            DATA,
            format!("not valid JSON ({err}); fix the syntax at that line and column"),
        )
    })?;
    if !value.is_object() {
        return Err(BundleError::document(
            DATA,
            "must be a JSON object (it is merged at the root of `data`)",
        ));
    }
    Ok(value)
}

#[cfg(test)]
#[path = "archive_test.rs"]
mod tests;
