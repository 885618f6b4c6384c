use super::*;
use serde_json::json;

fn facts(text: &str) -> (String, bool, bool) {
    let p = normalize(text);
    assert_eq!(p["ok"], true, "{text}: {p}");
    (
        p["normalized"].as_str().unwrap().to_owned(),
        p["was_normal"].as_bool().unwrap(),
        p["escapes_root"].as_bool().unwrap(),
    )
}

#[test]
fn lexical_normalisation() {
    let cases = [
        ("/app/.env", "/app/.env", true, false),
        ("/app/./x/../.env", "/app/.env", false, false),
        ("//app///.env", "/app/.env", false, false),
        ("/app/", "/app", false, false),
        ("/", "/", true, false),
        ("/..", "/", false, true),
        ("/../../etc/passwd", "/etc/passwd", false, true),
        ("/app/%2e%2e/etc/passwd", "/etc/passwd", false, false),
        ("/app%2f..%2f..%2fetc", "/etc", false, true),
        ("/app/%2E%65nv", "/app/.env", false, false),
        ("a/b/../c", "a/c", false, false),
        ("a/../..", "..", false, true),
        ("../x", "../x", true, true),
        (".", ".", true, false),
        ("./", ".", false, false),
        ("a", "a", true, false),
    ];
    for (text, normalized, was_normal, escapes) in cases {
        assert_eq!(
            facts(text),
            (normalized.to_owned(), was_normal, escapes),
            "{text}"
        );
    }
}

#[test]
fn escapes_decode_once_and_say_so() {
    let p = normalize("/app/%252e%252e/x");
    assert_eq!(p["normalized"], "/app/%2e%2e/x");
    assert_eq!(p["still_encoded"], true);
    assert_eq!(normalize("/app/%zz")["normalized"], "/app/%zz");
    assert_eq!(normalize("/app/%zz")["still_encoded"], false);
    assert_eq!(normalize("/app/x")["absolute"], true);
    assert_eq!(normalize("app/x")["absolute"], false);
}

#[test]
fn refusals() {
    for text in ["", "/app/%00", "/app/\0x", "/app/%ff%fe"] {
        let p = normalize(text);
        assert_eq!(p["ok"], false, "{text:?}: {p}");
        assert_eq!(p["normalized"], json!(""));
        assert_eq!(p["was_normal"], false);
    }
    let long = format!("/{}", "a".repeat(MAX_PATH_BYTES));
    assert!(normalize(&long)["error"]
        .as_str()
        .unwrap()
        .contains("limit"));
}
