//! PEM private keys (`-----BEGIN [RSA |EC |OPENSSH |ENCRYPTED |PGP ]PRIVATE KEY[ BLOCK]-----`).
//!
//! A redaction never reaches past what matched. A block is replaced whole only when
//! it parses as one: the BEGIN line, optional RFC 1421 headers (`Proc-Type: …`),
//! lines of base64 and nothing else, the matching END line, and a body that decodes
//! to at least 32 bytes shaped like a key (DER `SEQUENCE`, `openssh-key-v1`, an
//! OpenPGP packet, or anything under encryption headers). Anything else, and a
//! marker with no END line, masks the marker itself and the full-length base64
//! lines (64, 70 or 76 characters, all the same length) right after it, and
//! nothing more: an attacker once hid `\nDELETE FROM customers` from reviewers
//! behind an unterminated marker when masking ran to the end of the string.

use super::super::{Family, Span};
use base64::Engine;

const BEGIN: &str = "-----BEGIN ";
const DASHES: &str = "-----";
/// Longest label we read (`ENCRYPTED PRIVATE KEY`, `PGP PRIVATE KEY BLOCK`, …).
const MAX_LABEL: usize = 48;
/// A key's body decodes to at least this many bytes.
const MIN_KEY_BYTES: usize = 32;

/// Finds private keys in `text`.
pub(super) fn find(text: &str, rule: &'static str, out: &mut Vec<Span>) {
    let mut from = 0;
    while let Some(offset) = text[from..].find(BEGIN) {
        let start = from + offset;
        let label_start = start + BEGIN.len();
        let Some(label) = label_at(text, label_start) else {
            from = label_start;
            continue;
        };
        let marker_end = label_start + label.len() + DASHES.len();
        if !(label.ends_with("PRIVATE KEY") || label.ends_with("PRIVATE KEY BLOCK")) {
            from = marker_end;
            continue;
        }
        let end = whole_block(text, marker_end, label)
            .unwrap_or_else(|| marker_and_key_lines(text, marker_end));
        out.push(Span::new(start, end, Family::Secret, rule));
        from = end;
    }
}

/// The label of a marker (upper-case letters, digits, spaces) up to its dashes.
fn label_at(text: &str, at: usize) -> Option<&str> {
    let rest = text.get(at..)?;
    let len = rest
        .bytes()
        .take(MAX_LABEL)
        .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b' ')
        .count();
    rest[len..].starts_with(DASHES).then(|| &rest[..len])
}

fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')
}

/// The lines after `at`: each with its start and end (without `\r`), stopping at
/// the end of the text.
fn lines_after(text: &str, at: usize) -> impl Iterator<Item = (usize, &str)> {
    let mut pos = at;
    std::iter::from_fn(move || {
        let rest = text.get(pos..)?;
        let newline = if rest.starts_with("\r\n") {
            2
        } else if rest.starts_with('\n') {
            1
        } else {
            return None;
        };
        let start = pos + newline;
        let len = text[start..].find('\n').unwrap_or(text.len() - start);
        let line = text[start..start + len].trim_end_matches('\r');
        pos = start + line.len();
        Some((start, line))
    })
}

/// The end of the whole block when it parses as a key; `None` otherwise.
fn whole_block(text: &str, marker_end: usize, label: &str) -> Option<usize> {
    let mut body = String::new();
    let mut headers = false;
    let mut in_body = false;
    for (start, line) in lines_after(text, marker_end) {
        if let Some(rest) = line.strip_prefix("-----END ") {
            let valid = rest.strip_suffix(DASHES) == Some(label) && is_key(&body, headers);
            return valid.then_some(start + line.len());
        }
        let header = !in_body
            && line.split_once(": ").is_some_and(|(name, _)| {
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if header {
            headers = true;
        } else if line.is_empty() && !in_body {
            continue;
        } else if line.starts_with('=') && line.len() == 5 && in_body {
            continue; // OpenPGP armor checksum
        } else if !line.is_empty() && line.bytes().all(is_base64) {
            in_body = true;
            body.push_str(line);
        } else {
            return None;
        }
    }
    None
}

fn is_key(body: &str, encrypted: bool) -> bool {
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(body) else {
        return false;
    };
    bytes.len() >= MIN_KEY_BYTES
        && (encrypted
            || bytes[0] == 0x30
            || bytes.starts_with(b"openssh-key-v1\0")
            || bytes[0] & 0x80 != 0)
}

/// The marker and the base64 lines of a key's full line length right after it.
fn marker_and_key_lines(text: &str, marker_end: usize) -> usize {
    let mut end = marker_end;
    let mut width = None;
    for (start, line) in lines_after(text, marker_end) {
        let full = matches!(line.len(), 64 | 70 | 76) && width.is_none_or(|w| w == line.len());
        if !full || !line.bytes().all(is_base64) {
            break;
        }
        width = Some(line.len());
        end = start + line.len();
    }
    end
}
