//! SQL facts: what each statement of a SQL text does, read by `sqlparser` in the
//! dialect of the server that runs it.
//!
//! Why a parser: a policy that matches strings cannot tell a `--` inside a string
//! literal from a comment, so `UPDATE orders SET status='--' WHERE id=0;/*x*/DROP TABLE
//! customers` looks like one harmless UPDATE to a regex and like an UPDATE and a DROP to
//! SQLite. Here the tokenizer knows literals, comments and separators, and the facts list
//! both statements. What cannot be parsed is an error value (`"ok": false`), never an
//! empty list of harmless statements. The agreement with SQLite is tested by
//! `policy-engine/tests/facts_sql_sqlite.rs`, which runs generated texts through SQLite's
//! authorizer.

mod literals;
mod statement;

use super::{refusal, too_long};
use serde_json::{json, Value};
use sqlparser::dialect::{Dialect, GenericDialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;

pub use literals::literal_spans;

/// The longest SQL text [`parse`] reads, in bytes; longer texts are refused unread.
pub const MAX_SQL_BYTES: usize = 64 * 1024;

/// The most statements one text may hold; a text with more is refused (a policy input
/// with thousands of statement objects would cost more to evaluate than the call is worth).
pub const MAX_STATEMENTS: usize = 256;

/// How deeply expressions and subqueries may nest before `sqlparser` stops with an error
/// (its own default, stated here so the bound is ours): it bounds parse time and stack.
pub const RECURSION_LIMIT: usize = 50;

/// The dialects [`parse`] accepts, by the names servers use in their labels.
pub const DIALECTS: &[&str] = &["generic", "sqlite", "postgres", "postgresql", "mysql"];

/// Reads a SQL text the way a server of `dialect` would, and returns its facts.
///
/// `dialect` is `sqlite`, `postgres` (or `postgresql`), `mysql` or `generic`; the empty
/// string means `generic`. An unknown dialect is an error value, not a silent fallback:
/// a label typo must not change how SQL is read.
///
/// The answer, on success:
///
/// ```json
/// {
///   "ok": true,
///   "dialect": "sqlite",
///   "count": 2,
///   "statements": [
///     {"kind": "update", "reads": ["orders"], "writes": ["orders"], "has_where": true,
///      "schemas": [], "functions": [], "replaces": false, "explain": false},
///     {"kind": "drop", "reads": [], "writes": ["customers"], "has_where": false,
///      "schemas": [], "functions": [], "replaces": false, "explain": false}
///   ]
/// }
/// ```
///
/// - `kind`: `select`, `insert`, `replace` (`INSERT OR REPLACE`, `REPLACE INTO`),
///   `upsert` (`ON CONFLICT DO UPDATE`, `ON DUPLICATE KEY UPDATE`), `update`, `delete`,
///   `create`, `drop`, `alter`, `truncate`, `attach`, `detach`, `pragma`, `vacuum`,
///   `transaction` (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE) or `other`. A query that
///   embeds a data-changing statement (`WITH d AS (DELETE ... RETURNING *) SELECT ...`)
///   takes that statement's kind, never `select`.
/// - `reads`: the tables whose rows it reads: FROM, JOIN, subqueries at any depth, CTE
///   bodies, `INSERT ... SELECT`, and the targets of UPDATE and DELETE (which read the
///   rows they change). CTE names are not tables and are left out where they are in
///   scope; a CTE that names itself (recursive) is reported as a read of that name.
/// - `writes`: the tables and schema objects it changes: INSERT/REPLACE/UPDATE/DELETE
///   targets, created, dropped, altered and renamed objects (an index or trigger with its
///   table), and the targets of statements nested in it (trigger bodies, data-changing
///   CTEs). A table may be in both lists; a rule protecting a table checks both.
/// - Table names are normalised the way SQLite resolves them: quotes of every style
///   (`"x"`, `[x]`, `` `x` ``) removed, ASCII case folded, schema prefix removed
///   (`main.Customers` is `customers`). Qualifiers other than `main` are listed in
///   `schemas` (`temp`, an attached database), so a policy can refuse them.
/// - `has_where`: the statement has a top-level WHERE (for UPDATE and DELETE: whether it
///   is limited to some rows; `WHERE 1=1` still counts as a WHERE).
/// - `functions`: every function called, lower-cased (`load_extension`, `upper`).
/// - `replaces`: conflict resolution may delete rows (`INSERT OR REPLACE`, `REPLACE
///   INTO`, `UPDATE OR REPLACE`).
/// - `explain`: the statement is under EXPLAIN; the other fields describe the explained
///   statement, so EXPLAIN of a DELETE still reads as a delete.
///
/// On failure (does not parse, unknown dialect, over [`MAX_SQL_BYTES`] or
/// [`MAX_STATEMENTS`], nested deeper than [`RECURSION_LIMIT`], holds a NUL character):
/// `{"ok": false, "error": "<the parser's message>", "dialect": ..., "count": 0,
/// "statements": []}`. An empty text (or only comments) is `ok` with no statements.
pub fn parse(text: &str, dialect: &str) -> Value {
    let Some((name, dialect)) = dialect_named(dialect) else {
        return refusal(unknown_dialect(dialect), empty(dialect));
    };
    if text.len() > MAX_SQL_BYTES {
        return refusal(too_long("SQL text", text.len(), MAX_SQL_BYTES), empty(name));
    }
    if text.contains('\0') {
        // SQLite stops reading at a NUL, `sqlparser` reads on: `DELETE FROM t --\0\nWHERE
        // id = 1` is a DELETE with a WHERE to one and of every row to the other.
        let error = "the SQL holds a NUL character, where SQLite stops reading; remove it";
        return refusal(error, empty(name));
    }
    let parsed = Parser::new(dialect)
        .with_recursion_limit(RECURSION_LIMIT)
        .try_with_sql(text)
        .and_then(|mut parser| parser.parse_statements());
    let statements = match parsed {
        Ok(statements) => statements,
        Err(error) => return refusal(format!("the SQL does not parse: {error}"), empty(name)),
    };
    if statements.len() > MAX_STATEMENTS {
        let error = format!(
            "the SQL holds {} statements, over the limit of {MAX_STATEMENTS}; send fewer per call",
            statements.len()
        );
        return refusal(error, empty(name));
    }
    let facts: Vec<Value> = statements.iter().map(statement::facts).collect();
    json!({"ok": true, "dialect": name, "count": facts.len(), "statements": facts})
}

/// The dialect for a label, with its canonical name.
fn dialect_named(label: &str) -> Option<(&'static str, &'static dyn Dialect)> {
    match label.to_ascii_lowercase().as_str() {
        "" | "generic" => Some(("generic", &GenericDialect {})),
        "sqlite" => Some(("sqlite", &SQLiteDialect {})),
        "postgres" | "postgresql" => Some(("postgres", &PostgreSqlDialect {})),
        "mysql" => Some(("mysql", &MySqlDialect {})),
        _ => None,
    }
}

fn unknown_dialect(label: &str) -> String {
    let shown: String = label.chars().take(64).collect();
    format!(
        "unknown SQL dialect {shown:?}; use one of {}",
        DIALECTS.join(", ")
    )
}

fn empty(dialect: &str) -> Value {
    let shown: String = dialect.chars().take(64).collect();
    json!({"dialect": shown, "count": 0, "statements": []})
}

#[cfg(test)]
#[path = "sql_test.rs"]
mod tests;
