//! The canonical form of a held call: what an approval is bound to.
//!
//! Promise 5 (one approval, one payload) needs both planes to agree byte for byte on
//! what "the same call" is, whatever key order or whitespace the agent sent. The
//! canonical payload is the JSON object `{"method": M, "params": P}` where `P` is the
//! request's `params` without `_meta.progressToken` (a fresh token per retry must not
//! make an identical call look different; `_meta` disappears when that was its only
//! key). The JSON-RPC `id` and `jsonrpc` are left out for the same reason. It is
//! serialized compactly with object keys sorted by their UTF-8 bytes at every depth,
//! numbers as `serde_json` prints them, strings with `serde_json`'s escaping. The
//! approval covers the lower-case hex SHA-256 of those bytes.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The canonical bytes of a request with `method` and `params`.
pub fn canonical_payload(method: &str, params: &Value) -> String {
    let mut params = params.clone();
    if let Some(object) = params.as_object_mut() {
        let emptied = match object.get_mut("_meta").and_then(Value::as_object_mut) {
            Some(meta) => {
                meta.remove("progressToken");
                meta.is_empty()
            }
            None => false,
        };
        if emptied {
            object.remove("_meta");
        }
    }
    let mut document = Map::new();
    document.insert("method".to_owned(), Value::String(method.to_owned()));
    document.insert("params".to_owned(), params);
    let mut out = String::with_capacity(256);
    write_sorted(&Value::Object(document), &mut out);
    out
}

/// Lower-case hex SHA-256 of canonical bytes.
pub fn payload_sha256(canonical: &str) -> String {
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// Any JSON value in canonical form (keys sorted by their UTF-8 bytes at every
/// depth, no whitespace): what a pinned tool definition's digest covers.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::with_capacity(256);
    write_sorted(value, &mut out);
    out
}

/// Re-serializes `canonical` JSON text in canonical form; `None` when it is not JSON.
/// The control plane uses it to check that a payload it is given is canonical.
pub fn recanonicalize(text: &str) -> Option<String> {
    let value: Value = serde_json::from_str(text).ok()?;
    let mut out = String::with_capacity(text.len());
    write_sorted(&value, &mut out);
    Some(out)
}

fn write_sorted(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_sorted(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_sorted(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_whitespace_and_progress_token_do_not_change_the_payload() {
        let a: Value = serde_json::from_str(
            r#"{"name":"execute","arguments":{"sql":"INSERT 1","db":"x"},"_meta":{"progressToken":7}}"#,
        )
        .unwrap();
        let b: Value = serde_json::from_str(
            r#"{ "arguments" : {"db":"x", "sql":"INSERT 1"}, "_meta": {"progressToken": "other"}, "name":"execute" }"#,
        )
        .unwrap();
        let ca = canonical_payload("tools/call", &a);
        assert_eq!(ca, canonical_payload("tools/call", &b));
        assert_eq!(
            ca,
            r#"{"method":"tools/call","params":{"arguments":{"db":"x","sql":"INSERT 1"},"name":"execute"}}"#
        );
        assert_eq!(recanonicalize(&ca).as_deref(), Some(ca.as_str()));
    }

    #[test]
    fn a_different_argument_or_other_meta_changes_the_hash() {
        let base = json!({"name": "execute", "arguments": {"sql": "INSERT 1"}});
        let other = json!({"name": "execute", "arguments": {"sql": "INSERT 2"}});
        let meta = json!({"name": "execute", "arguments": {"sql": "INSERT 1"}, "_meta": {"x": 1}});
        let h = |v: &Value| payload_sha256(&canonical_payload("tools/call", v));
        assert_ne!(h(&base), h(&other));
        assert_ne!(h(&base), h(&meta));
        assert_eq!(h(&base).len(), 64);
    }
}
