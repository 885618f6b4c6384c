//! The `.manifest` of an OPA-compatible bundle: its revision and roots.

use crate::BundleError;
use serde::{Deserialize, Serialize};

/// The manifest's path inside a bundle.
pub const MANIFEST: &str = ".manifest";

/// Longest revision accepted; revisions are storage keys and CLI arguments.
const MAX_REVISION_LEN: usize = 128;

/// The `.manifest` document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The bundle revision, unique per published bundle.
    pub revision: String,
    /// The data and package roots the bundle owns (OPA's default: `[""]`, everything).
    #[serde(default = "default_roots")]
    pub roots: Vec<String>,
    /// OPA's free-form metadata; Airlock keeps its engine proof in
    /// `metadata.airlock.engine_proof`.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

fn default_roots() -> Vec<String> {
    vec![String::new()]
}

impl Manifest {
    /// A manifest owning everything, with the given revision.
    pub fn new(revision: impl Into<String>) -> Manifest {
        Manifest {
            revision: revision.into(),
            roots: default_roots(),
            metadata: serde_json::Map::new(),
        }
    }

    /// Sets (or, with `None`, removes) `metadata.airlock.engine_proof`.
    pub fn set_engine_proof(&mut self, proof: Option<&airlock_policy::proof::EngineProof>) {
        self.set_airlock(
            "engine_proof",
            proof.and_then(|p| serde_json::to_value(p).ok()),
        );
    }

    /// The reviewer groups the bundle's decisions ask for
    /// (`metadata.airlock.reviewer_groups`), as the build found them.
    pub fn reviewer_groups(&self) -> Vec<String> {
        self.metadata
            .get("airlock")
            .and_then(|a| a.get("reviewer_groups"))
            .and_then(|g| serde_json::from_value(g.clone()).ok())
            .unwrap_or_default()
    }

    /// Sets `metadata.airlock.reviewer_groups` (removed when empty).
    pub fn set_reviewer_groups(&mut self, groups: &std::collections::BTreeSet<String>) {
        let value = (!groups.is_empty()).then(|| serde_json::json!(groups));
        self.set_airlock("reviewer_groups", value);
    }

    fn set_airlock(&mut self, key: &str, value: Option<serde_json::Value>) {
        let airlock = self
            .metadata
            .entry("airlock")
            .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
        if !airlock.is_object() {
            *airlock = serde_json::Value::Object(serde_json::Map::new());
        }
        if let serde_json::Value::Object(map) = airlock {
            match value {
                Some(value) => {
                    map.insert(key.to_owned(), value);
                }
                None => {
                    map.remove(key);
                }
            }
            if map.is_empty() {
                self.metadata.remove("airlock");
            }
        }
    }

    /// Parses and validates `.manifest` bytes.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, BundleError> {
        let manifest: Manifest = serde_json::from_slice(bytes).map_err(|err| {
            BundleError::document(
                MANIFEST,
                format!("not a valid manifest ({err}); expected {{\"revision\": \"...\", \"roots\": [\"...\"]}}"),
            )
        })?;
        validate_revision(&manifest.revision)?;
        Ok(manifest)
    }

    /// The manifest as pretty JSON, the way `airlock bundle build` writes it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }
}

/// Checks that a revision is usable as a storage key and a CLI argument: 1 to 128
/// characters among `A-Z a-z 0-9 . _ - : +`.
pub fn validate_revision(revision: &str) -> Result<(), BundleError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '+');
    if revision.is_empty() || revision.len() > MAX_REVISION_LEN || !revision.chars().all(ok_char) {
        return Err(BundleError::document(
            MANIFEST,
            format!(
                "revision {revision:?} is not valid; use 1 to {MAX_REVISION_LEN} characters among A-Z a-z 0-9 . _ - : +"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_defaults_and_refuses_bad_revisions() {
        let m = Manifest::parse(br#"{"revision": "2026-11-25.1"}"#).unwrap();
        assert_eq!(m.roots, [""]);
        assert_eq!(Manifest::parse(&m.to_bytes()).unwrap(), m);
        for bad in [
            r#"{"revision": ""}"#,
            r#"{"revision": "a/b"}"#,
            r#"{"roots": []}"#,
            "nope",
        ] {
            let err = Manifest::parse(bad.as_bytes()).unwrap_err();
            assert!(err.to_string().starts_with(".manifest:"), "{err}");
        }
    }
}
