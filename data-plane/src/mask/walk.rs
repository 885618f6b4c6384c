//! The JSON walk: every value of a message is scanned, except the JSON-RPC
//! envelope the client needs to match answers to requests.
//!
//! - Strings are masked as text ([`super::text`]); a string holding a JSON object
//!   or array is masked as JSON: in place when its raw bytes allow it
//!   ([`super::json_text`]), else parsed, walked (so a card held as a number inside
//!   MCP text content is found too) and written back compact when something changed.
//! - Numbers that are card numbers become strings.
//! - An object member named like a secret (`password`, `apiKey`) becomes
//!   `"[REDACTED:secret]"` whatever its type (unless null, a boolean or empty).
//! - Keys carrying data (`{"ada@example.com": …}`) are masked like text; two keys
//!   that mask alike stay apart (`[REDACTED:email] #2`).
//! - An embedded resource's `blob` is decoded when it is UTF-8 text, masked, and
//!   encoded again; image and audio `data` is binary and left alone.
//! - Envelope: the message's `jsonrpc`, `id` and `method`, and the `progressToken`
//!   of its `params` and `params._meta`.

use super::json_text::{self, Raw};
use super::{card, secret, text, Family, MaskSet};
use base64::Engine;
use serde_json::{Map, Value};

/// JSON held in a string held in JSON … is parsed this many levels deep; deeper,
/// it is scanned as plain text (still masked, never skipped).
const MAX_LEVEL: usize = 4;

/// Where an object sits: what of it is envelope.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// The message itself: `jsonrpc`, `id` and `method` are envelope.
    Message,
    /// Its `params`: `progressToken` is envelope, `_meta` is looked into.
    Params,
    /// `params._meta`: `progressToken` is envelope.
    Meta,
    /// Anything else: all data.
    Data,
}

impl Place {
    fn is_envelope(self, key: &str) -> bool {
        match self {
            Place::Message => matches!(key, "jsonrpc" | "id" | "method"),
            Place::Params | Place::Meta => key == "progressToken",
            Place::Data => false,
        }
    }
}

/// Whether a `decision.mask` pointer names the envelope (never masked).
pub(super) fn is_envelope_pointer(pointer: &str) -> bool {
    let head = pointer.split('/').nth(1).unwrap_or_default();
    pointer.is_empty()
        || matches!(head, "jsonrpc" | "id" | "method")
        || pointer == "/params/progressToken"
        || pointer == "/params/_meta/progressToken"
}

/// Masks a message, or each message of a batch.
pub(super) fn message(set: &MaskSet, value: &mut Value) -> usize {
    match value {
        Value::Object(map) => object(set, map, 0, Place::Message),
        Value::Array(items) => items.iter_mut().map(|item| message(set, item)).sum(),
        other => scan(set, other, 0),
    }
}

/// Masks any value found `level` strings deep.
fn scan(set: &MaskSet, value: &mut Value, level: usize) -> usize {
    match value {
        Value::String(s) => match text::mask(set, s, level) {
            Some(masked) => {
                *s = masked;
                1
            }
            None => 0,
        },
        Value::Number(n) if set.has(Family::CreditCard) => match card::number(n) {
            Some(last_four) => {
                *value = Value::String(text::card_replacement(Some(last_four), set.last_four));
                1
            }
            None => 0,
        },
        Value::Array(items) => items.iter_mut().map(|v| scan(set, v, level)).sum(),
        Value::Object(map) => object(set, map, level, Place::Data),
        _ => 0,
    }
}

