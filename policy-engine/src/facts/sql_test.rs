use super::*;
use serde_json::json;

fn only(sql: &str) -> Value {
    let parsed = parse(sql, "sqlite");
    assert_eq!(parsed["ok"], true, "{sql}: {parsed}");
    assert_eq!(parsed["count"], 1, "{sql}: {parsed}");
    parsed["statements"][0].clone()
}

#[test]
fn kinds() {
    let table = [
        ("SELECT 1", "select"),
        ("WITH c AS (SELECT 1) SELECT * FROM c", "select"),
        ("VALUES (1)", "select"),
        ("INSERT INTO orders (id) VALUES (1)", "insert"),
        ("INSERT OR IGNORE INTO orders (id) VALUES (1)", "insert"),
        (
            "INSERT INTO orders (id) VALUES (1) ON CONFLICT DO NOTHING",
            "insert",
        ),
        ("INSERT OR REPLACE INTO orders (id) VALUES (1)", "replace"),
        ("REPLACE INTO orders (id) VALUES (1)", "replace"),
        (
            "INSERT INTO orders (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET status = 'x'",
            "upsert",
        ),
        ("UPDATE orders SET status = 'x'", "update"),
        ("DELETE FROM orders", "delete"),
        ("CREATE TABLE t (a)", "create"),
        ("CREATE VIEW v AS SELECT 1", "create"),
        ("CREATE INDEX i ON orders (status)", "create"),
        ("CREATE VIRTUAL TABLE t USING fts5(a)", "create"),
        ("DROP TABLE orders", "drop"),
        ("DROP VIEW v", "drop"),
        ("ALTER TABLE orders ADD COLUMN z", "alter"),
        ("ALTER TABLE orders RENAME TO o", "alter"),
        ("ATTACH DATABASE 'x.db' AS aux", "attach"),
        ("PRAGMA user_version = 3", "pragma"),
        ("VACUUM", "vacuum"),
        ("BEGIN", "transaction"),
        ("BEGIN IMMEDIATE TRANSACTION", "transaction"),
        ("COMMIT", "transaction"),
        ("END", "transaction"),
        ("ROLLBACK", "transaction"),
        ("SAVEPOINT s", "transaction"),
        ("RELEASE SAVEPOINT s", "transaction"),
        ("ANALYZE", "other"),
    ];
    for (sql, kind) in table {
        assert_eq!(only(sql)["kind"], kind, "{sql}");
    }
    assert_eq!(
        parse("TRUNCATE TABLE orders", "postgres")["statements"][0]["kind"],
        "truncate"
    );
    assert_eq!(
        parse(
            "INSERT INTO orders (id) VALUES (1) ON DUPLICATE KEY UPDATE id = 2",
            "mysql"
        )["statements"][0]["kind"],
        "upsert"
    );
    assert_eq!(
        parse("REPLACE INTO orders VALUES (1)", "mysql")["statements"][0]["kind"],
        "replace"
    );
    let copy = &parse("COPY orders FROM '/tmp/rows.csv'", "postgres")["statements"][0];
    assert_eq!(
        (&copy["kind"], &copy["writes"]),
        (&json!("other"), &json!(["orders"]))
    );
}

#[test]
fn the_issue_attacks_read_as_sqlite_reads_them() {
    let parsed = parse(
        "UPDATE orders SET status='--' WHERE id=0;/*x*/DROP TABLE customers",
        "sqlite",
    );
    assert_eq!(parsed["count"], 2, "{parsed}");
    assert_eq!(parsed["statements"][0]["kind"], "update");
    assert_eq!(parsed["statements"][0]["has_where"], true);
    assert_eq!(parsed["statements"][1]["kind"], "drop");
    assert_eq!(parsed["statements"][1]["writes"], json!(["customers"]));

    let pem = "UPDATE orders SET status='shipped' WHERE id=7; -- -----BEGIN PRIVATE KEY-----\nDELETE FROM customers";
    let parsed = parse(pem, "sqlite");
    assert_eq!(parsed["statements"][1]["kind"], "delete", "{parsed}");
    assert_eq!(parsed["statements"][1]["has_where"], false);
    assert_eq!(parsed["statements"][1]["writes"], json!(["customers"]));

    let read = only("SELECT content FROM files WHERE path='/app/.env'");
    assert_eq!(read["reads"], json!(["files"]));
    assert_eq!(read["writes"], json!([]));
}

#[test]
fn names_are_resolved_like_sqlite() {
    for sql in [
        "SELECT * FROM customers",
        "SELECT * FROM \"customers\"",
        "SELECT * FROM [Customers]",
        "SELECT * FROM `CUSTOMERS`",
        "SELECT * FROM main.customers",
        "SELECT * FROM \"main\".\"Customers\"",
        "SELECT * FROM MAIN.[customers]",
    ] {
        let s = only(sql);
        assert_eq!(s["reads"], json!(["customers"]), "{sql}");
        assert_eq!(s["schemas"], json!([]), "{sql}");
    }
    let s = only("SELECT * FROM temp.Customers JOIN aux.orders ON 1");
    assert_eq!(s["reads"], json!(["customers", "orders"]));
    assert_eq!(s["schemas"], json!(["aux", "temp"]));
    // SQLite folds ASCII only: `É` and `é` are different names.
    assert_eq!(only("SELECT * FROM \"Éte\"")["reads"], json!(["Éte"]));
}

