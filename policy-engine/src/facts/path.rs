//! Path facts: a file path normalised lexically, the way a server that percent-decodes
//! its input and then opens the path would resolve it (without symlinks), so a policy
//! compares `/app/.env` with what is opened, not with `/app/./x/../.env` or
//! `/app/%2e%65nv`. Agreement with a real file system is tested in
//! `policy-engine/tests/facts_path_fs.rs`.

use super::{refusal, too_long};
use percent_encoding::percent_decode_str;
use serde_json::{json, Value};

/// The longest path [`normalize`] reads, in bytes.
pub const MAX_PATH_BYTES: usize = 4 * 1024;

/// Normalises `text` lexically and returns the facts.
///
/// ```json
/// {"ok": true, "normalized": "/app/.env", "absolute": true, "was_normal": false,
///  "escapes_root": false, "still_encoded": false}
/// ```
///
/// Steps: percent-escapes are decoded once (`%2e` is `.`, `%2f` is `/`); then empty and
/// `.` segments are dropped (`//`, `/./`, a trailing `/`) and `..` removes the segment
/// before it.
///
/// - `normalized`: the result; `/` for the root, `.` for an empty relative path. A
///   relative path keeps the `..` it cannot resolve (`../x`).
/// - `absolute`: it starts with `/`.
/// - `was_normal`: the input was already exactly `normalized` (no escape, no `.`, `..`,
///   duplicate or trailing slash): a policy can refuse anything else.
/// - `escapes_root`: a `..` climbed above `/` (absolute; the result stays at `/`) or
///   above the starting directory (relative).
/// - `still_encoded`: after one decoding the path still holds a percent-escape
///   (`%252e` → `%2e`): a server that decodes twice opens something else.
///
/// Errors (`"ok": false`, `normalized` empty): an empty path, one over
/// [`MAX_PATH_BYTES`], one whose decoding is not UTF-8 or holds a NUL byte (which the
/// operating system would cut the path at).
pub fn normalize(text: &str) -> Value {
    if text.len() > MAX_PATH_BYTES {
        return refusal(too_long("path", text.len(), MAX_PATH_BYTES), empty());
    }
    if text.is_empty() {
        return refusal("the path is empty; send the path of a file", empty());
    }
    let decoded = match percent_decode_str(text).decode_utf8() {
        Ok(decoded) => decoded,
        Err(_) => {
            let why = "the path's percent-escapes decode to bytes that are not UTF-8; send the path as text";
            return refusal(why, empty());
        }
    };
    if decoded.contains('\0') {
        return refusal(
            "the path holds a NUL byte, where a file system would cut it",
            empty(),
        );
    }
    let absolute = decoded.starts_with('/');
    let (segments, escapes_root) = resolve(&decoded, absolute);
    let joined = segments.join("/");
    let normalized = match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    };
    json!({
        "ok": true,
        "normalized": normalized,
        "absolute": absolute,
        "was_normal": normalized == text,
        "escapes_root": escapes_root,
        "still_encoded": has_escape(&normalized),
    })
}

fn empty() -> Value {
    json!({"normalized": "", "absolute": false, "was_normal": false, "escapes_root": false, "still_encoded": false})
}

/// The segments left after `.`, empty segments and `..` are applied, and whether a `..`
/// went above the start.
fn resolve(path: &str, absolute: bool) -> (Vec<&str>, bool) {
    let mut segments: Vec<&str> = Vec::new();
    let mut escapes_root = false;
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => match segments.last() {
                Some(&last) if last != ".." => {
                    segments.pop();
                }
                _ => {
                    escapes_root = true;
                    if !absolute {
                        segments.push("..");
                    }
                }
            },
            name => segments.push(name),
        }
    }
    (segments, escapes_root)
}

/// Whether `text` holds `%` followed by two hex digits.
fn has_escape(text: &str) -> bool {
    text.as_bytes()
        .windows(3)
        .any(|w| w.first() == Some(&b'%') && w.iter().skip(1).all(u8::is_ascii_hexdigit))
}

#[cfg(test)]
#[path = "path_test.rs"]
mod tests;
