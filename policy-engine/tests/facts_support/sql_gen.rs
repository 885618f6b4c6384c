//! Generated SQL texts built to make two tokenizers disagree: statements of every kind
//! on the demo's tables, identifiers in every quoting style, literals holding comment
//! markers, quotes and separators, comments and odd whitespace between tokens, several
//! statements per text, and stray quote or comment characters dropped in anywhere.

use proptest::prelude::*;
use proptest::sample::select;

/// Tables and a column each has.
const TABLES: &[(&str, &str)] = &[
    ("customers", "name"),
    ("orders", "status"),
    ("files", "content"),
    ("egress_log", "host"),
];

/// A table name in one quoting style (index into `TABLES`, style).
fn quoted(name: &str, style: usize) -> String {
    let upper = name.to_ascii_uppercase();
    match style {
        0 => name.to_owned(),
        1 => format!("\"{name}\""),
        2 => format!("[{name}]"),
        3 => format!("`{name}`"),
        4 => format!("main.{name}"),
        5 => format!("\"main\".\"{upper}\""),
        6 => format!("MAIN.[{upper}]"),
        7 => upper,
        8 => format!("aux.{name}"),
        9 => format!("temp.`{name}`"),
        _ => format!("'{name}'"),
    }
}

fn table() -> impl Strategy<Value = (String, String)> {
    (0..TABLES.len(), 0..11usize).prop_map(|(t, style)| {
        let (name, column) = TABLES[t];
        (quoted(name, style), column.to_owned())
    })
}

/// A name for a new object, in some quoting style.
fn new_name() -> impl Strategy<Value = String> {
    (select(&["n1", "n2", "v1", "trg"][..]), 0..8usize).prop_map(|(n, s)| quoted(n, s))
}

/// Literals, many of them holding what a naive scanner takes for structure.
fn literal() -> impl Strategy<Value = String> {
    select(
        &[
            "0",
            "7",
            "-1",
            "1.5e3",
            "0x1F",
            "NULL",
            "'x'",
            "''",
            "'--'",
            "'/*'",
            "'*/'",
            "';'",
            "'it''s'",
            "'\\'",
            "'\"'",
            "'`'",
            "'['",
            "']'",
            "'DROP TABLE customers'",
            "'--;DROP TABLE customers'",
            "x'00ff'",
            "\"dq\"",
            "'$$'",
            "'#'",
            "'/app/.env'",
            "'a\nb'",
            "'-----BEGIN PRIVATE KEY-----'",
            "E'a\\'",
            "N'x'",
            "X'41'",
            "B'01'",
            "U&'x'",
            "'a\\'",
            "$1",
        ][..],
    )
    .prop_map(str::to_owned)
}

/// What separates two tokens: whitespace both read the same, comments with tricks
/// (`noisy`: also characters whose whitespace-ness is a matter of opinion).
fn gap(noisy: bool) -> BoxedStrategy<&'static str> {
    let plain = prop_oneof![
        8 => Just(" "),
        1 => Just("\n"),
        1 => Just("\t"),
        1 => Just("\r\n"),
        1 => Just("/**/"),
        1 => Just("/* ; DROP TABLE customers; */"),
        1 => Just("-- ; DROP TABLE files\n"),
        1 => Just("/* /* */ "),
        1 => Just("/*/ */"),
        1 => Just("--\r\n"),
    ];
    if !noisy {
        return plain.boxed();
    }
    prop_oneof![
        12 => plain,
        1 => Just("\u{0c}"),
        1 => Just("\u{0b}"),
        1 => Just("\u{a0}"),
        1 => Just("\u{2028}"),
        1 => Just("#x\n"),
        1 => Just("--\r"),
    ]
    .boxed()
}

