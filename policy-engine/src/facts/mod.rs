//! Parser-grade facts for policies: what a SQL text, a URL or a file path *means* to
//! the component that executes it, computed by the same kind of parser that component
//! uses, so a policy reasons about facts instead of matching strings.
//!
//! - [`sql::parse`]: every statement of a SQL text (`sqlparser`), its kind, the tables it
//!   reads and writes, whether an UPDATE/DELETE has a WHERE; [`sql::literal_spans`]: where
//!   the string and numeric literals are, for masking that must stay inside them.
//! - [`url::parse`]: a URL as the WHATWG URL Standard reads it (the `url` crate): scheme,
//!   host (IDNA, IP literals normalised), port, userinfo, and whether the input is
//!   canonical and unambiguous.
//! - [`path::normalize`]: a file path normalised lexically (`.`, `..`, duplicate slashes,
//!   percent-escapes), and whether it was already normal or climbs above its root.
//!
//! Every function is pure, total (no panics, whatever the input), bounded in input size
//! (over the bound the answer is an error value, never a long parse) and returns a
//! `serde_json::Value` whose shape is documented on the function and in `README.md`
//! beside this file. They fail closed: a text that does not parse is `"ok": false` with
//! the parser's error, and nothing in an error value says the text is safe.

pub mod path;
pub mod sql;
pub mod url;

use serde_json::{json, Value};

/// The error value every fact function returns for input it will not parse: `ok` false,
/// the reason, and the empty or false fields its callers read, so a policy that forgets to
/// check `ok` still sees no statement, no host and no normal path.
fn refusal(error: impl Into<String>, empty: Value) -> Value {
    let mut refused = json!({"ok": false, "error": error.into()});
    if let (Value::Object(fields), Value::Object(empty)) = (&mut refused, empty) {
        fields.extend(empty);
    }
    refused
}

/// The error for an input longer than `limit` bytes.
fn too_long(what: &str, len: usize, limit: usize) -> String {
    format!(
        "the {what} is {len} bytes, over the {limit}-byte limit of the parser; send a shorter one"
    )
}

#[cfg(test)]
mod proptest_test;
