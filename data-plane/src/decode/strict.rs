//! Strict JSON: one pass over the text that builds a `serde_json::Value` and refuses
//! whatever two JSON parsers could read differently.
//!
//! serde_json already refuses invalid syntax, `NaN`/`Infinity`, comments, trailing
//! commas, raw control characters and lone surrogate escapes. On top of it this visitor
//! refuses duplicate keys (after unescaping), keys that differ only in case, integers
//! beyond ±(2^53 − 1), and nesting deeper than the limit, before recursing further.

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::error::DecodeError;

/// serde_json refuses the 128th nested level itself; our limit stays below so that the
/// refusal is always ours, with our error.
pub(crate) const SERDE_JSON_MAX_DEPTH: usize = 127;

/// The largest integer every JSON parser reads exactly (I-JSON, RFC 7493 §2.2).
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Parses `text` as exactly one strict JSON value, nesting at most `max_depth` levels.
pub(crate) fn parse(text: &str, max_depth: usize) -> Result<Value, DecodeError> {
    let fault = Cell::new(None);
    let root = Path {
        parent: None,
        segment: Segment::Root,
    };
    let seed = StrictValue {
        max_depth: max_depth.min(SERDE_JSON_MAX_DEPTH),
        fault: &fault,
        path: &root,
        depth: 0,
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = seed.deserialize(&mut de).and_then(|value| {
        // Trailing data after the value would be a second message to some readers.
        de.end()?;
        Ok(value)
    });
    parsed.map_err(|err| fault.take().unwrap_or_else(|| from_serde(&err)))
}

/// Maps serde_json's own refusals to ours.
fn from_serde(err: &serde_json::Error) -> DecodeError {
    let text = err.to_string();
    let detail = match text.rfind(" at line ") {
        Some(cut) => &text[..cut],
        None => text.as_str(),
    };
    if detail == "recursion limit exceeded" {
        return DecodeError::TooDeep {
            limit: SERDE_JSON_MAX_DEPTH,
        };
    }
    DecodeError::Syntax {
        line: err.line(),
        column: err.column(),
        detail: detail.to_owned(),
    }
}

// === impl Path ===

/// Where a value sits, as a chain of borrowed segments up to the root: free to build,
/// turned into a JSON pointer only when a refusal needs it.
struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    segment: Segment<'a>,
}

enum Segment<'a> {
    Root,
    Key(&'a str),
    Index(usize),
}

impl Path<'_> {
    /// The RFC 6901 JSON pointer of this place (`""` for the root).
    fn pointer(&self) -> String {
        let mut segments = Vec::new();
        let mut at = Some(self);
        while let Some(path) = at {
            segments.push(&path.segment);
            at = path.parent;
        }
        let mut out = String::new();
        for segment in segments.iter().rev() {
            match segment {
                Segment::Root => {}
                Segment::Key(key) => {
                    out.push('/');
                    out.push_str(&key.replace('~', "~0").replace('/', "~1"));
                }
                Segment::Index(index) => {
                    out.push('/');
                    out.push_str(&index.to_string());
                }
            }
        }
        out
    }
}

// === impl StrictValue ===

/// The seed and visitor for one value at one place in the document.
#[derive(Clone, Copy)]
struct StrictValue<'a> {
    max_depth: usize,
    /// The first refusal, kept typed: serde's error type can only carry a message.
    fault: &'a Cell<Option<DecodeError>>,
    path: &'a Path<'a>,
    depth: usize,
}

impl<'a> StrictValue<'a> {
    fn refuse<E: de::Error>(&self, fault: DecodeError) -> E {
        let error = E::custom(&fault);
        self.fault.set(Some(fault));
        error
    }

    /// The depth of a container opened here, refused before anything inside is read.
    fn enter<E: de::Error>(&self) -> Result<usize, E> {
        let depth = self.depth + 1;
        if depth > self.max_depth {
            return Err(self.refuse(DecodeError::TooDeep {
                limit: self.max_depth,
            }));
        }
        Ok(depth)
    }

    fn child(&self, path: &'a Path<'a>, depth: usize) -> Self {
        Self {
            path,
            depth,
            ..*self
        }
    }

    fn out_of_range<E: de::Error>(&self, number: String) -> E {
        self.refuse(DecodeError::NumberOutOfRange {
            number,
            path: self.path.pointer(),
        })
    }
}

