//! A policy bundle read from a directory: Rego modules, `data.json`, `.manifest`.

use crate::PolicyError;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// A policy bundle: every `*.rego` file under a directory (recursively), the optional
/// root `data.json`, and the revision (from `.manifest`, or a content hash).
#[derive(Debug, Clone)]
pub struct Bundle {
    /// `.manifest`'s `revision`, else `sha256:` + 12 hex of [`Bundle::digest`]: the
    /// same string `airlock policy eval`, `bundle build`, `bundle list`, `nodes list`,
    /// decisions and audit events show for the same content.
    pub revision: String,
    /// Lower-case hex SHA-256 over the modules and the `data.json` text (not the
    /// manifest): what an engine proof is bound to.
    pub digest: String,
    /// The `.manifest`'s `metadata.airlock.engine_proof`, unparsed: the publisher's
    /// proof that the RVM agrees with the interpreter on this content
    /// ([`crate::proof`]).
    pub engine_proof: Option<serde_json::Value>,
    /// The Rego modules, sorted by path.
    pub modules: Vec<Module>,
    /// The root `data.json` (an empty object when absent).
    pub data: serde_json::Value,
}

/// One Rego source file of a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// Path relative to the bundle root, with `/` separators.
    pub path: String,
    /// The Rego source.
    pub source: String,
}

impl Module {
    /// True for OPA-style test files (`*_test.rego`), which the decision program leaves out.
    pub fn is_test(&self) -> bool {
        self.path.ends_with("_test.rego")
    }
}

impl Bundle {
    /// Reads a bundle from `dir`. Hidden directories (`.git`, ...) are skipped.
    pub fn from_dir(dir: &Path) -> Result<Bundle, PolicyError> {
        let mut files = Vec::new();
        collect_rego(dir, dir, &mut files)?;
        if files.is_empty() {
            return Err(PolicyError::NoModules {
                dir: dir.to_path_buf(),
            });
        }
        let mut modules = Vec::with_capacity(files.len());
        for (rel, full) in files {
            modules.push(Module {
                path: rel,
                source: read_text(&full)?,
            });
        }
        let data_text = read_optional(&dir.join("data.json"))?;
        let manifest = read_optional(&dir.join(".manifest"))?;
        Bundle::from_sources(modules, data_text.as_deref(), manifest.as_deref())
    }

    /// Builds a bundle from its sources as they are stored: the modules, the
    /// `data.json` text and the `.manifest` text (both optional). The digest and the
    /// default revision are computed over the texts, so a directory and an archive of
    /// the same files give the same revision.
    pub fn from_sources(
        mut modules: Vec<Module>,
        data_text: Option<&str>,
        manifest: Option<&str>,
    ) -> Result<Bundle, PolicyError> {
        modules.sort_by(|a, b| a.path.cmp(&b.path));
        let data = match data_text {
            Some(text) => parse_data(text)?,
            None => serde_json::Value::Object(serde_json::Map::new()),
        };
        let digest = content_digest(&modules, data_text);
        let (revision, engine_proof) = match manifest {
            Some(text) => read_manifest(text)?,
            None => (None, None),
        };
        Ok(Bundle {
            revision: revision.unwrap_or_else(|| default_revision(&digest)),
            digest,
            engine_proof,
            modules,
            data,
        })
    }

    /// Builds a bundle from in-memory modules and data, with a content-hash revision.
    pub fn from_parts(modules: Vec<Module>, data: serde_json::Value) -> Bundle {
        let mut modules = modules;
        modules.sort_by(|a, b| a.path.cmp(&b.path));
        let digest = content_digest(&modules, Some(&data.to_string()));
        Bundle {
            revision: default_revision(&digest),
            digest,
            engine_proof: None,
            modules,
            data,
        }
    }
}

/// The revision of content without a manifest revision: `sha256:` + 12 hex digits
/// of its digest.
pub fn default_revision(digest: &str) -> String {
    format!("sha256:{}", digest.get(..12).unwrap_or(digest))
}

fn collect_rego(
    root: &Path,
    dir: &Path,
    out: &mut Vec<(String, PathBuf)>,
) -> Result<(), PolicyError> {
    let io = |source| PolicyError::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let file_type = entry.file_type().map_err(io)?;
        if file_type.is_dir() {
            if !name.starts_with('.') {
                collect_rego(root, &path, out)?;
            }
        } else if name.ends_with(".rego") {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let rel = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            out.push((rel, path));
        }
    }
    Ok(())
}

