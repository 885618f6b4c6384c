//! Secrets: AWS access key ids (`AKIA…`/`ASIA…` + 16 upper-case alphanumerics),
//! PEM private key blocks, bearer tokens, and the values of JSON fields whose name
//! says they hold a secret (`password`, `client_secret`, `apiKey`, `token`, ...).

use super::{Kind, Span};

const BEGIN: &str = "-----BEGIN ";
const PRIVATE_KEY_END: &str = "PRIVATE KEY-----";
/// Shortest bearer credential we consider a token; shorter words after "Bearer" are prose.
const MIN_BEARER_LEN: usize = 8;

/// Finds secrets in free text.
pub(super) fn find(text: &str, out: &mut Vec<Span>) {
    aws_keys(text.as_bytes(), out);
    private_keys(text, out);
    bearer_tokens(text.as_bytes(), out);
}

fn span(start: usize, end: usize) -> Span {
    Span {
        start,
        end,
        kind: Kind::Secret,
        last_four: String::new(),
    }
}

fn aws_keys(bytes: &[u8], out: &mut Vec<Span>) {
    let mut i = 0;
    while i + 20 <= bytes.len() {
        let head = &bytes[i..i + 4];
        let boundary = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        if boundary && (head == b"AKIA" || head == b"ASIA") {
            let body = &bytes[i + 4..i + 20];
            let tail_ok = bytes.get(i + 20).is_none_or(|b| !b.is_ascii_alphanumeric());
            if tail_ok
                && body
                    .iter()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            {
                out.push(span(i, i + 20));
                i += 20;
                continue;
            }
        }
        i += 1;
    }
}

/// `-----BEGIN … PRIVATE KEY-----` through the matching END line (or the end of the
/// text when it was cut off: half a key is still a secret).
fn private_keys(text: &str, out: &mut Vec<Span>) {
    let mut from = 0;
    while let Some(offset) = text[from..].find(BEGIN) {
        let start = from + offset;
        let label = start + BEGIN.len();
        let Some(p) = text[label..].find("-----") else {
            break;
        };
        let header_end = label + p + 5;
        let header = &text[start..header_end];
        if !header.ends_with(PRIVATE_KEY_END) {
            from = header_end;
            continue;
        }
        let end = match text[header_end..].find("-----END ") {
            Some(p) => {
                let end_line = header_end + p + 9;
                text[end_line..]
                    .find("-----")
                    .map_or(text.len(), |q| end_line + q + 5)
            }
            None => text.len(),
        };
        out.push(span(start, end));
        from = end;
    }
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

/// The credential after `Bearer ` (any case); the word itself stays readable.
fn bearer_tokens(bytes: &[u8], out: &mut Vec<Span>) {
    const WORD: &[u8] = b"bearer ";
    let mut i = 0;
    while i + WORD.len() < bytes.len() {
        let boundary = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        if boundary && bytes[i..i + WORD.len()].eq_ignore_ascii_case(WORD) {
            let start = i + WORD.len();
            let mut end = start;
            while end < bytes.len() && is_token(bytes[end]) {
                end += 1;
            }
            if end - start >= MIN_BEARER_LEN {
                out.push(span(start, end));
            }
            i = end.max(i + 1);
            continue;
        }
        i += 1;
    }
}

/// Whether a JSON field of this name holds a secret: the name, lower-cased without
/// `_` and `-`, ends with one of the secret words (`client_secret`, `apiKey`,
/// `X-Auth-Token`, `db_password`), so `max_tokens` or `token_count` stay readable.
pub(super) fn is_secret_field(name: &str) -> bool {
    const WORDS: &[&str] = &[
        "password",
        "passwd",
        "passphrase",
        "secret",
        "token",
        "apikey",
        "accesskey",
        "privatekey",
        "authorization",
        "credentials",
    ];
    if name.len() > 64 {
        return false;
    }
    let mut buf = [0u8; 64];
    let mut n = 0;
    for b in name.bytes() {
        if b != b'_' && b != b'-' {
            buf[n] = b.to_ascii_lowercase();
            n += 1;
        }
    }
    let normalized = &buf[..n];
    WORDS.iter().any(|w| normalized.ends_with(w.as_bytes()))
}
