//! US Social Security numbers in their written form `AAA-GG-SSSS` (or with single
//! spaces or dots, the same separator twice), valid by the SSA's rules: area 001–899
//! but not 666, group 01–99, serial 0001–9999.
//!
//! False-positive policy: nine digits without separators are not matched (zip+4
//! codes, ids and amounts look the same); the number must stand alone (no digit,
//! and no `-digit` or `digit-` chain, touching it), so dates (`2024-01-15`), phone
//! numbers (`555-123-4567`) and longer dashed ids stay.

use super::{Family, Span};

/// Finds SSNs in `text`.
pub(super) fn find(text: &str, out: &mut Vec<Span>) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i + 11 <= bytes.len() {
        if is_ssn_at(bytes, i) {
            out.push(Span::new(i, i + 11, Family::Ssn, "ssn"));
            i += 11;
        } else {
            i += 1;
        }
    }
}

fn digits(bytes: &[u8]) -> Option<u32> {
    bytes.iter().try_fold(0u32, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

fn is_ssn_at(bytes: &[u8], i: usize) -> bool {
    let w = &bytes[i..i + 11];
    let sep = w[3];
    if !matches!(sep, b'-' | b' ' | b'.') || w[6] != sep {
        return false;
    }
    let (Some(area), Some(group), Some(serial)) =
        (digits(&w[0..3]), digits(&w[4..6]), digits(&w[7..11]))
    else {
        return false;
    };
    let before_ok = i == 0
        || !(bytes[i - 1].is_ascii_digit()
            || (is_joiner(bytes[i - 1]) && i >= 2 && bytes[i - 2].is_ascii_digit()));
    let after = i + 11;
    let after_ok = after == bytes.len()
        || !(bytes[after].is_ascii_digit()
            || (is_joiner(bytes[after]) && bytes.get(after + 1).is_some_and(u8::is_ascii_digit)));
    before_ok && after_ok && (1..=899).contains(&area) && area != 666 && group != 0 && serial != 0
}

/// A character that chains digit groups into a longer number.
fn is_joiner(b: u8) -> bool {
    matches!(b, b'-' | b'.' | b'/')
}
