//! IBANs (ISO 13616), in the electronic form (`DE89370400440532013000`) or the printed
//! one (groups of four joined by single spaces): a country code, two check digits and
//! the account number. Validation (the country's length and format, the mod-97
//! check) is the `iban_validate` crate's; this module only finds candidates.
//!
//! False-positive policy: mod-97 leaves about one random string in 97, and the
//! country's length and format rule out most of those; a candidate must start at a
//! word boundary (no letter or digit before it) and end at one.

use super::{Family, Span};

/// Longest IBAN (Saint Lucia has 32; the standard allows 34).
const MAX_LEN: usize = 34;

/// Finds IBANs in `text`.
pub(super) fn find(text: &str, out: &mut Vec<Span>) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i + 4 <= bytes.len() {
        let starts = bytes[i].is_ascii_uppercase()
            && bytes[i + 1].is_ascii_uppercase()
            && bytes[i + 2].is_ascii_digit()
            && bytes[i + 3].is_ascii_digit()
            && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric());
        if starts {
            if let Some(end) = longest_iban(text, i) {
                out.push(Span::new(i, end, Family::Iban, "iban"));
                i = end;
                continue;
            }
        }
        i += 1;
    }
}

/// The end of the longest valid IBAN starting at `start`: the whole alphanumeric run
/// (electronic form), or a run of space-joined groups of four cut at a group end
/// (printed form, which may be followed by another word).
fn longest_iban(text: &str, start: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut ends = Vec::new();
    let mut at = start;
    let mut count = 0;
    loop {
        let group_start = at;
        while at < bytes.len() && bytes[at].is_ascii_alphanumeric() && count <= MAX_LEN {
            at += 1;
            count += 1;
        }
        if count > MAX_LEN {
            break;
        }
        ends.push(at);
        let printed_group = at - group_start == 4;
        let joined = printed_group
            && at + 1 < bytes.len()
            && bytes[at] == b' '
            && bytes[at + 1].is_ascii_alphanumeric();
        if !joined {
            break;
        }
        at += 1;
    }
    ends.into_iter()
        .rev()
        .find(|&end| text[start..end].parse::<iban::Iban>().is_ok())
}
