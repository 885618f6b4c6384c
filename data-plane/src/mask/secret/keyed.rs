//! Values of secret-named keys in text: YAML (`password: hunter2`), `.env` and shell
//! (`DB_PASSWORD=…`, `export API_TOKEN="…"`), `key=value` and query strings
//! (`?token=…&`), TOML/INI (`api_key = '…'`) and JSON that did not parse
//! (`"client_secret": "…"`). Only the value is replaced; the key stays readable.
//!
//! Where a value ends: at its closing quote when quoted (on the same line); for a
//! YAML `key: value` starting its line, at the end of the line, less a trailing
//! ` # comment`; elsewhere (`.env`, `key=value`) at the first space or delimiter
//! (`,;&<>()[]{}` and quotes). A value never runs past its line.
//!
//! False-positive policy: the key must end in a secret word (see
//! [`super::is_secret_name`]; `Authorization` headers are left to the `Bearer` and
//! `Basic` rules); placeholders (`${VAR}`, `<token>`, `***`, `true`, `YOUR_API_KEY`)
//! stay; under a password-like key any value of 3+ characters is a secret, under the
//! others (token, secret, key) only one of 8+ characters with a digit, a letter and
//! at least 3 bits of entropy per character (`token: required` stays).

use super::super::{Family, Span};
use super::{entropy, is_password_name, is_placeholder, is_secret_name};

/// Longest key name read back from a separator.
const MAX_KEY: usize = 64;

/// Finds secret values after secret-named keys in `text`: each `:` or `=` is a
/// possible separator (`:=` and `=>` too); the key is the name right before it
/// (letters, digits, `_.-`, optionally closed by a quote). No regex: a text full of
/// `key: value` lines is read in one pass.
pub(super) fn find(text: &str, rule: &'static str, out: &mut Vec<Span>) {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(offset) = bytes[from..].iter().position(|&b| b == b':' || b == b'=') {
        let at = from + offset;
        from = at + 1;
        if at > 0 && matches!(bytes[at - 1], b':' | b'=') {
            continue; // the second character of `::`, `==`, `:=`
        }
        let Some((key_start, key_end)) = key_before(bytes, at) else {
            continue;
        };
        let key = &text[key_start..key_end];
        if !is_secret_name(key)
            || key
                .to_ascii_lowercase()
                .replace(['_', '-'], "")
                .ends_with("authorization")
        {
            continue;
        }
        let mut value_at = at + 1;
        if bytes
            .get(value_at)
            .is_some_and(|&b| b == b'=' || (b == b'>' && bytes[at] == b'='))
        {
            value_at += 1; // `:=`, `=>`
        }
        while bytes
            .get(value_at)
            .is_some_and(|&b| b == b' ' || b == b'\t')
        {
            value_at += 1;
        }
        // A YAML value runs to the end of its line; a `key=value` one to a space.
        let yaml = bytes[at] == b':' && bytes.get(at + 1) != Some(&b'=');
        let whole_line = yaml && starts_line(text, key_start);
        let Some((start, end)) = value_span(text, value_at, whole_line) else {
            continue;
        };
        if accepted(key, &text[start..end]) {
            out.push(Span::new(start, end, Family::Secret, rule));
            from = from.max(end);
        }
    }
}

/// The key name ending right before the separator at `at` (spaces and one closing
/// quote allowed between): its byte range.
fn key_before(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
    let mut end = at;
    while end > 0 && matches!(bytes[end - 1], b' ' | b'\t') {
        end -= 1;
    }
    if end > 0 && matches!(bytes[end - 1], b'"' | b'\'') {
        end -= 1;
    }
    let mut start = end;
    while start > 0
        && end - start < MAX_KEY
        && (bytes[start - 1].is_ascii_alphanumeric()
            || matches!(bytes[start - 1], b'_' | b'.' | b'-'))
    {
        start -= 1;
    }
    (start < end).then_some((start, end))
}

fn accepted(key: &str, value: &str) -> bool {
    if is_placeholder(value) {
        return false;
    }
    if is_password_name(key) {
        return value.len() >= 3;
    }
    value.len() >= 8
        && value.bytes().any(|b| b.is_ascii_digit())
        && value.bytes().any(|b| b.is_ascii_alphabetic())
        && entropy(value) >= 3.0
}

/// Whether only indentation, `export ` or a YAML `- ` precede the key on its line.
fn starts_line(text: &str, key_start: usize) -> bool {
    let line_start = text[..key_start].rfind('\n').map_or(0, |i| i + 1);
    let lead = text[line_start..key_start].trim_start_matches([' ', '\t']);
    let lead = lead.strip_prefix("- ").unwrap_or(lead);
    let lead = lead.strip_prefix("export ").unwrap_or(lead);
    lead.is_empty()
}

/// The byte range of the value starting at `at`.
fn value_span(text: &str, at: usize, whole_line: bool) -> Option<(usize, usize)> {
    let rest = &text[at..];
    let line_end = rest.find(['\n', '\r']).map_or(text.len(), |i| at + i);
    let first = rest.chars().next()?;
    if first == '"' || first == '\'' {
        let close = text[at + 1..line_end].find(first)?;
        return Some((at + 1, at + 1 + close));
    }
    let end = if whole_line {
        let line = &text[at..line_end];
        let line = line.find(" #").map_or(line, |i| &line[..i]);
        at + line.trim_end().len()
    } else {
        text[at..line_end]
            .find(|c: char| c.is_whitespace() || ",;&<>()[]{}\"'`".contains(c))
            .map_or(line_end, |i| at + i)
    };
    (end > at).then_some((at, end))
}