#[test]
fn reads_reach_every_depth() {
    let cases = [
        (
            "SELECT * FROM a JOIN b ON 1 LEFT JOIN c ON 1",
            json!(["a", "b", "c"]),
        ),
        (
            "SELECT (SELECT max(x) FROM b) FROM a WHERE y IN (SELECT y FROM c)",
            json!(["a", "b", "c"]),
        ),
        (
            "SELECT 1 WHERE EXISTS (SELECT 1 FROM (SELECT * FROM files))",
            json!(["files"]),
        ),
        ("SELECT * FROM a UNION SELECT * FROM b", json!(["a", "b"])),
        (
            "WITH c AS (SELECT * FROM files) SELECT * FROM c",
            json!(["files"]),
        ),
        (
            "WITH c AS (SELECT 1), d AS (SELECT * FROM c) SELECT * FROM d",
            json!([]),
        ),
        (
            "SELECT * FROM files WHERE 1 IN (WITH files AS (SELECT 1) SELECT * FROM files)",
            json!(["files"]),
        ),
        (
            "WITH files AS (SELECT * FROM files) SELECT * FROM files",
            json!(["files"]),
        ),
        (
            "SELECT x IN orders FROM customers",
            json!(["customers", "orders"]),
        ),
        (
            "SELECT * FROM pragma_table_info('files')",
            json!(["pragma_table_info"]),
        ),
    ];
    for (sql, reads) in cases {
        assert_eq!(only(sql)["reads"], reads, "{sql}");
    }
}

#[test]
fn writes_and_reads_of_changing_statements() {
    let cases = [
        (
            "INSERT INTO orders SELECT * FROM files",
            json!(["files"]),
            json!(["orders"]),
        ),
        (
            "INSERT INTO orders SELECT * FROM orders",
            json!(["orders"]),
            json!(["orders"]),
        ),
        (
            "INSERT INTO orders (id) VALUES (1)",
            json!([]),
            json!(["orders"]),
        ),
        (
            "UPDATE orders SET status = (SELECT name FROM customers) WHERE id = 1",
            json!(["customers", "orders"]),
            json!(["orders"]),
        ),
        (
            "UPDATE orders SET status = 'x' FROM files WHERE 1",
            json!(["files", "orders"]),
            json!(["orders"]),
        ),
        (
            "DELETE FROM orders WHERE id IN (SELECT id FROM files)",
            json!(["files", "orders"]),
            json!(["orders"]),
        ),
        (
            "CREATE TABLE copy AS SELECT * FROM files",
            json!(["files"]),
            json!(["copy"]),
        ),
        (
            "CREATE INDEX i ON orders (status)",
            json!(["orders"]),
            json!(["i", "orders"]),
        ),
        (
            "ALTER TABLE orders RENAME TO o2",
            json!([]),
            json!(["o2", "orders"]),
        ),
        ("DROP TABLE IF EXISTS a, b", json!([]), json!(["a", "b"])),
        (
            "CREATE TRIGGER t AFTER INSERT ON orders BEGIN DELETE FROM customers; END",
            json!(["customers"]),
            json!(["customers", "orders", "t"]),
        ),
    ];
    for (sql, reads, writes) in cases {
        let s = only(sql);
        assert_eq!((&s["reads"], &s["writes"]), (&reads, &writes), "{sql}");
    }
}

#[test]
fn flags() {
    assert_eq!(
        only("UPDATE orders SET status = 'x' WHERE 1=1")["has_where"],
        true
    );
    assert_eq!(only("DELETE FROM orders")["has_where"], false);
    assert_eq!(
        only("UPDATE OR REPLACE orders SET id = 1")["replaces"],
        true
    );
    assert_eq!(
        only("INSERT INTO orders (id) VALUES (1)")["replaces"],
        false
    );
    let explained = only("EXPLAIN QUERY PLAN DELETE FROM customers");
    assert_eq!(
        (&explained["kind"], &explained["explain"]),
        (&json!("delete"), &json!(true))
    );
    assert_eq!(
        only("SELECT load_extension('x'), UPPER(name), main.f(1) FROM t")["functions"],
        json!(["f", "load_extension", "upper"])
    );
    let attach = only("ATTACH ':memory:' AS Aux");
    assert_eq!(attach["schemas"], json!(["aux"]));
    assert_eq!(only("PRAGMA aux.user_version")["schemas"], json!(["aux"]));
}

#[test]
fn a_data_changing_cte_is_not_a_select() {
    let parsed = parse(
        "WITH gone AS (DELETE FROM customers RETURNING *) SELECT * FROM gone",
        "postgres",
    );
    let s = &parsed["statements"][0];
    assert_eq!(s["kind"], "delete", "{parsed}");
    assert_eq!(s["writes"], json!(["customers"]));
}

