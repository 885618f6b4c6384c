//! Properties of masking: every Luhn-valid card is hidden whatever its separators
//! and surroundings; digit strings that are no card are left alone; the output is
//! always valid JSON; masking twice changes nothing more; no redaction reaches
//! past the text its detector matched; the JSON-RPC envelope is never touched.

use super::card::{is_card, luhn};
use super::*;
use proptest::prelude::*;
use serde_json::json;

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
    ("3528", 16),
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

/// Something some detector must hide: generated cards and addresses, and one
/// sample of each secret rule and family (from the case table's forms).
fn sensitive() -> impl Strategy<Value = String> {
    const SAMPLES: &[&str] = &[
        "GB82 WEST 1234 5698 7654 32",
        "536-22-1234",
        "+44 20 7946 0958",
        "(415) 555-2671",
        "ghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d",
        "xoxb-127684268465-6321223307924-sajAIxNKu8iS2G8NPRVdD53X",
        "AKIAIOSFODNN7EXAMPLE",
        "aws_secret_access_key = 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",
        "AIza_799NksnRH9ucAUsdMlHUvTCQCyEZDz-Tdd",
        "sk_live_YrEqmSM9wCZ7Uw9xfogoEmvn",
        "eyJhbGciOiJIUzI1NiJ9.e30.abc",
        "Bearer 4f9a8c7e6d5b4a3f2e1d",
        "Basic YWRtaW46czNjcjN0LVBhNTU=",
        "postgres://user:hunter22@db:5432/x",
        "password: hunter2",
        "SESSION_SECRET=3f6c1e0b9a8d7c6b5a4f3e2d1c0b9a8f",
        "-----BEGIN PRIVATE KEY-----",
        "-----BEGIN RSA PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg3dAf8F7cK7FC40YQ",
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIFKYpcSfracjsuYWoiSkLluIL2bsyUsGklZ2NZrUMDrW\n-----END PRIVATE KEY-----",
    ];
    prop_oneof![
        card_number(),
        (card_number(), prop::sample::select(vec![' ', '-', '.']))
            .prop_map(|(c, s)| grouped(&c, s, 4)),
        "[a-z]{1,8}\\.[a-z]{1,8}@example\\.(com|org)".prop_map(|s| s),
        prop::sample::select(SAMPLES).prop_map(str::to_owned),
    ]
}

/// Statements a reviewer must see, whatever was masked before them.
fn statement() -> impl Strategy<Value = String> {
    let words = prop::sample::select(vec![
        "DELETE",
        "FROM",
        "customers",
        "DROP",
        "TABLE",
        "UPDATE",
        "orders",
        "SET",
        "WHERE",
        "id",
        "=",
        "7",
        ";",
        "--",
        "status",
        "'shipped'",
    ]);
    prop::collection::vec(words, 1..12).prop_map(|w| w.join(" "))
}

/// Any JSON value, with sensitive strings, card numbers and data-carrying keys.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-(1i64 << 53) + 1..(1i64 << 53)).prop_map(Value::from),
        card_number().prop_map(|c| Value::from(c.parse::<u64>().unwrap_or(0) % (1 << 53))),
        "\\PC{0,24}".prop_map(Value::String),
        sensitive().prop_map(Value::String),
        (prose(), sensitive(), prose()).prop_map(|(a, s, b)| Value::String(format!("{a} {s} {b}"))),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let key = prop_oneof!["[a-z_]{1,12}", sensitive(), Just("password".to_owned())];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key, inner.clone(), 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            inner.prop_map(|v| Value::String(v.to_string())), // JSON held in text
        ]
    })
}

/// Whether some window of whole groups of `text`'s digits is a card.
fn some_window_is_a_card(groups: &[&str]) -> bool {
    (0..groups.len()).any(|i| {
        (i + 1..=groups.len()).any(|j| {
            let digits: String = groups[i..j].concat();
            is_card(digits.as_bytes())
        })
    })
}

