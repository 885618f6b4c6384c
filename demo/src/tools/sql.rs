//! `query` (read-only SQL) and `execute` (writes and DDL).

use super::{required_str, structured_result, Arguments, Outcome};
use crate::database::Database;
use rusqlite::types::ValueRef;
use rusqlite::Connection;
use serde_json::{json, Value};

/// Rows returned by one `query` at most; the rest is reported as truncated.
const MAX_ROWS: usize = 200;

const TABLES: &str = "customers(id, name, email, phone, card_number, address, city, country, \
created_at), orders(id, customer_id, amount_cents, status, created_at), egress_log(id, method, \
url, host, body_bytes, created_at), files(path, content)";

fn sql_input_schema(description: &str) -> Value {
    json!({
        "type": "object",
        "properties": {"sql": {"type": "string", "description": description}},
        "required": ["sql"],
        "additionalProperties": false,
    })
}

/// The `query` tool's definition.
pub(super) fn query_tool() -> Value {
    json!({
        "name": "query",
        "title": "Query the warehouse (read-only)",
        "description": format!(
            "Run one read-only SQL statement (SQLite dialect) against the customer warehouse \
             and return the result as JSON {{columns, rows, row_count, truncated}}. Tables: \
             {TABLES}. Statements that would change data or schema are refused: use the \
             `execute` tool for those. At most {MAX_ROWS} rows are returned; add LIMIT/OFFSET \
             to page."
        ),
        "inputSchema": sql_input_schema("One read-only SQL statement, e.g. SELECT name, email FROM customers LIMIT 5"),
        "outputSchema": {
            "type": "object",
            "properties": {
                "columns": {"type": "array", "items": {"type": "string"}},
                "rows": {"type": "array", "items": {"type": "array"}},
                "row_count": {"type": "integer"},
                "truncated": {"type": "boolean"}
            },
            "required": ["columns", "rows", "row_count", "truncated"]
        },
        "annotations": {"readOnlyHint": true, "destructiveHint": false, "openWorldHint": false},
    })
}

/// The `execute` tool's definition.
pub(super) fn execute_tool() -> Value {
    json!({
        "name": "execute",
        "title": "Change the warehouse (writes and DDL)",
        "description": format!(
            "Run SQL that changes the customer warehouse: INSERT, UPDATE, DELETE, CREATE, \
             ALTER, DROP (SQLite dialect; several statements separated by ';' run in order, \
             and statements before a failing one stay applied). Returns the number of rows \
             affected. Tables: {TABLES}. Changes are real and immediate."
        ),
        "inputSchema": sql_input_schema("SQL to run, e.g. UPDATE orders SET status = 'shipped' WHERE id = 7"),
        "outputSchema": {
            "type": "object",
            "properties": {"rows_affected": {"type": "integer"}},
            "required": ["rows_affected"]
        },
        "annotations": {"readOnlyHint": false, "destructiveHint": true, "openWorldHint": false},
    })
}

/// Runs `query`.
pub(super) fn query(db: &Database, args: &Arguments) -> Outcome {
    let sql = required_str(args, "sql", "query")?;
    db.with(|conn| select(conn, sql))
}

/// Runs `execute`.
pub(super) fn execute(db: &Database, args: &Arguments) -> Outcome {
    let sql = required_str(args, "sql", "execute")?;
    db.with(|conn| {
        let before = conn.total_changes();
        conn.execute_batch(sql)
            .map_err(|e| explain(&e, "execute"))?;
        let rows_affected = conn.total_changes().saturating_sub(before);
        Ok(structured_result(json!({"rows_affected": rows_affected})))
    })
}

fn select(conn: &Connection, sql: &str) -> Outcome {
    let mut stmt = conn.prepare(sql).map_err(|e| explain(&e, "query"))?;
    if !stmt.readonly() {
        return Err(
            "`query` only runs read-only statements (SELECT, WITH ... SELECT, EXPLAIN); \
                    this one would change the database. Use the `execute` tool for INSERT, \
                    UPDATE, DELETE and DDL."
                .to_owned(),
        );
    }
    let columns: Vec<String> = stmt.column_names().into_iter().map(str::to_owned).collect();
    let width = columns.len();
    let mut rows = stmt.query([]).map_err(|e| explain(&e, "query"))?;
    let mut out = Vec::new();
    let mut truncated = false;
    while let Some(row) = rows.next().map_err(|e| explain(&e, "query"))? {
        if out.len() == MAX_ROWS {
            truncated = true;
            break;
        }
        let values = (0..width)
            .map(|i| row.get_ref(i).map(to_json))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| explain(&e, "query"))?;
        out.push(Value::Array(values));
    }
    Ok(structured_result(json!({
        "columns": columns,
        "row_count": out.len(),
        "rows": out,
        "truncated": truncated,
    })))
}

fn to_json(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        // Non-finite reals have no JSON form: they become null.
        ValueRef::Real(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => {
            let hex: String = b.iter().map(|byte| format!("{byte:02x}")).collect();
            Value::String(format!("x'{hex}'"))
        }
    }
}

fn explain(error: &rusqlite::Error, tool: &str) -> String {
    match error {
        rusqlite::Error::MultipleStatement => {
            format!("`{tool}` runs one statement per call; send each statement in its own call")
        }
        other => format!("SQL error: {other}. Check the statement against the tables: {TABLES}"),
    }
}
