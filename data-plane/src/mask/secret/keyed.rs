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
use regex::Regex;
use std::sync::LazyLock;

/// A key (group 1), an optional closing quote, the separator (group 2) and spaces.
static KEY: LazyLock<Result<Regex, regex::Error>> =
    LazyLock::new(|| Regex::new(r#"([A-Za-z_][A-Za-z0-9_.-]{0,63})["']?[ \t]*(:=|=>|[:=])[ \t]*"#));

/// Finds secret values after secret-named keys in `text`.
pub(super) fn find(text: &str, rule: &'static str, out: &mut Vec<Span>) {
    let Ok(key) = KEY.as_ref() else {
        return;
    };
    for captures in key.captures_iter(text) {
        let (Some(name), Some(separator), Some(whole)) =
            (captures.get(1), captures.get(2), captures.get(0))
        else {
            continue;
        };
        let lower = name.as_str().to_ascii_lowercase();
        if !is_secret_name(&lower) || lower.replace(['_', '-'], "").ends_with("authorization") {
            continue;
        }
        // A YAML value runs to the end of its line; a `key=value` one to a space.
        let whole_line = separator.as_str() == ":" && starts_line(text, name.start());
        let Some((start, end)) = value_span(text, whole.end(), whole_line) else {
            continue;
        };
        let value = &text[start..end];
        if accepted(&lower, value) {
            out.push(Span::new(start, end, Family::Secret, rule));
        }
    }
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
