//! Table-driven cases: what each detector must hide and the realistic look-alikes it
//! must leave alone.

use super::*;
use serde_json::json;

fn masked(text: &str) -> String {
    MaskSet::all(false)
        .mask_str(text)
        .unwrap_or_else(|| text.to_owned())
}

#[test]
fn hides_cards_emails_and_secrets() {
    let cases = [
        ("card 4111111111111111 ok", "card [REDACTED:credit_card] ok"),
        ("4111 1111 1111 1111", "[REDACTED:credit_card]"),
        ("4111-1111-1111-1111.", "[REDACTED:credit_card]."),
        ("amex 378282246310005", "amex [REDACTED:credit_card]"),
        ("mc 5555555555554444,", "mc [REDACTED:credit_card],"),
        ("new mc 2223003122003222", "new mc [REDACTED:credit_card]"),
        ("4111 1111 1111 1111 2024", "[REDACTED:credit_card] 2024"),
        ("\"4242424242424242\"", "\"[REDACTED:credit_card]\""),
        (
            "mail ada.lovelace+x@example.co.uk.",
            "mail [REDACTED:email].",
        ),
        ("<bob@corp.example.com>", "<[REDACTED:email]>"),
        (
            "key AKIAIOSFODNN7EXAMPLE here",
            "key [REDACTED:secret] here",
        ),
        ("ASIAY34FZKBOKMUTVV7A", "[REDACTED:secret]"),
        (
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc",
            "Authorization: Bearer [REDACTED:secret]",
        ),
        (
            "x\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----\ny",
            "x\n[REDACTED:secret]\ny",
        ),
        (
            "-----BEGIN PRIVATE KEY-----\nMIIEvQ (cut off",
            "[REDACTED:secret]",
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(masked(input), expected, "input: {input:?}");
    }
}

#[test]
fn leaves_look_alikes_alone() {
    let cases = [
        "order 1234567890123 shipped", // 13-digit order id, no issuer prefix
        "at 1732521600000 ms",         // millisecond timestamp
        "call +1 555-0100 or (415) 555-2671", // phone numbers
        "id 123e4567-e89b-12d3-a456-426614174000",
        "from 192.168.100.200 and 10.0.0.1",
        "version 4.11.1111.1111 and v1.2.3",
        "id 4111111111111112",     // Visa prefix, fails Luhn
        "ref 1234567812345678",    // 16 digits, fails Luhn
        "sku ABC4111111111111111", // touches letters
        "2024-01-15 10:30:00",
        "user@localhost and @handle and a@b",
        "Bearer of bad news",
        "AKIA is a prefix, AKIAshort",
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
        "max_tokens 4096, total 41111111",
    ];
    for input in cases {
        assert_eq!(masked(input), input, "input: {input:?}");
    }
}

#[test]
fn secret_named_fields_are_replaced_whatever_their_type() {
    let mut value = json!({
        "password": "hunter2", "apiKey": 1234, "client_secret": {"a": 1},
        "X-Auth-Token": "t", "max_tokens": 100, "token_count": 3, "name": "ok"
    });
    let count = MaskSet::all(false).apply(&mut value);
    assert_eq!(count, 4);
    assert_eq!(
        value,
        json!({
            "password": "[REDACTED:secret]", "apiKey": "[REDACTED:secret]",
            "client_secret": "[REDACTED:secret]", "X-Auth-Token": "[REDACTED:secret]",
            "max_tokens": 100, "token_count": 3, "name": "ok"
        })
    );
}

#[test]
fn json_embedded_in_text_content_is_masked_and_stays_json() {
    let rows = json!({"columns": ["email", "card_number", "db_password"],
        "rows": [["ada@example.com", "4111111111111111", "pw"]]});
    let mut value = json!({"result": {"content": [{"type": "text", "text": rows.to_string()}]}});
    MaskSet::all(true).apply(&mut value);
    let text = value["result"]["content"][0]["text"].as_str().unwrap();
    let inner: Value = serde_json::from_str(text).unwrap();
    assert_eq!(inner["rows"][0][0], "[REDACTED:email]");
    assert_eq!(inner["rows"][0][1], "[REDACTED:credit_card:1111]");
    assert_eq!(inner["columns"][2], "db_password"); // names are not values
}

#[test]
fn a_decision_list_masks_only_what_it_names() {
    let names = vec!["email".to_owned(), "/result/structuredContent".to_owned()];
    let (set, unknown) = MaskSet::from_names(&names, false);
    assert!(unknown.is_empty());
    let mut value = json!({"result": {"structuredContent": {"n": 1},
        "content": [{"type": "text", "text": "a@b.io 4111111111111111"}]}});
    assert_eq!(set.apply(&mut value), 2);
    assert_eq!(value["result"]["structuredContent"], "[REDACTED]");
    assert_eq!(
        value["result"]["content"][0]["text"],
        "[REDACTED:email] 4111111111111111"
    );
}

#[test]
fn an_unknown_detector_name_masks_everything() {
    let (set, unknown) = MaskSet::from_names(&["ssn".to_owned()], false);
    assert_eq!(unknown, vec!["ssn".to_owned()]);
    assert_eq!(set, MaskSet::all(false));
}

#[test]
fn masking_is_idempotent() {
    let mut value = json!({"a": "4111111111111111 a@b.io", "password": "x"});
    let set = MaskSet::all(true);
    set.apply(&mut value);
    let once = value.clone();
    assert_eq!(set.apply(&mut value), 0);
    assert_eq!(value, once);
}
