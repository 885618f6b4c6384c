//! The four demo tools: their schemas (`tools/list`) and their execution (`tools/call`).
//!
//! A tool that runs but fails (bad SQL, unknown file) answers a result with
//! `isError: true` and a text that says what to do; only protocol problems (unknown
//! tool, malformed params) are JSON-RPC errors, one level up.

pub(crate) mod egress;
mod files;
mod sql;

use crate::database::Database;
use serde_json::{json, Map, Value};

/// Tool arguments, as sent in `params.arguments`.
pub(crate) type Arguments = Map<String, Value>;

const NAMES: &[&str] = &["query", "execute", "http_request", "read_file"];

/// True for a tool this server has.
pub(crate) fn is_known(name: &str) -> bool {
    NAMES.contains(&name)
}

/// The `tools/list` result.
pub(crate) fn catalog() -> Value {
    json!({"tools": [sql::query_tool(), sql::execute_tool(), egress::tool(), files::tool()]})
}

/// Runs a known tool; blocking (it takes the database lock).
pub(crate) fn run(db: &Database, name: &str, args: &Arguments) -> Value {
    let outcome = match name {
        "query" => sql::query(db, args),
        "execute" => sql::execute(db, args),
        "http_request" => egress::request(db, args),
        "read_file" => files::read(db, args),
        other => Err(format!("unknown tool: {other}; call tools/list")),
    };
    outcome.unwrap_or_else(error_result)
}

/// What a tool returns: a result, or the text of a tool error.
type Outcome = Result<Value, String>;

/// A plain-text result.
fn text_result(text: impl Into<String>) -> Value {
    json!({"content": [{"type": "text", "text": text.into()}], "isError": false})
}

/// A structured result, with its JSON text as the text content for older clients.
fn structured_result(structured: Value) -> Value {
    json!({
        "content": [{"type": "text", "text": structured.to_string()}],
        "structuredContent": structured,
        "isError": false,
    })
}

fn error_result(text: String) -> Value {
    json!({"content": [{"type": "text", "text": text}], "isError": true})
}

/// A required, non-blank string argument.
fn required_str<'a>(args: &'a Arguments, name: &str, tool: &str) -> Result<&'a str, String> {
    match args.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
        Some(Value::String(_)) => Err(format!("`{tool}`: argument \"{name}\" is empty")),
        Some(_) => Err(format!("`{tool}`: argument \"{name}\" must be a string")),
        None => Err(format!("`{tool}` needs the argument \"{name}\"")),
    }
}

/// An optional string argument.
fn optional_str<'a>(
    args: &'a Arguments,
    name: &str,
    tool: &str,
) -> Result<Option<&'a str>, String> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("`{tool}`: argument \"{name}\" must be a string")),
    }
}