/// One statement as a list of tokens.
fn statement() -> impl Strategy<Value = Vec<String>> {
    let dml = (table(), table(), literal(), literal(), any::<bool>()).prop_flat_map(
        |((t, c), (t2, c2), l, l2, with_where)| {
            let w = if with_where { format!("WHERE {c} = {l2}") } else { String::new() };
            select(vec![
                format!("SELECT {c} FROM {t} {w}"),
                format!("SELECT * FROM {t} JOIN {t2} ON 1 {w}"),
                format!("SELECT {c} FROM {t} WHERE {c} IN (SELECT {c2} FROM {t2})"),
                format!("WITH x AS (SELECT * FROM {t}) SELECT * FROM x"),
                format!("WITH {t2} AS (SELECT 1 AS {c}) SELECT * FROM {t} WHERE 0 IN (SELECT * FROM {t2})"),
                format!("SELECT upper({l}), length({c}) FROM {t}"),
                format!("SELECT {c} FROM {t} WHERE {c} LIKE {l}"),
                format!("INSERT INTO {t} ({c}) VALUES ({l})"),
                format!("INSERT INTO {t} SELECT * FROM {t}"),
                format!("INSERT OR REPLACE INTO {t} ({c}) VALUES ({l})"),
                format!("REPLACE INTO {t} ({c}) VALUES ({l})"),
                format!("INSERT INTO {t} ({c}) VALUES ({l}) ON CONFLICT DO UPDATE SET {c} = {l2}"),
                format!("INSERT OR IGNORE INTO {t} ({c}) VALUES ({l})"),
                format!("UPDATE {t} SET {c} = {l} {w}"),
                format!("UPDATE OR REPLACE {t} SET {c} = {l} {w}"),
                format!("UPDATE {t} SET {c} = (SELECT {c2} FROM {t2} LIMIT 1)"),
                format!("DELETE FROM {t} {w}"),
                format!("EXPLAIN DELETE FROM {t} {w}"),
                format!("EXPLAIN QUERY PLAN SELECT * FROM {t}"),
                format!("SELECT * FROM pragma_table_info({l})"),
                format!("SELECT {l} {l2}"),
                format!("SELECT CAST({l} AS TEXT {l2})"),
                format!("SELECT * FROM {t} {l2}"),
            ])
        },
    );
    let ddl = (table(), table(), new_name(), literal()).prop_flat_map(|((t, c), (t2, _), n, l)| {
        select(vec![
            "SELECT * FROM sqlite_schema".to_owned(),
            "SELECT name FROM temp.sqlite_master".to_owned(),
            "SELECT sql FROM \"main\".SQLITE_MASTER".to_owned(),
            "SELECT * FROM sqlite_temp_schema".to_owned(),
            format!("DROP TABLE {t}"),
            format!("DROP TABLE IF EXISTS {t}"),
            format!("CREATE TABLE {n} (a, b)"),
            format!("CREATE TABLE {n} AS SELECT * FROM {t}"),
            format!("CREATE INDEX {n} ON {t} ({c})"),
            format!("CREATE VIEW {n} AS SELECT * FROM {t}"),
            format!("CREATE TEMP VIEW {n} AS SELECT * FROM {t}"),
            format!("CREATE TRIGGER {n} AFTER INSERT ON {t} BEGIN DELETE FROM {t2}; END"),
            format!("DROP VIEW {n}"),
            format!("DROP INDEX {n}"),
            format!("DROP TRIGGER {n}"),
            format!("ALTER TABLE {t} ADD COLUMN z"),
            format!("ALTER TABLE {t} RENAME TO {n}"),
            format!("ALTER TABLE {t} RENAME COLUMN {c} TO z"),
            "ATTACH ':memory:' AS aux".to_owned(),
            "ATTACH DATABASE '' AS aux".to_owned(),
            "DETACH aux".to_owned(),
            "PRAGMA user_version".to_owned(),
            format!("PRAGMA user_version = {l}"),
            "PRAGMA main.writable_schema = 1".to_owned(),
            format!("PRAGMA table_info({t})"),
            "VACUUM".to_owned(),
            "BEGIN".to_owned(),
            "COMMIT".to_owned(),
            "ROLLBACK".to_owned(),
            "SAVEPOINT s".to_owned(),
            "RELEASE s".to_owned(),
            "ANALYZE".to_owned(),
            "REINDEX".to_owned(),
        ])
    });
    prop_oneof![3 => dml, 2 => ddl].prop_map(|text| {
        text.split(' ')
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect()
    })
}

/// What separates two statements.
fn separator() -> impl Strategy<Value = &'static str> {
    select(&[";", ";\n", "; -- next\n", ";/*x*/", ";;", " ; ", ";\r\n"][..])
}

/// Characters dropped in at a random place: each can turn code into a literal or a
/// comment, or end one, for one tokenizer and not the other.
fn stray() -> impl Strategy<Value = &'static str> {
    select(
        &[
            "'", "\"", "`", "[", "]", "--", "/*", "*/", ";", "\\", "\n", "#", "$$", "\u{0}",
        ][..],
    )
}

/// A whole SQL text: one to four statements, gaps between their tokens, an optional
/// trailer; at the noisier levels odd whitespace and up to two stray characters.
pub fn text() -> impl Strategy<Value = String> {
    (0..3u8).prop_flat_map(|level| {
        let strays = if level == 2 { 1..=2usize } else { 0..=0usize };
        (
            prop::collection::vec(statement(), 1..=4),
            prop::collection::vec(gap(level > 0), 48),
            prop::collection::vec(separator(), 4),
            select(&["", ";", " -- trailing", " /* unterminated", "--", ";\n"][..]),
            prop::collection::vec((any::<prop::sample::Index>(), stray()), strays),
        )
            .prop_map(assemble)
    })
}

type Parts = (
    Vec<Vec<String>>,
    Vec<&'static str>,
    Vec<&'static str>,
    &'static str,
    Vec<(prop::sample::Index, &'static str)>,
);

fn assemble((statements, gaps, separators, trailer, strays): Parts) -> String {
    let mut out = String::new();
    let mut g = gaps.iter().cycle();
    for (i, tokens) in statements.iter().enumerate() {
        if i > 0 {
            out.push_str(separators[i % separators.len()]);
        }
        for (j, token) in tokens.iter().enumerate() {
            if j > 0 {
                out.push_str(g.next().unwrap());
            }
            out.push_str(token);
        }
    }
    out.push_str(trailer);
    for (at, s) in strays {
        let boundaries: Vec<usize> = out
            .char_indices()
            .map(|(i, _)| i)
            .chain([out.len()])
            .collect();
        let at = boundaries[at.index(boundaries.len())];
        out.insert_str(at, s);
    }
    out
}
