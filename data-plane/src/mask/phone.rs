//! Phone numbers that libphonenumber's metadata (through the `phonenumber` crate)
//! says are valid: in international form (`+44 20 7946 0958`, `+1-415-555-2671`,
//! `+44 (0)20 …`), and North American numbers written `(415) 555-2671`,
//! `415-555-2671`, `415.555.2671` or `1-800-…` (checked as `+1`).
//!
//! Why not `phonenumber::parse` + `is_valid` on each candidate: it costs 3–20 µs a
//! number (normalisation regexes, a mutex-guarded regex cache), so a result with a
//! dozen numbers alone would blow the proxy's masking budget (25 µs per 2 KiB). This
//! module finds candidates by hand and checks them against the same metadata: the
//! country calling code must exist, and the national number must match the
//! region's general pattern and the pattern (and a possible length) of one number
//! type (fixed line, mobile, toll free, …), as `isValidNumber` does; the patterns
//! are compiled once per region, on first use of a calling code.
//!
//! False-positive policy: numbers without a `+` are too ambiguous outside North
//! America (national formats need a region), so only the NANP shapes above are read
//! without one; fictional numbers (`555-0100`) and numbers of impossible length are
//! not valid and stay. A candidate bounded by digits or chained to more digit groups
//! by `-`, `.` or `/` (dates, dashed ids) is not a phone number.

use super::{Family, Span};
use phonenumber::metadata::DATABASE;
use regex::Regex;
use std::sync::{LazyLock, OnceLock};

/// E.164: at most 15 digits, country code included.
const MAX_DIGITS: usize = 15;

/// One region's valid national numbers: the general pattern, and the union of the
/// number types' patterns (fixed line, mobile, toll free, …) with their possible
/// lengths: a number is valid when it matches the general pattern and a type, as in
/// libphonenumber's `isValidNumber` (one regex for all types: a type's pattern
/// fixes its lengths but for a few regions, where the union of lengths is used).
struct Region {
    general: Regex,
    types: Regex,
    /// Possible lengths of any type; empty when one type does not say.
    lengths: Vec<u16>,
}

impl Region {
    fn is_valid(&self, national: &str) -> bool {
        let len = national.len() as u16;
        (self.lengths.is_empty() || self.lengths.contains(&len))
            && self.general.is_match(national)
            && self.types.is_match(national)
    }
}

/// Regions by calling code (1–999), loaded on first use of each code.
static CODES: LazyLock<Vec<OnceLock<Vec<Region>>>> =
    LazyLock::new(|| (0..1000).map(|_| OnceLock::new()).collect());

fn regions(code: usize) -> &'static [Region] {
    CODES
        .get(code)
        .map(|cell| cell.get_or_init(|| load(code)).as_slice())
        .unwrap_or_default()
}

fn load(code: usize) -> Vec<Region> {
    let Ok(code) = u16::try_from(code) else {
        return Vec::new();
    };
    let Some(metadata) = DATABASE.by_code(&code) else {
        return Vec::new();
    };
    metadata
        .iter()
        .filter_map(|m| region(m.descriptors()))
        .collect()
}

fn region(descriptors: &phonenumber::metadata::Descriptors) -> Option<Region> {
    let types: Vec<&phonenumber::metadata::Descriptor> = [
        descriptors.premium_rate(),
        descriptors.toll_free(),
        descriptors.shared_cost(),
        descriptors.voip(),
        descriptors.personal_number(),
        descriptors.pager(),
        descriptors.uan(),
        descriptors.voicemail(),
        descriptors.fixed_line(),
        descriptors.mobile(),
    ]
    .into_iter()
    .flatten()
    .collect();
    if types.is_empty() {
        return None;
    }
    let mut lengths: Vec<u16> = types
        .iter()
        .flat_map(|d| d.possible_length().to_vec())
        .collect();
    if types.iter().any(|d| d.possible_length().is_empty()) {
        lengths.clear();
    }
    let union: Vec<String> = types
        .iter()
        .map(|d| format!("(?:{})", d.national_number().as_str()))
        .collect();
    Some(Region {
        general: full_match(descriptors.general().national_number().as_str())?,
        types: full_match(&union.join("|"))?,
        lengths,
    })
}

/// `pattern` as a whole-string regex (the metadata lays patterns out over several
/// lines, hence `ignore_whitespace`).
fn full_match(pattern: &str) -> Option<Regex> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .ignore_whitespace(true)
        .unicode(false)
        .build()
        .ok()
}

/// Loads the metadata and compiles the patterns of the commonest codes, so the
/// first request pays nothing (the metadata takes ~80 ms to load).
pub(super) fn warm_up() -> bool {
    [1, 44, 49, 33, 31, 353, 34, 39, 61, 91]
        .iter()
        .all(|&code| !regions(code).is_empty())
}

/// Whether `digits` (country code first) is a valid number.
fn is_valid(digits: &[u8]) -> bool {
    for code_len in 1..=3.min(digits.len()) {
        let code = digits[..code_len]
            .iter()
            .fold(0usize, |acc, d| acc * 10 + usize::from(d - b'0'));
        let regions = regions(code);
        if regions.is_empty() {
            continue; // calling codes are prefix-free: at most one length exists
        }
        let national = &digits[code_len..];
        let trunk_dropped = national.strip_prefix(b"0").unwrap_or(national);
        return [national, trunk_dropped]
            .iter()
            .any(|n| region_match(regions, n));
    }
    false
}

