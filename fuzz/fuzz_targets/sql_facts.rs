//! Fuzzes `airlock_policy::facts::sql`: no input may panic `parse` or `literal_spans`,
//! an answer always has its documented shape, and literal spans are ordered, non-empty
//! and on character boundaries of the text.
#![no_main]

use airlock_policy::facts::sql;
use libfuzzer_sys::fuzz_target;

const DIALECTS: &[&str] = &["sqlite", "postgres", "mysql", "generic"];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let dialect = DIALECTS[usize::from(pick) % DIALECTS.len()];
    let parsed = sql::parse(text, dialect);
    let statements = parsed["statements"].as_array().expect("statements is an array");
    assert_eq!(parsed["count"].as_u64(), Some(statements.len() as u64));
    match parsed["ok"].as_bool() {
        Some(true) => assert!(statements.iter().all(|s| s["kind"].is_string())),
        Some(false) => assert!(statements.is_empty() && parsed["error"].is_string()),
        None => panic!("ok is not a boolean: {parsed}"),
    }
    let mut end = 0;
    for span in sql::literal_spans(text, dialect) {
        assert!(span.start >= end && span.start < span.end, "{span:?} after {end}");
        assert!(text.get(span.clone()).is_some(), "{span:?} off char boundaries");
        end = span.end;
    }
});