proptest! {
    #[test]
    fn valid_cards_are_always_masked(
        number in card_number(),
        separator in prop::sample::select(vec![' ', '-', '.']),
        group in prop::sample::select(vec![0usize, 4, 5, 6]),
        before in prose(),
        after in prose(),
    ) {
        let text = format!("{before}{}{after}", grouped(&number, separator, group));
        let cards = MaskSet::only(&[Family::CreditCard], false);
        let masked = cards.mask_str(&text).unwrap_or_default();
        prop_assert_eq!(masked, format!("{before}[REDACTED:credit_card]{after}"));
    }

    #[test]
    fn digit_strings_that_hold_no_card_are_left_alone(
        digits in "[0-9]{13,19}",
        separator in prop::sample::select(vec![' ', '-', '.']),
        group in prop::sample::select(vec![0usize, 4]),
    ) {
        let text = grouped(&digits, separator, group);
        let groups: Vec<&str> = text.split(separator).collect();
        prop_assume!(!some_window_is_a_card(&groups));
        let text = format!("id {text} end");
        prop_assert_eq!(MaskSet::only(&[Family::CreditCard], false).mask_str(&text), None);
    }

    #[test]
    fn masking_keeps_json_valid_and_is_idempotent(result in json_value(), last_four in any::<bool>()) {
        let set = MaskSet::all(last_four);
        let mut value = json!({"jsonrpc": "2.0", "id": 1, "result": result});
        set.apply(&mut value);
        let encoded = serde_json::to_string(&value).unwrap();
        let decoded: Value = serde_json::from_str(&encoded).unwrap();
        prop_assert_eq!(&decoded, &value);
        let once = value.clone();
        prop_assert_eq!(set.apply(&mut value), 0, "a second pass masked more: {}", encoded);
        prop_assert_eq!(value, once);
    }

    #[test]
    fn no_redaction_reaches_past_its_match(
        before in prose(),
        secret in sensitive(),
        after in statement(),
    ) {
        let text = format!("{before} {secret}\n{after}");
        let masked = MaskSet::all(false).mask_str(&text);
        prop_assert!(masked.is_some(), "nothing found in {:?}", text);
        let masked = masked.unwrap_or_default();
        prop_assert!(masked.ends_with(&format!("\n{after}")), "{:?} became {:?}", text, masked);
        prop_assert!(masked.starts_with(&format!("{before} ")), "{:?} became {:?}", text, masked);
    }

    #[test]
    fn json_text_masked_in_place_equals_json_text_parsed_and_walked(value in json_value()) {
        let set = MaskSet::all(false);
        let value = json!([value]); // JSON text is an array or an object
        let text = value.to_string();
        let mut walked = value.clone();
        let count = walk::scan_data(&set, &mut walked);
        match json_text::rewrite(&set, &text) {
            json_text::Raw::Parse => {}
            json_text::Raw::Clean => prop_assert_eq!(count, 0, "{} missed: {}", text, walked),
            json_text::Raw::Masked(masked) => {
                let masked: Value = serde_json::from_str(&masked).unwrap();
                prop_assert_eq!(masked, walked, "from {}", text);
            }
        }
    }

    #[test]
    fn the_envelope_is_never_touched(
        id in prop_oneof![
            card_number().prop_map(|c| Value::from(c.parse::<u64>().unwrap_or(0) % (1 << 53))),
            sensitive().prop_map(Value::String),
            any::<i64>().prop_map(Value::from),
        ],
        method in prop_oneof![sensitive(), "[a-z/]{1,20}".prop_map(|s| s)],
        token in prop_oneof![card_number().prop_map(Value::String), sensitive().prop_map(Value::String)],
        params in json_value(),
    ) {
        let mut value = json!({"jsonrpc": "2.0", "id": id, "method": method,
            "params": {"progressToken": token, "_meta": {"progressToken": token}, "data": params}});
        MaskSet::all(true).apply(&mut value);
        prop_assert_eq!(&value["id"], &id);
        prop_assert_eq!(&value["method"], &Value::String(method));
        prop_assert_eq!(&value["jsonrpc"], "2.0");
        prop_assert_eq!(&value["params"]["progressToken"], &token);
        prop_assert_eq!(&value["params"]["_meta"]["progressToken"], &token);
    }
}
