//! Properties of card masking: every Luhn-valid card number is hidden whatever its
//! separators and surrounding text; digit strings that fail Luhn are left alone;
//! masking never breaks JSON.

use super::card::luhn;
use super::*;
use proptest::prelude::*;

/// Issuer prefixes and lengths of real networks.
const NETWORKS: &[(&str, usize)] = &[
    ("4", 16),
    ("4", 13),
    ("4", 19),
    ("51", 16),
    ("55", 16),
    ("2221", 16),
    ("2720", 16),
    ("34", 15),
    ("37", 15),
    ("6011", 16),
    ("65", 16),
    ("35", 16),
    ("36", 14),
    ("62", 19),
];

fn check_digit(payload: &[u8]) -> u8 {
    (0..=9u8)
        .map(|d| b'0' + d)
        .find(|&d| {
            let mut all = payload.to_vec();
            all.push(d);
            luhn(&all)
        })
        .unwrap_or(b'0')
}

/// A Luhn-valid card number as ASCII digits.
fn card_number() -> impl Strategy<Value = String> {
    (0..NETWORKS.len(), prop::collection::vec(0u8..10, 19)).prop_map(|(n, random)| {
        let (prefix, len) = NETWORKS[n];
        let mut digits: Vec<u8> = prefix.bytes().collect();
        digits.extend(random.iter().take(len - 1 - prefix.len()).map(|d| b'0' + d));
        digits.push(check_digit(&digits));
        String::from_utf8(digits).unwrap()
    })
}

/// Groups the digits with a separator every `group` digits (0 = no separator).
fn grouped(digits: &str, separator: char, group: usize) -> String {
    if group == 0 {
        return digits.to_owned();
    }
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && i % group == 0 {
            out.push(separator);
        }
        out.push(c);
    }
    out
}

fn prose() -> impl Strategy<Value = String> {
    "[a-zA-Z ,.:;()\"'é]{0,20}".prop_map(|s| s)
}

proptest! {
    #[test]
    fn valid_cards_are_always_masked(
        number in card_number(),
        separator in prop::sample::select(vec![' ', '-']),
        group in prop::sample::select(vec![0usize, 4, 5, 6]),
        before in prose(),
        after in prose(),
    ) {
        let before = if before.ends_with(|c: char| c.is_ascii_alphanumeric()) { format!("{before} ") } else { before };
        let after = if after.starts_with(|c: char| c.is_ascii_alphanumeric()) { format!(" {after}") } else { after };
        let text = format!("{before}{}{after}", grouped(&number, separator, group));
        let masked = MaskSet::all(false).mask_str(&text).unwrap_or_default();
        prop_assert_eq!(masked, format!("{before}[REDACTED:credit_card]{after}"));
    }

    #[test]
    fn digit_strings_failing_luhn_are_left_alone(
        digits in "[0-9]{13,19}",
        separator in prop::sample::select(vec![' ', '-']),
        group in prop::sample::select(vec![0usize, 4]),
    ) {
        prop_assume!(!luhn(digits.as_bytes()));
        let text = format!("id {} end", grouped(&digits, separator, group));
        prop_assert_eq!(MaskSet::all(false).mask_str(&text), None);
    }

    #[test]
    fn masking_keeps_json_valid(number in card_number(), text in "\\PC{0,40}") {
        let mut value = serde_json::json!({"t": format!("{text} {number} {text}"), "n": [text.clone()]});
        MaskSet::all(true).apply(&mut value);
        let encoded = serde_json::to_string(&value).unwrap();
        let decoded: Value = serde_json::from_str(&encoded).unwrap();
        prop_assert_eq!(decoded, value);
    }
}