fn object(set: &MaskSet, map: &mut Map<String, Value>, level: usize, place: Place) -> usize {
    let mut count = 0;
    let binary = if place == Place::Data {
        binary_member(set, map, level, &mut count)
    } else {
        None
    };
    for (key, value) in map.iter_mut() {
        if place.is_envelope(key) || binary == Some(key.as_str()) {
            continue;
        }
        if set.has(Family::Secret) && secret::is_secret_name(key) {
            if redactable(value) {
                *value = Value::String(Family::Secret.replacement().to_owned());
                count += 1;
            }
            continue;
        }
        count += match (place, key.as_str(), value) {
            (Place::Message, "params", Value::Object(params)) => {
                object(set, params, level, Place::Params)
            }
            (Place::Params, "_meta", Value::Object(meta)) => object(set, meta, level, Place::Meta),
            (_, _, value) => scan(set, value, level),
        };
    }
    if place != Place::Message {
        count += data_keys(set, map);
    }
    count
}

/// Null, booleans, empty strings and markers say nothing; anything else under a
/// secret name is replaced.
fn redactable(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(_) => false,
        Value::String(s) => !s.is_empty() && !s.starts_with("[REDACTED"),
        _ => true,
    }
}

/// The member holding base64 content, already handled here: a resource `blob`
/// (masked as text when it decodes to UTF-8) or image/audio `data` (binary).
fn binary_member(
    set: &MaskSet,
    map: &mut Map<String, Value>,
    level: usize,
    count: &mut usize,
) -> Option<&'static str> {
    if matches!(
        map.get("type").and_then(Value::as_str),
        Some("image" | "audio")
    ) {
        return Some("data");
    }
    let Some(Value::String(blob)) = map.get_mut("blob") else {
        return None;
    };
    let engine = &base64::engine::general_purpose::STANDARD;
    let Ok(decoded) = engine.decode(blob.as_bytes()) else {
        return None; // not base64: scanned as text like any string
    };
    let Ok(text) = String::from_utf8(decoded) else {
        return Some("blob"); // binary
    };
    if let Some(masked) = text::mask(set, &text, level + 1) {
        *blob = engine.encode(masked);
        *count += 1;
    }
    Some("blob")
}

/// Renames keys that carry data; `0` (and no work) when none does.
fn data_keys(set: &MaskSet, map: &mut Map<String, Value>) -> usize {
    let renames: Vec<(usize, String)> = map
        .keys()
        .enumerate()
        .filter_map(|(i, key)| text::mask_key(set, key).map(|masked| (i, masked)))
        .collect();
    if renames.is_empty() {
        return 0;
    }
    let renamed = renames.len();
    let old = std::mem::take(map);
    let mut renames = renames.into_iter().peekable();
    for (i, (key, value)) in old.into_iter().enumerate() {
        let key = match renames.next_if(|(at, _)| *at == i) {
            Some((_, masked)) => unique(map, masked),
            None => key,
        };
        map.insert(key, value);
    }
    renamed
}

/// `key`, or `key #2`, `key #3` … when taken.
fn unique(map: &Map<String, Value>, key: String) -> String {
    if !map.contains_key(&key) {
        return key;
    }
    (2..)
        .map(|n| format!("{key} #{n}"))
        .find(|candidate| !map.contains_key(candidate))
        .unwrap_or(key)
}

/// JSON held in text: `None` when `text` is not a JSON object or array (scan it as
/// text), `Some(None)` when it is and nothing in it matched, `Some(Some(masked))`.
pub(super) fn embedded(set: &MaskSet, text: &str, level: usize) -> Option<Option<String>> {
    let first = text.trim_start().as_bytes().first().copied();
    if level >= MAX_LEVEL || !matches!(first, Some(b'{' | b'[')) {
        return None;
    }
    match json_text::rewrite(set, text) {
        Raw::Clean => return Some(None),
        Raw::Masked(masked) => return Some(Some(masked)),
        Raw::Parse => {}
    }
    if !text::may_match(set, text) {
        return Some(None);
    }
    let mut inner: Value = serde_json::from_str(text).ok()?;
    if scan(set, &mut inner, level + 1) == 0 {
        return Some(None);
    }
    serde_json::to_string(&inner).ok().map(Some)
}

/// Masks `value` as data (no envelope), parsing JSON held in its strings as usual.
#[cfg(test)]
pub(super) fn scan_data(set: &MaskSet, value: &mut Value) -> usize {
    scan(set, value, 1)
}
