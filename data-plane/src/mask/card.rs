//! Payment card numbers: 13–19 digits, optionally grouped by single spaces or dashes,
//! with a known issuer prefix and a valid Luhn check digit.
//!
//! False-positive policy: a digit run must stand alone (no letter or digit touching
//! it), pass Luhn, and start with an issuer prefix (Visa, Mastercard, Amex, Discover,
//! JCB, Diners, UnionPay). That leaves order ids, millisecond timestamps (`17…`),
//! phone numbers (too short), UUIDs and IPs alone; a 16-digit id that happens to pass
//! Luhn *and* starts like a card is masked: we prefer hiding an id to leaking a card.

use super::Span;

/// Finds card numbers in `text`; each span covers the digits and their separators.
pub(super) fn find(text: &str, out: &mut Vec<Span>) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts_run =
            bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric());
        if !starts_run {
            i += 1;
            continue;
        }
        let end = run_end(bytes, i);
        if end == bytes.len() || !bytes[end].is_ascii_alphanumeric() {
            if let Some((span_end, digits)) = best_match(bytes, i, end) {
                out.push(Span {
                    start: i,
                    end: span_end,
                    kind: super::Kind::CreditCard,
                    last_four: last_four(&digits),
                });
            }
        }
        i = end.max(i + 1);
    }
}

/// End of a run of digits joined by single spaces or dashes.
fn run_end(bytes: &[u8], start: usize) -> usize {
    let mut j = start;
    while j < bytes.len() {
        let separator = (bytes[j] == b' ' || bytes[j] == b'-')
            && bytes.get(j + 1).is_some_and(u8::is_ascii_digit);
        if !bytes[j].is_ascii_digit() && !separator {
            break;
        }
        j += 1;
    }
    j
}

/// The whole run when it is a card; otherwise the longest prefix that ends at a
/// separator and is one (a card followed by more numbers, e.g. `4111 … 1111 2024`).
fn best_match(bytes: &[u8], start: usize, end: usize) -> Option<(usize, Vec<u8>)> {
    let run = &bytes[start..end];
    let digits: Vec<u8> = run.iter().copied().filter(u8::is_ascii_digit).collect();
    if is_card(&digits) {
        return Some((end, digits));
    }
    if digits.len() <= 19 {
        return None;
    }
    let mut count = 0;
    let mut best = None;
    for (k, &b) in run.iter().enumerate() {
        if b.is_ascii_digit() {
            count += 1;
            if count > 19 {
                break;
            }
            let at_boundary = run.get(k + 1).is_some_and(|n| !n.is_ascii_digit());
            if at_boundary && is_card(&digits[..count]) {
                best = Some((start + k + 1, digits[..count].to_vec()));
            }
        }
    }
    best
}

fn last_four(digits: &[u8]) -> String {
    let from = digits.len().saturating_sub(4);
    digits[from..].iter().map(|&d| d as char).collect()
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

/// Issuer identification prefixes of the major networks.
fn has_issuer_prefix(digits: &[u8]) -> bool {
    let p1 = prefix(digits, 1);
    let p2 = prefix(digits, 2);
    let p3 = prefix(digits, 3);
    let p4 = prefix(digits, 4);
    p1 == 4 // Visa
        || (51..=55).contains(&p2) || (2221..=2720).contains(&p4) // Mastercard
        || p2 == 34 || p2 == 37 // Amex
        || p4 == 6011 || p2 == 65 || (644..=649).contains(&p3) // Discover
        || p2 == 35 // JCB
        || p2 == 36 || p2 == 38 || (300..=305).contains(&p3) // Diners
        || p2 == 62 // UnionPay
}
