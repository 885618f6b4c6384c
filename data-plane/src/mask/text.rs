//! One string: which detectors run on it (cheap byte checks first), and the
//! rewrite that replaces exactly the matched bytes.

use super::{card, email, iban, phone, secret, ssn, walk, Family, MaskSet, Span};

/// Text shorter than this holds nothing a detector finds (`a@b.co` has 6 bytes).
pub(super) const MIN_TEXT: usize = 6;

/// Masks `text` (found `level` strings deep in JSON held in strings); `None` when
/// nothing matched.
pub(super) fn mask(set: &MaskSet, text: &str, level: usize) -> Option<String> {
    if text.len() < MIN_TEXT {
        return None;
    }
    if let Some(json) = walk::embedded(set, text, level) {
        return json;
    }
    let spans = spans(set, text);
    if spans.is_empty() {
        return None;
    }
    Some(rewrite(set, text, spans))
}

/// Masks an object key: the detectors only (a key is not parsed as JSON).
pub(super) fn mask_key(set: &MaskSet, key: &str) -> Option<String> {
    if key.len() < MIN_TEXT {
        return None;
    }
    let spans = spans(set, key);
    (!spans.is_empty()).then(|| rewrite(set, key, spans))
}

fn digit_count(text: &str) -> usize {
    text.bytes().filter(u8::is_ascii_digit).count()
}

/// Every match of the set's detectors in `text`, unordered.
pub(super) fn spans(set: &MaskSet, text: &str) -> Vec<Span> {
    let mut out = Vec::new();
    let digits = digit_count(text);
    if set.has(Family::CreditCard) && digits >= 13 {
        card::find(text, &mut out);
    }
    if set.has(Family::Iban) && digits >= 2 {
        iban::find(text, &mut out);
    }
    if set.has(Family::Ssn) && digits >= 9 {
        ssn::find(text, &mut out);
    }
    if set.has(Family::Phone) && digits >= 7 {
        phone::find(text, &mut out);
    }
    if set.has(Family::Email) && text.as_bytes().contains(&b'@') {
        email::find(text, &mut out);
    }
    if set.has(Family::Secret) && secret::find(text, &mut out).is_err() {
        // The rules did not compile: hide the whole text rather than leak it.
        out.push(Span::new(
            0,
            text.len(),
            Family::Secret,
            "rules_unavailable",
        ));
    }
    out
}

/// Whether any detector of the set could match something in JSON text `text`,
/// judged on the raw text: an escape (`\u0040`) may hide what it decodes to, so
/// any `\u` counts as a possible match.
pub(super) fn may_match(set: &MaskSet, text: &str) -> bool {
    let needs_digits = set.has(Family::CreditCard)
        || set.has(Family::Iban)
        || set.has(Family::Ssn)
        || set.has(Family::Phone);
    text.contains("\\u")
        || (needs_digits && digit_count(text) >= 2)
        || (set.has(Family::Email) && text.as_bytes().contains(&b'@'))
        || (set.has(Family::Secret) && secret::may_match(text))
}

/// Replaces each span by its family's marker. Overlapping matches merge into the
/// first one's marker, so every replaced byte was matched by some detector and no
/// byte outside the matches is touched.
fn rewrite(set: &MaskSet, text: &str, mut spans: Vec<Span>) -> String {
    spans.sort_by_key(|s| (s.start, std::cmp::Reverse(s.end)));
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for span in spans {
        if span.start < at {
            at = at.max(span.end); // overlaps the previous match: merged into it
            continue;
        }
        out.push_str(&text[at..span.start]);
        push_replacement(&mut out, &span, set.last_four);
        at = span.end;
    }
    out.push_str(&text[at..]);
    out
}

pub(super) fn push_replacement(out: &mut String, span: &Span, last_four: bool) {
    match span.last_four.filter(|_| last_four) {
        Some(digits) => {
            out.push_str("[REDACTED:");
            out.push_str(span.family.as_str());
            out.push(':');
            out.extend(digits.iter().map(|&d| char::from(d)));
            out.push(']');
        }
        None => out.push_str(span.family.replacement()),
    }
}

/// The replacement of a whole JSON value (a card held in a number).
pub(super) fn card_replacement(last_four: Option<[u8; 4]>, keep: bool) -> String {
    let span = Span {
        last_four,
        ..Span::new(0, 0, Family::CreditCard, "credit_card")
    };
    let mut out = String::new();
    push_replacement(&mut out, &span, keep);
    out
}
