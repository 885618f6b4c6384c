use super::*;
use airlock_policy::canonical::canonical_payload;

fn view(arguments: Value, hints: &[(&str, ArgumentKind)]) -> ReviewView {
    let params = json!({"name": "execute", "arguments": arguments});
    let canonical = canonical_payload("tools/call", &params);
    let hints = hints
        .iter()
        .map(|(n, k)| ((*n).to_owned(), k.clone()))
        .collect();
    review(&canonical, &hints, false)
}

fn sqlite() -> ArgumentKind {
    ArgumentKind::Sql {
        dialect: "sqlite".into(),
    }
}

fn shown(view: &ReviewView) -> Value {
    serde_json::from_str(&view.shown).unwrap()
}

#[test]
fn an_unterminated_key_marker_cannot_hide_the_statement_after_it() {
    let sql = "UPDATE orders SET status='shipped' WHERE id=7; -- -----BEGIN PRIVATE KEY-----\nDELETE FROM customers";
    let v = view(json!({"sql": sql}), &[("sql", sqlite())]);
    let facts = &v.summary["arguments"]["sql"];
    let kinds: Vec<&str> = facts["statements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["update", "delete"], "{facts}");
    assert_eq!(facts["statements"][1]["writes"], json!(["customers"]));
    assert_eq!(facts["statements"][1]["has_where"], false);
    // What runs is what is shown: the comment and the DELETE are intact.
    assert_eq!(shown(&v)["params"]["arguments"]["sql"], sql);
    assert_eq!(facts["outside_literals"], json!(["secret"]));
    let warnings = v.summary["warnings"].to_string();
    assert!(warnings.contains("outside SQL literals"), "{warnings}");
}

#[test]
fn values_inside_sql_literals_are_masked_and_counted() {
    let sql = "UPDATE customers SET card = '4111 1111 1111 1111', note = 'x' WHERE email = 'ada@example.com'";
    let v = view(json!({"sql": sql}), &[("sql", sqlite())]);
    let text = shown(&v)["params"]["arguments"]["sql"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        text,
        "UPDATE customers SET card = '[REDACTED:credit_card]', note = 'x' WHERE email = '[REDACTED:email]'"
    );
    let facts = &v.summary["arguments"]["sql"];
    assert_eq!(facts["removed_chars"], 19 + 15);
    assert_eq!(facts["outside_literals"], json!([]));
    assert!(v.masked);
    assert_eq!(facts["statements"][0]["kind"], "update");
}

#[test]
fn urls_paths_and_text_get_their_facts_and_counts() {
    let v = view(
        json!({
            "url": "https://api.github.com\\@evil.com/x",
            "path": "/app/../etc//passwd",
            "note": "call ada@example.com",
            "n": 4111111111111111_u64,
        }),
        &[("url", ArgumentKind::Url)],
    );
    let args = &v.summary["arguments"];
    assert_eq!(args["url"]["host"], "api.github.com");
    assert_eq!(args["url"]["canonical"], false);
    assert_eq!(args["path"]["type"], "path", "detected without a hint");
    assert_eq!(args["path"]["normalized"], "/etc/passwd");
    assert_eq!(args["note"]["removed_chars"], 15);
    assert_eq!(args["n"]["redactions"], 1);
    assert_eq!(v.summary["removed_chars"], 15);
    let shown = shown(&v);
    assert_eq!(
        shown["params"]["arguments"]["note"],
        "call [REDACTED:email]"
    );
    assert_eq!(shown["params"]["arguments"]["n"], "[REDACTED:credit_card]");
}

#[test]
fn sql_is_detected_without_a_hint_and_unparsed_sql_is_said_loudly() {
    let v = view(json!({"q": "DELETE FROM customers"}), &[]);
    assert_eq!(v.summary["arguments"]["q"]["type"], "sql");
    assert_eq!(
        v.summary["arguments"]["q"]["statements"][0]["kind"],
        "delete"
    );
    let broken = view(
        json!({"sql": "DELETE FROM customers WHERE card = 4111111111111111 AND"}),
        &[("sql", sqlite())],
    );
    let facts = &broken.summary["arguments"]["sql"];
    assert_eq!(facts["ok"], false);
    assert_eq!(facts["outside_literals"], json!(["unparsed"]));
    assert!(broken.summary["warnings"]
        .to_string()
        .contains("does not parse"));
}

#[test]
fn the_masked_payload_stays_canonical_and_a_clean_one_is_unchanged() {
    let sql = "UPDATE customers SET card_number = '4111 1111 1111 1111', email = 'ana@example.com'";
    let v = view(json!({"sql": sql}), &[]);
    assert!(v.masked);
    assert!(
        !v.shown.contains("4111") && !v.shown.contains("ana@example.com"),
        "{}",
        v.shown
    );
    assert_eq!(
        airlock_policy::canonical::recanonicalize(&v.shown).as_deref(),
        Some(v.shown.as_str())
    );
    let params = json!({"name": "execute", "arguments": {"sql": "DELETE FROM orders"}});
    let clean = canonical_payload("tools/call", &params);
    let v = review(&clean, &BTreeMap::new(), false);
    assert_eq!((v.shown, v.masked), (clean, false));
}
