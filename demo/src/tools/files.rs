//! `read_file`: reads the app's virtual disk (the `files` table), never the real one.

use super::{required_str, text_result, Arguments, Outcome};
use crate::database::Database;
use rusqlite::OptionalExtension;
use serde_json::{json, Value};

/// The `read_file` tool's definition.
pub(super) fn tool() -> Value {
    json!({
        "name": "read_file",
        "title": "Read a file",
        "description": "Read a text file of the billing-api application host by absolute path \
            (for example /app/config.yaml or /app/README.md) and return its content. The files \
            live in the demo's virtual disk (the `files` table); list them with the `query` \
            tool: SELECT path FROM files.",
        "inputSchema": {
            "type": "object",
            "properties": {"path": {"type": "string", "description": "Absolute path, e.g. /app/config.yaml"}},
            "required": ["path"],
            "additionalProperties": false,
        },
        "annotations": {"readOnlyHint": true, "destructiveHint": false, "openWorldHint": false},
    })
}

/// Runs `read_file`.
pub(super) fn read(db: &Database, args: &Arguments) -> Outcome {
    let path = required_str(args, "path", "read_file")?;
    let lookup = db.with(|conn| {
        let content: Option<String> = conn
            .query_row("SELECT content FROM files WHERE path = ?1", [path], |r| {
                r.get(0)
            })
            .optional()?;
        let known = match content {
            Some(_) => Vec::new(),
            None => {
                let mut stmt = conn.prepare("SELECT path FROM files ORDER BY path")?;
                let paths = stmt.query_map([], |r| r.get::<_, String>(0))?;
                paths.collect::<Result<Vec<_>, _>>()?
            }
        };
        Ok::<_, rusqlite::Error>((content, known))
    });
    match lookup {
        Ok((Some(content), _)) => Ok(text_result(content)),
        Ok((None, known)) => Err(format!(
            "no such file: {path}. Files on this host: {}",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        )),
        Err(e) => Err(format!("`read_file` could not read {path}: {e}")),
    }
}