fn region_match(regions: &[Region], national: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(national) else {
        return false;
    };
    regions.iter().any(|r| r.is_valid(text))
}

/// Finds phone numbers in `text`.
pub(super) fn find(text: &str, out: &mut Vec<Span>) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let found = if bytes[i] == b'+' {
            international(bytes, i)
        } else if bytes[i] == b'(' || bytes[i].is_ascii_digit() {
            north_american(bytes, i)
        } else {
            None
        };
        match found {
            Some(end) => {
                out.push(Span::new(i, end, Family::Phone, "phone"));
                i = end;
            }
            None => i += skip(bytes, i),
        }
    }
}

/// How far to move when nothing starts at `i`: past a whole digit run, so a number
/// is only ever read from its first digit.
fn skip(bytes: &[u8], i: usize) -> usize {
    if !bytes[i].is_ascii_digit() {
        return 1;
    }
    bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count()
}

fn standalone_before(bytes: &[u8], i: usize) -> bool {
    i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || matches!(bytes[i - 1], b'+' | b'/'))
}

fn standalone_after(bytes: &[u8], end: usize) -> bool {
    match bytes.get(end) {
        None => true,
        Some(b) if b.is_ascii_digit() => false,
        Some(b'-' | b'.' | b'/') => !bytes.get(end + 1).is_some_and(u8::is_ascii_digit),
        Some(_) => true,
    }
}

/// `+` then digit groups joined by one space, dash or dot, a group possibly in
/// parentheses (`+44 (0)20 …`); the longest valid prefix ending at a group end.
fn international(bytes: &[u8], plus: usize) -> Option<usize> {
    if !standalone_before(bytes, plus) || !bytes.get(plus + 1).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let mut digits = Vec::with_capacity(MAX_DIGITS + 1);
    let mut ends = Vec::new(); // (byte end, digit count)
    let mut at = plus + 1;
    while digits.len() <= MAX_DIGITS {
        let paren = bytes.get(at) == Some(&b'(');
        let group = at + usize::from(paren);
        let n = bytes[group.min(bytes.len())..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if n == 0 || (paren && bytes.get(group + n) != Some(&b')')) {
            break;
        }
        digits.extend_from_slice(&bytes[group..group + n]);
        at = group + n + usize::from(paren);
        ends.push((at, digits.len()));
        let joined = match bytes.get(at) {
            Some(b' ' | b'-' | b'.') => {
                matches!(bytes.get(at + 1), Some(b) if b.is_ascii_digit() || *b == b'(')
            }
            Some(b) => paren && b.is_ascii_digit(),
            None => false,
        };
        if !joined {
            break;
        }
        if !(paren && bytes[at].is_ascii_digit()) {
            at += 1;
        }
    }
    ends.into_iter()
        .rev()
        .filter(|&(end, n)| n <= MAX_DIGITS && standalone_after(bytes, end))
        .find(|&(_, n)| is_valid(&digits[..n]))
        .map(|(end, _)| end)
}

/// `(415) 555-2671`, `415-555-2671`, `415.555.2671`, optionally `1-` first.
fn north_american(bytes: &[u8], start: usize) -> Option<usize> {
    if !standalone_before(bytes, start) {
        return None;
    }
    let (digits, end) = nanp_shape(bytes, start)?;
    if !standalone_after(bytes, end) {
        return None;
    }
    let mut full = Vec::with_capacity(11);
    full.push(b'1');
    full.extend_from_slice(&digits);
    is_valid(&full).then_some(end)
}

/// The ten digits of a NANP-shaped number at `start` and its end.
fn nanp_shape(bytes: &[u8], start: usize) -> Option<([u8; 10], usize)> {
    let mut at = start;
    // An optional trunk `1` and separator: `1-800-555-0199`.
    if bytes.get(at) == Some(&b'1')
        && bytes
            .get(at + 1)
            .is_some_and(|&b| matches!(b, b'-' | b'.' | b' '))
    {
        at += 2;
    }
    let mut digits = [0u8; 10];
    let separator;
    if bytes.get(at) == Some(&b'(') {
        take_digits(bytes, at + 1, &mut digits[..3])?;
        if bytes.get(at + 4) != Some(&b')') {
            return None;
        }
        at += 5;
        if bytes.get(at) == Some(&b' ') {
            at += 1;
        }
        separator = b'-';
    } else {
        take_digits(bytes, at, &mut digits[..3])?;
        separator = *bytes.get(at + 3).filter(|b| matches!(b, b'-' | b'.'))?;
        at += 4;
    }
    take_digits(bytes, at, &mut digits[3..6])?;
    if bytes.get(at + 3) != Some(&separator) {
        return None;
    }
    take_digits(bytes, at + 4, &mut digits[6..])?;
    Some((digits, at + 8))
}

fn take_digits(bytes: &[u8], at: usize, into: &mut [u8]) -> Option<()> {
    let source = bytes.get(at..at + into.len())?;
    if !source.iter().all(u8::is_ascii_digit) {
        return None;
    }
    into.copy_from_slice(source);
    Some(())
}

/// How many regions of `code` compiled (tests check that none was dropped).
#[cfg(test)]
pub(super) fn loaded_regions(code: usize) -> usize {
    regions(code).len()
}
