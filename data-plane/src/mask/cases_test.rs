//! The case table (`cases.toml`): every family and every secret rule hides what it
//! must and leaves its known look-alikes alone; plus what the table cannot say
//! (decision names, pointers, `last_four`, idempotence, start-up).

use super::secret::rules::RULES;
use super::*;
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;

#[derive(Deserialize)]
struct Table {
    text: Vec<TextCase>,
    json: Vec<JsonCase>,
}

#[derive(Deserialize)]
struct TextCase {
    rule: String,
    text: String,
    masked: Option<String>,
    #[allow(dead_code)]
    why: Option<String>,
}

#[derive(Deserialize)]
struct JsonCase {
    input: String,
    masked: Option<String>,
    #[allow(dead_code)]
    why: Option<String>,
}

fn table() -> Table {
    toml::from_str(include_str!("cases.toml")).expect("cases.toml parses")
}

#[test]
fn every_text_case_masks_exactly_as_written() {
    let set = MaskSet::all(false);
    let mut failures = Vec::new();
    for case in table().text {
        let out = set
            .mask_str(&case.text)
            .unwrap_or_else(|| case.text.clone());
        let expected = case.masked.clone().unwrap_or_else(|| case.text.clone());
        let found_by_rule = set.matches(&case.text).iter().any(|(r, _)| *r == case.rule);
        if out != expected {
            failures.push(format!(
                "[{}] {:?}\n   got {:?}\n  want {:?}",
                case.rule, case.text, out, expected
            ));
        } else if case.masked.is_some() && !found_by_rule {
            failures.push(format!(
                "[{}] {:?}: hidden, but not by this rule: {:?}",
                case.rule,
                case.text,
                set.matches(&case.text)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_family_and_rule_has_hidden_and_left_alone_cases() {
    let mut seen: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for case in table().text {
        let entry = seen.entry(case.rule).or_default();
        match case.masked {
            Some(_) => entry.0 += 1,
            None => entry.1 += 1,
        }
    }
    let families = Family::ALL
        .iter()
        .filter(|f| **f != Family::Secret)
        .map(|f| f.as_str());
    let rules = RULES.iter().map(|r| r.id);
    for name in families.chain(rules) {
        let (hidden, left) = seen.get(name).copied().unwrap_or_default();
        assert!(
            hidden > 0 && left > 0,
            "{name}: {hidden} hiding case(s), {left} false-positive case(s); both are needed"
        );
    }
    let known: Vec<&str> = Family::ALL
        .iter()
        .map(|f| f.as_str())
        .chain(RULES.iter().map(|r| r.id))
        .collect();
    for name in seen.keys() {
        assert!(
            known.contains(&name.as_str()),
            "cases.toml names an unknown rule {name}"
        );
    }
}

#[test]
fn every_json_case_masks_exactly_as_written() {
    let set = MaskSet::all(false);
    for case in table().json {
        let mut value: Value = serde_json::from_str(&case.input).expect("input is JSON");
        let expected: Value = serde_json::from_str(case.masked.as_deref().unwrap_or(&case.input))
            .expect("masked is JSON");
        let count = set.apply(&mut value);
        assert_eq!(value, expected, "input: {}", case.input);
        assert_eq!(
            count == 0,
            case.masked.is_none(),
            "replacements counted: {count} for {}",
            case.input
        );
    }
}

#[test]
fn a_decision_list_masks_only_what_it_names() {
    let names = vec!["email".to_owned(), "/result/structuredContent".to_owned()];
    let (set, unknown) = MaskSet::from_names(&names, false);
    assert!(unknown.is_empty());
    let mut value = json!({"jsonrpc": "2.0", "id": 1, "result": {"structuredContent": {"n": 1},
        "content": [{"type": "text", "text": "a@b.io 4111111111111111"}]}});
    assert_eq!(set.apply(&mut value), 2);
    assert_eq!(value["result"]["structuredContent"], "[REDACTED]");
    assert_eq!(
        value["result"]["content"][0]["text"],
        "[REDACTED:email] 4111111111111111"
    );
}

#[test]
fn all_names_every_family_and_each_family_has_a_name() {
    let (set, unknown) = MaskSet::from_names(&["all".to_owned()], true);
    assert!(unknown.is_empty());
    assert_eq!(set, MaskSet::all(true));
    for family in Family::ALL {
        let (one, unknown) = MaskSet::from_names(&[family.as_str().to_owned()], false);
        assert!(unknown.is_empty(), "{}", family.as_str());
        assert_eq!(one, MaskSet::only(&[family], false));
    }
}

#[test]
fn an_unknown_detector_name_masks_everything() {
    let (set, unknown) = MaskSet::from_names(&["passport".to_owned()], false);
    assert_eq!(unknown, vec!["passport".to_owned()]);
    assert_eq!(set, MaskSet::all(false));
}

#[test]
fn pointers_never_reach_the_envelope() {
    let names: Vec<String> = [
        "/id",
        "/jsonrpc",
        "/method",
        "",
        "/params/_meta/progressToken",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let (set, _) = MaskSet::from_names(&names, false);
    let mut value = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {"_meta": {"progressToken": 3}}});
    let before = value.clone();
    assert_eq!(set.apply(&mut value), 0);
    assert_eq!(value, before);
}

#[test]
fn last_four_keeps_a_cards_last_digits_in_text_and_numbers() {
    let set = MaskSet::all(true);
    let mut value = json!({"jsonrpc": "2.0", "id": 1, "result": {"n": 5555555555554444_u64, "t": "4111 1111 1111 1111"}});
    set.apply(&mut value);
    assert_eq!(value["result"]["n"], "[REDACTED:credit_card:4444]");
    assert_eq!(value["result"]["t"], "[REDACTED:credit_card:1111]");
}

#[test]
fn masking_is_idempotent() {
    let mut value = json!({"jsonrpc": "2.0", "id": 1, "result": {"a": "4111111111111111 a@b.io",
        "password": "x", "text": "password: hunter2\nghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d",
        "rows": "{\"k\":[4111111111111111]}"}});
    let set = MaskSet::all(true);
    assert!(set.apply(&mut value) > 0);
    let once = value.clone();
    assert_eq!(set.apply(&mut value), 0);
    assert_eq!(value, once);
}

#[test]
fn the_rules_compile_and_the_phone_metadata_loads() {
    warm_up().expect("warm up");
}

#[test]
fn every_calling_codes_patterns_compile() {
    for code in 1..1000 {
        let regions = phonenumber::metadata::DATABASE
            .by_code(&(code as u16))
            .map_or(0, |m| m.len());
        assert_eq!(phone::loaded_regions(code), regions, "calling code {code}");
    }
}
