//! No fact function panics or loses its shape, whatever the input.

use super::{path, sql, url};
use proptest::prelude::*;

/// Text made of SQL and URL pieces as well as arbitrary characters, so inputs reach deep
/// into the parsers rather than failing at the first byte.
fn soup() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        any::<char>().prop_map(String::from),
        prop::sample::select(
            &[
                "SELECT ",
                "FROM ",
                "t",
                "'",
                "\"",
                "`",
                "[",
                "]",
                "(",
                ")",
                ";",
                "--",
                "/*",
                "*/",
                "$$",
                "$t$",
                "\\",
                "%",
                "%2e",
                "%2f",
                "..",
                "/",
                "@",
                ":",
                "//",
                "http://",
                "[::1]",
                "WITH c AS ",
                "INSERT INTO ",
                "DELETE ",
                "0x",
                "1e9",
                "\n",
                "?",
                "#",
                "E'",
                "X'",
            ][..]
        )
        .prop_map(str::to_owned),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn sql_parse_is_total(text in soup(), dialect in prop::sample::select(&["sqlite", "postgres", "mysql", "generic", "x"][..])) {
        let parsed = sql::parse(&text, dialect);
        prop_assert!(parsed["ok"].is_boolean());
        prop_assert!(parsed["statements"].is_array());
        if parsed["ok"] == false {
            prop_assert!(parsed["error"].is_string());
            prop_assert_eq!(parsed["count"].as_u64(), Some(0));
        }
    }

    #[test]
    fn literal_spans_are_inside_the_text_and_hold_no_delimiter(text in soup(), dialect in prop::sample::select(&["sqlite", "postgres", "mysql", "generic"][..])) {
        let mut end = 0;
        for span in sql::literal_spans(&text, dialect) {
            prop_assert!(span.start < span.end && span.start >= end);
            let value = text.get(span.clone());
            prop_assert!(value.is_some(), "{:?} is not on char boundaries of {:?}", span, text);
            end = span.end;
        }
    }

    #[test]
    fn url_parse_is_total(text in soup()) {
        let parsed = url::parse(&text);
        prop_assert!(parsed["ok"].is_boolean());
        if parsed["canonical"] == true {
            prop_assert_eq!(parsed["serialized"].as_str(), Some(text.as_str()));
        }
    }

    #[test]
    fn normalize_is_total_and_idempotent(text in soup()) {
        let first = path::normalize(&text);
        if first["ok"] == true && first["still_encoded"] == false {
            let normal = first["normalized"].as_str().unwrap_or_default().to_owned();
            let again = path::normalize(&normal);
            prop_assert_eq!(&again["normalized"], &first["normalized"]);
            // Without an escape left, decoding changes nothing: the result is normal.
            prop_assert_eq!(&again["was_normal"], &serde_json::Value::Bool(true));
        }
    }
}