fn read_text(path: &Path) -> Result<String, PolicyError> {
    std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn read_optional(path: &Path) -> Result<Option<String>, PolicyError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PolicyError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn parse_data(text: &str) -> Result<serde_json::Value, PolicyError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|err| PolicyError::Document {
            file: "data.json".to_owned(),
            message: format!("not valid JSON ({err}); fix the syntax at that line and column"),
        })?;
    if !value.is_object() {
        return Err(PolicyError::Document {
            file: "data.json".to_owned(),
            message: "must be a JSON object (it is merged at the root of `data`)".to_owned(),
        });
    }
    Ok(value)
}

/// The manifest's revision (absent or empty: none) and its engine proof.
fn read_manifest(text: &str) -> Result<(Option<String>, Option<serde_json::Value>), PolicyError> {
    let bad = |message: String| PolicyError::Document {
        file: ".manifest".to_owned(),
        message,
    };
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|err| bad(format!("not valid JSON ({err}); fix it or delete the file")))?;
    let revision = match value.get("revision") {
        None => None,
        Some(serde_json::Value::String(rev)) if rev.is_empty() => None,
        Some(serde_json::Value::String(rev)) => Some(rev.clone()),
        Some(_) => {
            return Err(bad(
                "`revision` must be a string, e.g. {\"revision\": \"2026-11-25.1\"}".to_owned(),
            ))
        }
    };
    let proof = value.pointer("/metadata/airlock/engine_proof").cloned();
    Ok((revision, proof))
}

/// Hex SHA-256 over the sorted (path, content) pairs of the modules and `data.json`.
fn content_digest(modules: &[Module], data: Option<&str>) -> String {
    let mut pairs: Vec<(&str, &str)> = modules
        .iter()
        .map(|m| (m.path.as_str(), m.source.as_str()))
        .collect();
    if let Some(data) = data {
        pairs.push(("data.json", data));
    }
    pairs.sort_unstable();
    let mut hasher = Sha256::new();
    for (path, content) in pairs {
        // Length prefixes keep ("ab","c") and ("a","bc") apart.
        hasher.update((path.len() as u64).to_be_bytes());
        hasher.update(path.as_bytes());
        hasher.update((content.len() as u64).to_be_bytes());
        hasher.update(content.as_bytes());
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn write(dir: &Path, rel: &str, text: &str) {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(path, text).unwrap();
    }

    #[test]
    fn reads_modules_recursively_and_hashes_a_revision() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.rego", "package a\n");
        write(dir.path(), "sub/b.rego", "package b\n");
        write(dir.path(), ".git/c.rego", "package c\n");
        write(dir.path(), "data.json", "{\"x\": 1}");
        let bundle = Bundle::from_dir(dir.path()).unwrap();
        let paths: Vec<_> = bundle.modules.iter().map(|m| m.path.as_str()).collect();
        assert_eq!(paths, ["a.rego", "sub/b.rego"]);
        assert_eq!(bundle.data["x"], 1);
        assert!(bundle.revision.starts_with("sha256:"));
        assert_eq!(bundle.revision.len(), "sha256:".len() + 12);

        let again = Bundle::from_dir(dir.path()).unwrap();
        assert_eq!(again.revision, bundle.revision);
        write(dir.path(), "data.json", "{\"x\": 2}");
        assert_ne!(
            Bundle::from_dir(dir.path()).unwrap().revision,
            bundle.revision
        );
    }

    #[test]
    fn manifest_revision_wins() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.rego", "package a\n");
        write(dir.path(), ".manifest", "{\"revision\": \"r42\"}");
        assert_eq!(Bundle::from_dir(dir.path()).unwrap().revision, "r42");
    }

    #[test]
    fn empty_dir_and_bad_data_are_errors_that_say_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let err = Bundle::from_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("no .rego file"), "{err}");
        write(dir.path(), "a.rego", "package a\n");
        write(dir.path(), "data.json", "[1]");
        let err = Bundle::from_dir(dir.path()).unwrap_err();
        assert!(err.to_string().starts_with("data.json:"), "{err}");
    }
}
