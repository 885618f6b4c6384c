//! Whether the config file shows secrets to other users of the machine: a file
//! that writes a secret out (rather than referencing `${NAME}`) and is readable by
//! its group or by everyone earns a start-up warning naming the keys.
//!
//! The secret-bearing keys are `server.session_secret`, `control_plane.token` and
//! the credential-like `upstreams[i].headers` (Authorization, Cookie, or a name with
//! token, key, secret, auth, pass or session in it). API keys are stored as hashes
//! and are not secrets.

use std::fmt;
use std::path::{Path, PathBuf};

/// Something about the config file worth a warning, though the proxy can start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigWarning {
    /// The file holds secrets written out and is readable by group or others.
    ReadableSecrets {
        /// The file.
        path: PathBuf,
        /// Its permission bits, e.g. `0o644`.
        mode: u32,
        /// The keys whose values are written out, e.g. `control_plane.token`.
        keys: Vec<String>,
    },
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigWarning::ReadableSecrets { path, mode, keys } => write!(
                f,
                "config file {} is readable by other users (mode {mode:04o}) and holds secrets in {}; \
                 run `chmod 600 {}` or move the values into environment variables (key = \"${{NAME}}\")",
                path.display(),
                keys.join(", "),
                path.display(),
            ),
        }
    }
}

/// The warning for `path` with content `text`, if it deserves one.
pub(super) fn check(path: &Path, text: &str) -> Option<ConfigWarning> {
    let mode = file_mode(path)?;
    if mode & 0o044 == 0 {
        return None;
    }
    let keys = literal_secrets(text);
    (!keys.is_empty()).then(|| ConfigWarning::ReadableSecrets {
        path: path.to_owned(),
        mode,
        keys,
    })
}

#[cfg(unix)]
fn file_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o777)
}

#[cfg(not(unix))]
fn file_mode(_path: &Path) -> Option<u32> {
    None
}

/// The secret-bearing keys of a (valid) config text whose values are written out.
fn literal_secrets(text: &str) -> Vec<String> {
    let Ok(doc) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let mut keys = Vec::new();
    let mut note = |key: String, value: Option<&toml::Value>| {
        if value.and_then(toml::Value::as_str).is_some_and(is_literal) {
            keys.push(key);
        }
    };
    note(
        "server.session_secret".to_owned(),
        doc.get("server").and_then(|s| s.get("session_secret")),
    );
    note(
        "control_plane.token".to_owned(),
        doc.get("control_plane").and_then(|c| c.get("token")),
    );
    let upstreams = doc.get("upstreams").and_then(toml::Value::as_array);
    for (i, upstream) in upstreams.into_iter().flatten().enumerate() {
        let headers = upstream.get("headers").and_then(toml::Value::as_table);
        for (name, value) in headers.into_iter().flatten() {
            if is_credential_header(name) {
                note(format!("upstreams[{i}].headers.{name}"), Some(value));
            }
        }
    }
    keys
}

/// A value with no `${NAME}` reference in it is the secret itself.
fn is_literal(value: &str) -> bool {
    !value.is_empty() && !value.contains("${")
}

fn is_credential_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "authorization",
        "cookie",
        "token",
        "key",
        "secret",
        "auth",
        "pass",
        "session",
    ]
    .iter()
    .any(|word| name.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"
[server]
listen = "127.0.0.1:0"
session_secret = "0123456789abcdef0123"
[control_plane]
url = "http://127.0.0.1:7443"
token = "${AIRLOCK_NODE_TOKEN}"
[[upstreams]]
name = "a"
url = "http://x/mcp"
headers = { Authorization = "Bearer abc", X-Team = "blue", X-Api-Key = "${KEY}" }
"#;

    #[test]
    fn written_out_secrets_are_named_and_references_are_not() {
        assert_eq!(
            literal_secrets(TEXT),
            [
                "server.session_secret",
                "upstreams[0].headers.Authorization"
            ]
        );
        let none = TEXT
            .replace("\"0123456789abcdef0123\"", "\"${S}\"")
            .replace("Bearer abc", "Bearer ${T}");
        assert!(literal_secrets(&none).is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn only_a_file_others_can_read_earns_the_warning() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("airlock.toml");
        std::fs::write(&path, TEXT).unwrap();
        for (mode, warned) in [(0o600, false), (0o640, true), (0o604, true), (0o700, false)] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let warning = check(&path, TEXT);
            assert_eq!(warning.is_some(), warned, "mode {mode:o}");
            if let Some(warning) = warning {
                let text = warning.to_string();
                assert!(text.contains("chmod 600"), "{text}");
                assert!(text.contains("server.session_secret"), "{text}");
            }
        }
    }
}