#[test]
fn dialects_read_quotes_their_own_way() {
    // MySQL: a backslash escapes the quote, so the DROP is inside the string.
    let mysql = parse(r"SELECT 'a\'; DROP TABLE t; -- '", "mysql");
    assert_eq!(mysql["count"], 1, "{mysql}");
    // SQLite: no backslash escapes: the string ends at the second quote.
    let sqlite = parse(r"SELECT 'a\'; DROP TABLE t; -- '", "sqlite");
    assert_eq!(sqlite["count"], 2, "{sqlite}");
    assert_eq!(sqlite["statements"][1]["kind"], "drop");
    // Postgres nests block comments; SQLite does not.
    let text = "SELECT 1 /* a /* b */ ; DROP TABLE t; */";
    assert_eq!(parse(text, "postgres")["count"], 1);
    assert_eq!(parse(text, "sqlite")["ok"], false);
    assert_eq!(parse("SELECT 1", "")["dialect"], "generic");
    assert_eq!(parse("SELECT 1", "PostgreSQL")["dialect"], "postgres");
}

#[test]
fn refusals_are_values_with_no_statements() {
    for (sql, dialect, needle) in [
        ("SELECT 1", "oracle", "unknown SQL dialect"),
        ("DELETE FROM", "sqlite", "does not parse"),
        ("SELECT 'open", "sqlite", "does not parse"),
        ("DETACH aux", "sqlite", "does not parse"),
        ("DELETE FROM customers -- \0\nWHERE id = 1", "sqlite", "NUL"),
        ("SELECT 1 /* \0 */", "postgres", "NUL"),
    ] {
        let parsed = parse(sql, dialect);
        assert_eq!(parsed["ok"], false, "{sql}");
        assert!(
            parsed["error"].as_str().unwrap().contains(needle),
            "{parsed}"
        );
        assert_eq!(parsed["statements"], json!([]));
        assert_eq!(parsed["count"], 0);
    }
    let long = format!("SELECT '{}'", "x".repeat(MAX_SQL_BYTES));
    assert!(parse(&long, "sqlite")["error"]
        .as_str()
        .unwrap()
        .contains("limit"));
    let many = "SELECT 1;".repeat(MAX_STATEMENTS + 1);
    assert!(parse(&many, "sqlite")["error"]
        .as_str()
        .unwrap()
        .contains("statements"));
    let deep = format!("SELECT {}1{}", "(".repeat(200), ")".repeat(200));
    assert_eq!(parse(&deep, "sqlite")["ok"], false);
    assert_eq!(
        parse("", "sqlite"),
        json!({"ok": true, "dialect": "sqlite", "count": 0, "statements": []})
    );
    assert_eq!(parse("-- nothing", "sqlite")["count"], 0);
}

#[test]
fn literal_spans_cover_values_only() {
    let text = "UPDATE orders SET status='--' WHERE id=0;/*x*/DROP TABLE customers";
    let spans = literal_spans(text, "sqlite");
    let values: Vec<&str> = spans.iter().map(|r| &text[r.clone()]).collect();
    assert_eq!(values, ["--", "0"]);

    let text = "SELECT 'it''s', x'00ff', 1.5e3, \"ident\", [also], 'é' -- '1'\n";
    let values: Vec<&str> = literal_spans(text, "sqlite")
        .iter()
        .map(|r| &text[r.clone()])
        .collect();
    assert_eq!(values, ["it", "s", "00ff", "1.5e3", "é"]);

    let text = "SELECT $t$a'b$t$, E'x\\'y'";
    let values: Vec<&str> = literal_spans(text, "postgres")
        .iter()
        .map(|r| &text[r.clone()])
        .collect();
    assert_eq!(values, ["a'b", "x", "y"]);

    let text = "SELECT \"dq\", 'a\\'b'";
    let values: Vec<&str> = literal_spans(text, "mysql")
        .iter()
        .map(|r| &text[r.clone()])
        .collect();
    assert_eq!(values, ["dq", "a", "b"]);

    let text = "SELECT 1\nFROM t WHERE a = '\nsecret\n' AND b = 22";
    let values: Vec<&str> = literal_spans(text, "sqlite")
        .iter()
        .map(|r| &text[r.clone()])
        .collect();
    assert_eq!(values, ["1", "\nsecret\n", "22"]);

    // Quoted strings SQLite reads as names are not values.
    let text = "DELETE FROM 'customers' WHERE name = 'ada'; SELECT 1 'alias'";
    let values: Vec<&str> = literal_spans(text, "sqlite")
        .iter()
        .map(|r| &text[r.clone()])
        .collect();
    assert_eq!(values, ["ada", "1"]);

    assert!(literal_spans("SELECT 'open", "sqlite").is_empty());
    assert!(literal_spans("SELECT 1; DROP", "sqlite").is_empty());
    assert!(literal_spans("SELECT 1", "nope").is_empty());
}