impl<'de> DeserializeSeed<'de> for StrictValue<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Value, E> {
        if n > MAX_SAFE_INTEGER {
            return Err(self.out_of_range(n.to_string()));
        }
        Ok(Value::Number(n.into()))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Value, E> {
        if n.unsigned_abs() > MAX_SAFE_INTEGER {
            return Err(self.out_of_range(n.to_string()));
        }
        Ok(Value::Number(n.into()))
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Value, E> {
        // An integer literal past u64 arrives here as a rounded double, so any integral
        // double past 2^53 is refused however it was written.
        if f.abs() > MAX_SAFE_INTEGER as f64 && f.fract() == 0.0 {
            return Err(self.out_of_range(f.to_string()));
        }
        match Number::from_f64(f) {
            Some(number) => Ok(Value::Number(number)),
            None => Err(self.out_of_range(f.to_string())),
        }
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let depth = self.enter()?;
        let mut items = Vec::new();
        loop {
            let path = Path {
                parent: Some(self.path),
                segment: Segment::Index(items.len()),
            };
            match seq.next_element_seed(self.child(&path, depth))? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let depth = self.enter()?;
        let mut map = Map::new();
        let mut folds = KeyFolds::default();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(self.refuse(DecodeError::DuplicateKey {
                    key,
                    path: self.path.pointer(),
                }));
            }
            if let Some(other) = folds.collision(&key, &map) {
                return Err(self.refuse(DecodeError::KeyCaseCollision {
                    key,
                    other,
                    path: self.path.pointer(),
                }));
            }
            let path = Path {
                parent: Some(self.path),
                segment: Segment::Key(&key),
            };
            let value = access.next_value_seed(self.child(&path, depth))?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

// === impl KeyFolds ===

/// Case-folded forms of the keys of one object that are not already their own fold.
///
/// Keys made of lowercase ASCII (nearly all keys) are their own fold and cost nothing:
/// the object itself is their index. Others are folded Unicode-wise (upper then lower,
/// so `ſ` meets `s` and the Kelvin sign meets `k`, as Go's `EqualFold` does).
#[derive(Default)]
struct KeyFolds {
    /// fold -> the key that produced it.
    folded: Option<HashMap<String, String>>,
}

impl KeyFolds {
    /// An earlier key of `object` that `key` equals ignoring case, if any.
    /// `key` itself is known not to be in `object` yet.
    fn collision(&mut self, key: &str, object: &Map<String, Value>) -> Option<String> {
        let is_own_fold = key.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase());
        if is_own_fold {
            return self.folded.as_ref()?.get(key).cloned();
        }
        let fold: String = key
            .chars()
            .flat_map(char::to_uppercase)
            .flat_map(char::to_lowercase)
            .collect();
        if fold != key && object.contains_key(&fold) {
            return Some(fold);
        }
        let folded = self.folded.get_or_insert_with(HashMap::new);
        if let Some(other) = folded.get(&fold) {
            return Some(other.clone());
        }
        folded.insert(fold, key.to_owned());
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested_arrays(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn decode_depth_limit_is_exact() {
        for max in [1, 2, 10, 64] {
            assert!(parse(&nested_arrays(max), max).is_ok(), "{max} levels");
            assert_eq!(
                parse(&nested_arrays(max + 1), max),
                Err(DecodeError::TooDeep { limit: max })
            );
        }
        assert_eq!(parse("1", 0), Ok(Value::from(1)));
        assert_eq!(parse("[]", 0), Err(DecodeError::TooDeep { limit: 0 }));
    }

    #[test]
    fn decode_depth_above_serde_json_guard_is_capped_to_ours() {
        let huge = usize::MAX;
        assert!(parse(&nested_arrays(SERDE_JSON_MAX_DEPTH), huge).is_ok());
        assert_eq!(
            parse(&nested_arrays(SERDE_JSON_MAX_DEPTH + 1), huge),
            Err(DecodeError::TooDeep {
                limit: SERDE_JSON_MAX_DEPTH
            })
        );
    }

    #[test]
    fn decode_any_value_may_stand_at_the_top() {
        assert_eq!(parse(" \"s\" ", 64), Ok(Value::from("s")));
        assert_eq!(parse("null", 64), Ok(Value::Null));
        assert_eq!(parse("-0.5", 64), Ok(Value::from(-0.5)));
    }

    #[test]
    fn decode_pointer_escapes_tilde_and_slash() {
        let root = Path {
            parent: None,
            segment: Segment::Root,
        };
        let key = Path {
            parent: Some(&root),
            segment: Segment::Key("a/b~c"),
        };
        let index = Path {
            parent: Some(&key),
            segment: Segment::Index(3),
        };
        assert_eq!(root.pointer(), "");
        assert_eq!(index.pointer(), "/a~1b~0c/3");
    }

    #[test]
    fn decode_case_collisions_are_found_in_either_order() {
        let pairs = [
            ("a", "A"),
            ("A", "a"),
            ("Ab", "aB"),
            ("é", "É"),
            ("k", "\u{212a}"),
            ("\u{212a}", "K"),
            ("s", "\u{17f}"),
        ];
        for (first, second) in pairs {
            let text = format!(r#"{{"{first}":1,"{second}":2}}"#);
            let refused = matches!(
                parse(&text, 8),
                Err(DecodeError::KeyCaseCollision { ref key, .. }) if key == second
            );
            assert!(refused, "{first} then {second}");
        }
        assert!(parse(r#"{"a":1,"b":2,"é":3,"e":4,"ab":5,"AC":6}"#, 8).is_ok());
    }

    #[test]
    fn decode_safe_integer_bounds_are_exact() {
        assert!(parse("9007199254740991", 1).is_ok());
        assert!(parse("-9007199254740991", 1).is_ok());
        assert!(parse("4503599627370495.5", 1).is_ok());
        for big in [
            "9007199254740992",
            "-9007199254740992",
            "9007199254740992.0",
            "1e300",
        ] {
            let refused = matches!(parse(big, 1), Err(DecodeError::NumberOutOfRange { .. }));
            assert!(refused, "{big}");
        }
    }
}
