//! `facts::sql::parse` against SQLite itself: for every text, generated or from the
//! attack table, each action SQLite's authorizer reports while running it (drop, delete,
//! update, insert, create, alter, attach, detach, pragma, read, function, transaction)
//! must appear in the facts, by kind and table, unless the facts refuse the text
//! (`ok: false`, which the policy never treats as safe).
//!
//! Cases: `AIRLOCK_DIFF_CASES` (default 3000); e.g. `AIRLOCK_DIFF_CASES=100000 cargo
//! test -p airlock-policy --release --test facts_sql_sqlite`.

#[path = "facts_support/sql_gen.rs"]
mod sql_gen;
#[path = "facts_support/sqlite.rs"]
mod sqlite;

use airlock_policy::facts::sql;
use proptest::prop_assert_eq;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};

fn cases() -> u32 {
    std::env::var("AIRLOCK_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

/// The facts of `text`, checked against SQLite; `Err` names what SQLite would do that
/// the facts do not say.
fn agree(text: &str) -> Result<(Value, Vec<sqlite::Action>), String> {
    let parsed = sql::parse(text, "sqlite");
    let actions = sqlite::actions(text);
    if parsed["ok"] != Value::Bool(true) {
        return Ok((parsed, actions));
    }
    let missing = sqlite::uncovered(&parsed, &actions);
    if missing.is_empty() {
        Ok((parsed, actions))
    } else {
        Err(format!(
            "SQLite would do what the facts do not report\n text: {text:?}\n facts: {parsed}\n missing: {missing:#?}"
        ))
    }
}

#[test]
fn sqlite_never_does_what_the_facts_do_not_report() {
    static PARSED: AtomicUsize = AtomicUsize::new(0);
    static WRITES: AtomicUsize = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&sql_gen::text(), |text| {
            let (parsed, actions) = agree(&text).map_err(TestCaseError::fail)?;
            if parsed["ok"] == Value::Bool(true) {
                PARSED.fetch_add(1, Ordering::Relaxed);
                if actions
                    .iter()
                    .any(|a| a.what != "Read" && a.what != "Select")
                {
                    WRITES.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(())
        })
        .unwrap();
    // The comparison means something only if both sides accept a good share of texts
    // and SQLite really acts on them.
    let (parsed, writes) = (
        PARSED.load(Ordering::Relaxed),
        WRITES.load(Ordering::Relaxed),
    );
    let total = cases() as usize;
    eprintln!(
        "{total} texts: {parsed} parsed by both, {writes} of them made SQLite change something"
    );
    assert!(parsed * 4 >= total, "only {parsed} of {total} texts parsed");
    assert!(
        writes * 10 >= total,
        "only {writes} of {total} texts made SQLite act"
    );
}

/// Masking may rewrite what `literal_spans` returns: rewriting every span must leave
/// SQLite doing the same things (same statements, same actions on the same objects), so
/// a redaction inside the spans can never show a reviewer a different structure.
#[test]
fn rewriting_literal_spans_changes_no_action_of_sqlite() {
    static REWRITTEN: AtomicUsize = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&sql_gen::text(), |text| {
            let parsed = sql::parse(&text, "sqlite");
            let kinds: Vec<&str> = parsed["statements"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["kind"].as_str().unwrap())
                .collect();
            // Some values decide what later statements may do: an ATTACH's file name
            // (what exists), a PRAGMA's value (`writable_schema = 1` opens sqlite_master).
            if parsed["ok"] != true || kinds.contains(&"attach") || kinds.contains(&"pragma") {
                return Ok(());
            }
            let spans = sql::literal_spans(&text, "sqlite");
            if spans.is_empty() {
                return Ok(());
            }
            let mut rewritten = text.clone();
            for span in spans.iter().rev() {
                let zeros = "0".repeat(text[span.clone()].chars().count());
                rewritten.replace_range(span.clone(), &zeros);
            }
            REWRITTEN.fetch_add(1, Ordering::Relaxed);
            let before = sqlite::actions(&text);
            let after = sqlite::actions(&rewritten);
            prop_assert_eq!(before, after, "{:?} rewritten as {:?}", text, rewritten);
            Ok(())
        })
        .unwrap();
    let rewritten = REWRITTEN.load(Ordering::Relaxed);
    assert!(
        rewritten * 10 >= cases() as usize,
        "only {rewritten} texts had literals"
    );
}

/// The attacks and their relatives: what the facts must say, and that SQLite
/// agrees.
#[test]
fn attack_table() {
    // (text, [(kind, table written or read)]) — every listed pair must be in the facts.
    let table: &[(&str, &[(&str, &str)])] = &[
        (
            "UPDATE orders SET status='--' WHERE id=0;/*x*/DROP TABLE customers",
            &[("update", "orders"), ("drop", "customers")],
        ),
        (
            "UPDATE orders SET status='shipped' WHERE id=7; -- -----BEGIN PRIVATE KEY-----\nDELETE FROM customers",
            &[("update", "orders"), ("delete", "customers")],
        ),
        ("SELECT content FROM files WHERE path='/app/.env'", &[("select", "files")]),
        ("SELECT * FROM [FILES]", &[("select", "files")]),
        ("SELECT * FROM main.\"Files\"", &[("select", "files")]),
        ("SELECT 1 WHERE 1 IN (SELECT length(content) FROM `files`)", &[("select", "files")]),
        ("WITH f AS (SELECT content FROM files) SELECT * FROM f", &[("select", "files")]),
        (
            "SELECT * FROM files WHERE 1 IN (WITH files AS (SELECT 1) SELECT * FROM files)",
            &[("select", "files")],
        ),
        ("DELETE FROM customers", &[("delete", "customers")]),
        ("REPLACE INTO orders (id, status) VALUES (7, 'x')", &[("replace", "orders")]),
        ("INSERT OR REPLACE INTO orders (id, status) VALUES (7, 'x')", &[("replace", "orders")]),
        (
            "INSERT INTO orders (id) VALUES (7) ON CONFLICT DO UPDATE SET status = 'x'",
            &[("upsert", "orders")],
        ),
        ("PRAGMA writable_schema = 1", &[("pragma", "")]),
        ("ATTACH ':memory:' AS aux", &[("attach", "")]),
        ("INSERT INTO orders (status) SELECT content FROM files", &[("insert", "orders"), ("insert", "files")]),
        ("SELECT 1; DELETE FROM customers", &[("select", ""), ("delete", "customers")]),
        ("select 1;/* ; */delete from customers -- ;", &[("delete", "customers")]),
        (
            "CREATE TRIGGER t AFTER INSERT ON orders BEGIN DELETE FROM customers; END",
            &[("create", "customers"), ("create", "orders")],
        ),
        ("EXPLAIN DELETE FROM customers", &[("delete", "customers")]),
    ];
    for (text, expected) in table {
        let (parsed, actions) = agree(text).unwrap_or_else(|why| panic!("{why}"));
        assert_eq!(parsed["ok"], true, "{text}: {parsed}");
        for (kind, name) in *expected {
            let found = parsed["statements"].as_array().unwrap().iter().any(|s| {
                s["kind"] == *kind
                    && (name.is_empty()
                        || s["reads"].as_array().unwrap().iter().any(|t| t == name)
                        || s["writes"].as_array().unwrap().iter().any(|t| t == name))
            });
            assert!(found, "{text}: no {kind} of {name:?} in {parsed}");
        }
        assert!(
            !actions.is_empty(),
            "{text}: SQLite did nothing; the row proves nothing"
        );
    }
}

/// A CTE that names itself is recursive to SQLite (here an error: "circular reference");
/// the facts over-report it as a read of the real table rather than miss one.
#[test]
fn a_self_naming_cte_reads_the_table_of_that_name() {
    let parsed = sql::parse(
        "WITH files AS (SELECT * FROM files) SELECT * FROM files",
        "sqlite",
    );
    assert_eq!(
        parsed["statements"][0]["reads"],
        serde_json::json!(["files"]),
        "{parsed}"
    );
}

/// Texts SQLite runs but `sqlparser` cannot read are refused, never reported harmless.
#[test]
fn what_sqlparser_cannot_read_is_refused() {
    for text in [
        "DETACH aux",
        "REINDEX",
        "VACUUM INTO 'copy.db'",
        "SELECT 1; DROP TABLE customers /* unterminated",
        "SELECT 'unterminated",
    ] {
        let parsed = sql::parse(text, "sqlite");
        if parsed["ok"] == true {
            agree(text).unwrap_or_else(|why| panic!("{why}"));
        } else {
            assert_eq!(
                parsed["statements"],
                serde_json::json!([]),
                "{text}: {parsed}"
            );
            assert!(
                parsed["error"].as_str().unwrap().contains("does not parse"),
                "{parsed}"
            );
        }
    }
}

/// Real differentials found: texts on which SQLite changes data while `sqlparser` cannot
/// read them or reads them differently. The facts refuse them, so no policy sees them as
/// harmless.
#[test]
fn sqlite_runs_texts_sqlparser_refuses() {
    let table: &[(&str, &str, &str)] = &[
        // SQLite's type names may be strings: `CAST(1 AS TEXT 'a\')` closes at the
        // second quote, and the DROP after it runs.
        (
            "SELECT CAST(1 AS TEXT'a\\'); DROP TABLE files; --')",
            "DropTable",
            "files",
        ),
        // A bare word as a PRAGMA value.
        (
            "PRAGMA foreign_keys = off; DROP TABLE files",
            "DropTable",
            "files",
        ),
        // A dollar-quoted string is not SQLite's: `$a$` is a parameter to SQLite.
        ("SELECT $a$; DROP TABLE files; $a$", "DropTable", "files"),
        // SQLite stops reading at a NUL byte; sqlparser reads on. Here sqlparser saw a
        // WHERE (the comment ends at the newline, or is closed) and SQLite changed every
        // row.
        (
            "DELETE FROM customers -- \0\nWHERE id = 1",
            "Delete",
            "customers",
        ),
        (
            "DELETE FROM customers /* \0 */ WHERE id = 1",
            "Delete",
            "customers",
        ),
        (
            "UPDATE orders SET status = 'x' --\0\n WHERE id = 7",
            "Update",
            "orders",
        ),
    ];
    for (text, what, object) in table {
        let parsed = sql::parse(text, "sqlite");
        assert_eq!(parsed["ok"], false, "{text:?}: {parsed}");
        let actions = sqlite::actions(text);
        assert!(
            actions
                .iter()
                .any(|a| a.what == *what && a.object == *object),
            "{text:?}: SQLite no longer does {what} on {object}: {actions:?}"
        );
    }
}
