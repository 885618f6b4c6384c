//! JSON held in text (MCP text content with rows), masked without parsing when that
//! gives the same result: the text holds no escape (so its bytes are the strings'
//! bytes), no secret-named member or resource blob (those need the structure), no
//! number in exponent form, and every match lies inside a string that is not a key
//! or is a whole number (a card held as a number, replaced by a quoted marker), and
//! no string holds JSON in turn. Any
//! other case is parsed and walked ([`super::walk`]). Parsing and writing back
//! cost as much as all the detectors together; most rows need neither.

use super::{secret, text, Family, MaskSet, Span};

/// What the raw rewrite found.
pub(super) enum Raw {
    /// Nothing to mask.
    Clean,
    /// The text, masked.
    Masked(String),
    /// The structure is needed: parse and walk.
    Parse,
}

/// The string contents (without quotes, with whether each is a key) and number
/// tokens of JSON text without escapes; `None` when a number is in exponent form,
/// a string starts like JSON, or a string is not closed.
struct Tokens {
    strings: Vec<(usize, usize, bool)>,
    numbers: Vec<(usize, usize)>,
}

fn tokens(bytes: &[u8]) -> Option<Tokens> {
    let mut strings = Vec::new();
    let mut numbers = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let end = i + 1 + bytes[i + 1..].iter().position(|&b| b == b'"')?;
                if matches!(bytes.get(i + 1), Some(b'{' | b'[')) {
                    return None; // JSON in a string in JSON: walked as a structure
                }
                let next = bytes[end + 1..].iter().find(|b| !b.is_ascii_whitespace());
                strings.push((i + 1, end, next == Some(&b':')));
                i = end + 1;
            }
            b'-' | b'0'..=b'9' => {
                let len = bytes[i..]
                    .iter()
                    .take_while(|b| {
                        b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E')
                    })
                    .count();
                if bytes[i..i + len].iter().any(|b| matches!(b, b'e' | b'E')) {
                    return None;
                }
                numbers.push((i, i + len));
                i += len;
            }
            _ => i += 1,
        }
    }
    Some(Tokens { strings, numbers })
}

/// Masks JSON text `text` in place when that is safe (see the module doc).
pub(super) fn rewrite(set: &MaskSet, text: &str) -> Raw {
    let bytes = text.as_bytes();
    if bytes.contains(&b'\\')
        || (set.has(Family::Secret) && secret::may_name_a_field(text))
        || text.contains("\"blob\"")
    {
        return Raw::Parse;
    }
    let Some(tokens) = tokens(bytes) else {
        return Raw::Parse;
    };
    let mut spans = text::spans(set, text);
    if spans.is_empty() {
        return Raw::Clean;
    }
    spans.sort_by_key(|s| (s.start, std::cmp::Reverse(s.end)));
    let merged = merge(spans);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for span in &merged {
        let quoted = if inside_value_string(&tokens, span) {
            false
        } else if tokens
            .numbers
            .binary_search(&(span.start, span.end))
            .is_ok()
        {
            true
        } else {
            return Raw::Parse;
        };
        out.push_str(&text[at..span.start]);
        if quoted {
            out.push('"');
        }
        text::push_replacement(&mut out, span, set.last_four);
        if quoted {
            out.push('"');
        }
        at = span.end;
    }
    out.push_str(&text[at..]);
    Raw::Masked(out)
}

/// Overlapping matches merged into the first one (as `text::rewrite` does).
fn merge(spans: Vec<Span>) -> Vec<Span> {
    let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
    for span in spans {
        match merged.last_mut() {
            Some(last) if span.start < last.end => last.end = last.end.max(span.end),
            _ => merged.push(span),
        }
    }
    merged
}

fn inside_value_string(tokens: &Tokens, span: &Span) -> bool {
    let i = tokens
        .strings
        .partition_point(|&(start, _, _)| start <= span.start);
    i.checked_sub(1)
        .and_then(|i| tokens.strings.get(i))
        .is_some_and(|&(start, end, key)| !key && start <= span.start && span.end <= end)
}
