//! Payment card numbers: 13–19 digits, written together or in groups joined by single
//! spaces, dashes or dots, with a known issuer prefix and a valid Luhn check digit;
//! and JSON numbers that are such a card.
//!
//! A card is bounded by non-digits, not by word boundaries: `x4111111111111111y` is
//! a card (a letter touching the digits must not hide one). Within a run of grouped
//! digits every window of whole groups is tried, so neither a number before
//! (`1 4111 1111 1111 1111`) nor one after (`… 1111 2024`) hides a card. Groups but
//! the last are at least 3 digits long (`4 1 1 1 …` is a list of small numbers, not
//! a card; `4000 0000 0000 6` is a 13-digit card).
//!
//! False-positive policy: Luhn and an issuer prefix are required, which leaves order
//! ids, millisecond timestamps (`17…`), UUIDs, IPs and versions alone; digits inside
//! a hash-length hex string (32, 40, 64 or 128 hex characters with a letter: MD5,
//! git SHA-1, SHA-256, SHA-512) are part of the hash. A 16-digit id that passes Luhn
//! *and* starts like a card is masked: we prefer hiding an id to leaking a card.

use super::{Family, Span};

/// Shortest group of a grouped card but its last (`4111 1111 …`; Amex `3782 822463 10005`).
const MIN_GROUP: usize = 3;

/// Finds card numbers in `text`; each span covers the digits and their separators.
pub(super) fn find(text: &str, out: &mut Vec<Span>) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        // Most runs (dates, amounts, ids) have too few digits: measured first,
        // without collecting anything.
        let (end, digits) = run_extent(bytes, i);
        if digits >= 13 {
            scan_run(bytes, &run_groups(bytes, i), out);
        }
        i = end;
    }
}

/// The end of the run starting at `start` and how many digits it holds.
fn run_extent(bytes: &[u8], start: usize) -> (usize, usize) {
    let mut at = start;
    let mut digits = 0;
    while at < bytes.len() {
        if bytes[at].is_ascii_digit() {
            digits += 1;
        } else if !(is_separator(bytes[at]) && bytes.get(at + 1).is_some_and(u8::is_ascii_digit)) {
            break;
        }
        at += 1;
    }
    (at, digits)
}

fn is_separator(b: u8) -> bool {
    matches!(b, b' ' | b'-' | b'.')
}

/// The digit groups of the run starting at `start`: maximal digit runs joined by one
/// separator each. Byte ranges.
fn run_groups(bytes: &[u8], start: usize) -> Vec<(usize, usize)> {
    let mut groups = Vec::new();
    let mut at = start;
    loop {
        let mut end = at;
        while end < bytes.len() && bytes[end].is_ascii_digit() {
            end += 1;
        }
        groups.push((at, end));
        let joined =
            end + 1 < bytes.len() && is_separator(bytes[end]) && bytes[end + 1].is_ascii_digit();
        if !joined {
            return groups;
        }
        at = end + 1;
    }
}

/// Every window of whole groups, leftmost first, longest card at each start.
fn scan_run(bytes: &[u8], groups: &[(usize, usize)], out: &mut Vec<Span>) {
    let mut first = 0;
    while first < groups.len() {
        match card_from(bytes, &groups[first..]) {
            Some((span, used)) => {
                out.push(span);
                first += used;
            }
            None => first += 1,
        }
    }
}

/// The longest card made of `groups[0..n]`, and `n`.
fn card_from(bytes: &[u8], groups: &[(usize, usize)]) -> Option<(Span, usize)> {
    let mut digits = [0u8; 19];
    let mut len = 0;
    let mut best = None;
    for (n, &(start, end)) in groups.iter().enumerate() {
        let Some(slot) = digits.get_mut(len..len + (end - start)) else {
            break; // more than 19 digits
        };
        slot.copy_from_slice(&bytes[start..end]);
        len += end - start;
        if is_card(&digits[..len]) {
            best = Some((n + 1, end, last_four(&digits[..len])));
        }
        if end - start < MIN_GROUP {
            break; // only the last group may be short (`4000 0000 0000 6`)
        }
    }
    let (used, end, last_four) = best?;
    let start = groups[0].0;
    if inside_hash(bytes, start, end) {
        return None;
    }
    Some((
        Span {
            start,
            end,
            family: Family::CreditCard,
            rule: "credit_card",
            last_four: Some(last_four),
        },
        used,
    ))
}

/// Whether `start..end` lies in a hex string of a hash's length holding a letter.
fn inside_hash(bytes: &[u8], start: usize, end: usize) -> bool {
    let mut from = start;
    while from > 0 && bytes[from - 1].is_ascii_hexdigit() {
        from -= 1;
    }
    let mut to = end;
    while to < bytes.len() && bytes[to].is_ascii_hexdigit() {
        to += 1;
    }
    let token = &bytes[from..to];
    matches!(token.len(), 32 | 40 | 64 | 128) && token.iter().any(u8::is_ascii_alphabetic)
}

fn last_four(digits: &[u8]) -> [u8; 4] {
    let mut out = [b'0'; 4];
    out.copy_from_slice(&digits[digits.len() - 4..]);
    out
}

/// A JSON number that is a card: an integer (or a float with no fraction) of 13–19
/// digits, sign ignored. Returns its last four digits.
pub(super) fn number(value: &serde_json::Number) -> Option<[u8; 4]> {
    let magnitude = if let Some(u) = value.as_u64() {
        u
    } else if let Some(i) = value.as_i64() {
        i.unsigned_abs()
    } else {
        let f = value.as_f64()?.abs();
        if f.fract() != 0.0 || !(1e12..1e19).contains(&f) {
            return None;
        }
        f as u64
    };
    let digits = magnitude.to_string();
    is_card(digits.as_bytes()).then(|| last_four(digits.as_bytes()))
}

/// 13–19 ASCII digits, a known issuer prefix, and a valid Luhn check digit.
pub(super) fn is_card(digits: &[u8]) -> bool {
    (13..=19).contains(&digits.len()) && has_issuer_prefix(digits) && luhn(digits)
}

/// The Luhn checksum over ASCII digits.
pub(super) fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, &d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

fn prefix(digits: &[u8], n: usize) -> u32 {
    digits
        .iter()
        .take(n)
        .fold(0, |acc, &d| acc * 10 + u32::from(d - b'0'))
}

/// Issuer identification prefixes of the networks in use.
fn has_issuer_prefix(digits: &[u8]) -> bool {
    let p1 = prefix(digits, 1);
    let p2 = prefix(digits, 2);
    let p3 = prefix(digits, 3);
    let p4 = prefix(digits, 4);
    p1 == 4 // Visa
        || (51..=55).contains(&p2) || (2221..=2720).contains(&p4) // Mastercard, incl. 2-series
        || p2 == 34 || p2 == 37 // Amex
        || p4 == 6011 || p2 == 65 || (644..=649).contains(&p3) // Discover
        || (3528..=3589).contains(&p4) // JCB
        || (300..=305).contains(&p3) || p4 == 3095 || p2 == 36 || p2 == 38 || p2 == 39 // Diners
        || p2 == 62 || p2 == 81 // UnionPay
        || p2 == 50 || (56..=58).contains(&p2) || p2 == 63 || p2 == 67 // Maestro
        || (2200..=2204).contains(&p4) // Mir
        || p2 == 60 || p2 == 82 // RuPay
}
