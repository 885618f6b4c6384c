//! Email addresses: `local@domain.tld`, local part of the usual unquoted characters,
//! a domain with at least one dot and an alphabetic top-level label of 2+ letters.
//! Quoted local parts and IP-literal domains are not detected (rare in tool output).
//! The address is bounded by the characters it may hold, so a letter or digit
//! touching it is part of it.

use super::{Family, Span};

fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_domain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')
}

/// Finds email addresses in `text`.
pub(super) fn find(text: &str, out: &mut Vec<Span>) {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(offset) = bytes[from..].iter().position(|&b| b == b'@') {
        let at = from + offset;
        from = at + 1;
        let mut start = at;
        while start > 0 && is_local(bytes[start - 1]) {
            start -= 1;
        }
        // A local part does not start with a dot.
        while start < at && bytes[start] == b'.' {
            start += 1;
        }
        let mut end = at + 1;
        while end < bytes.len() && is_domain(bytes[end]) {
            end += 1;
        }
        // A sentence may end right after the address.
        while end > at + 1 && matches!(bytes[end - 1], b'.' | b'-') {
            end -= 1;
        }
        if start == at || !valid_domain(&bytes[at + 1..end]) || in_url_authority(bytes, start) {
            continue;
        }
        out.push(Span::new(start, end, Family::Email, "email"));
        from = end;
    }
}

fn valid_domain(domain: &[u8]) -> bool {
    let Some(dot) = domain.iter().rposition(|&b| b == b'.') else {
        return false;
    };
    let tld = &domain[dot + 1..];
    dot > 0 && tld.len() >= 2 && tld.iter().all(u8::is_ascii_alphabetic)
}

/// Whether the would-be local part starts inside a URL's authority
/// (`scheme://user:password@host`): that is userinfo, not an address (the
/// `url_password` secret rule hides the password).
fn in_url_authority(bytes: &[u8], local_start: usize) -> bool {
    let token_start = bytes[..local_start]
        .iter()
        .rposition(|b| b.is_ascii_whitespace() || matches!(b, b'"' | b'\'' | b'<' | b'>' | b'('))
        .map_or(0, |i| i + 1);
    let token = &bytes[token_start..local_start];
    // After the last `://` of the word, and no `/` since: still in the authority.
    token
        .windows(3)
        .rposition(|w| w == b"://")
        .is_some_and(|i| !token[i + 3..].contains(&b'/'))
}
