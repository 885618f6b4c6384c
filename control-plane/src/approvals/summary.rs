//! The facts a proxy computed for a held call (`Approval.summary_json`), as the lines
//! reviewers read first: in `airlock approvals show`, webhooks and the page's text.
//! Warnings (masking removed something, masking met code, SQL that does not parse)
//! come first, in capitals, so they cannot be missed.

use serde_json::Value;

/// Statements listed per SQL argument at most.
const MAX_STATEMENTS: usize = 20;

/// The summary as lines of text (empty when there is none).
pub fn lines(summary_json: &str) -> Vec<String> {
    let Ok(summary) = serde_json::from_str::<Value>(summary_json) else {
        return Vec::new();
    };
    let mut out: Vec<String> = summary["warnings"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .filter_map(Value::as_str)
        .map(|w| format!("WARNING: {w}"))
        .collect();
    if let Some(arguments) = summary["arguments"].as_object() {
        for (name, facts) in arguments {
            out.extend(argument(name, facts));
        }
    }
    out
}

fn argument(name: &str, facts: &Value) -> Vec<String> {
    let removed = facts["removed_chars"].as_u64().unwrap_or(0);
    let masked = if removed > 0 {
        format!(" ({removed} character(s) masked)")
    } else {
        String::new()
    };
    match facts["type"].as_str() {
        Some("sql") => sql(name, facts, &masked),
        Some("url") => vec![format!(
            "{name}: URL to host {}{}{}{masked}",
            facts["host"].as_str().unwrap_or("?"),
            if facts["userinfo"] == true {
                ", WITH A USER NAME OR PASSWORD"
            } else {
                ""
            },
            if facts["canonical"] == false {
                ", NOT CANONICAL (another client may read it differently)"
            } else {
                ""
            },
        )],
        Some("path") => vec![format!(
            "{name}: path {}{}{masked}",
            facts["normalized"].as_str().unwrap_or("?"),
            if facts["was_normal"] == false {
                " (NORMALISED from another spelling)"
            } else {
                ""
            },
        )],
        _ if removed > 0 => vec![format!("{name}: text{masked}")],
        _ => Vec::new(),
    }
}

fn sql(name: &str, facts: &Value, masked: &str) -> Vec<String> {
    let dialect = facts["dialect"].as_str().unwrap_or("generic");
    if facts["ok"] != true {
        return vec![format!(
            "{name}: SQL ({dialect}) THAT DOES NOT PARSE: {}{masked}",
            facts["error"].as_str().unwrap_or("")
        )];
    }
    let statements = facts["statements"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let mut out = vec![format!(
        "{name}: SQL ({dialect}), {} statement(s){masked}",
        statements.len()
    )];
    for (i, s) in statements.iter().take(MAX_STATEMENTS).enumerate() {
        let list = |key: &str| {
            s[key]
                .as_array()
                .map(|t| {
                    t.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default()
        };
        let kind = s["kind"].as_str().unwrap_or("?").to_uppercase();
        let mut line = format!("  {}. {kind}", i + 1);
        if !list("writes").is_empty() {
            line.push_str(&format!("  writes {}", list("writes")));
        }
        if !list("reads").is_empty() {
            line.push_str(&format!("  reads {}", list("reads")));
        }
        if matches!(kind.as_str(), "UPDATE" | "DELETE") {
            line.push_str(if s["has_where"] == true {
                "  with WHERE"
            } else {
                "  WITHOUT WHERE (every row)"
            });
        }
        out.push(line);
    }
    if statements.len() > MAX_STATEMENTS {
        out.push(format!(
            "  ... and {} more",
            statements.len() - MAX_STATEMENTS
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_first_then_each_argument() {
        let summary = serde_json::json!({
            "warnings": ["`sql`: secret detector(s) matched outside SQL literals"],
            "removed_chars": 0,
            "arguments": {
                "sql": {"type": "sql", "dialect": "sqlite", "ok": true, "removed_chars": 0,
                        "statements": [
                            {"kind": "update", "reads": ["orders"], "writes": ["orders"], "has_where": true},
                            {"kind": "delete", "reads": ["customers"], "writes": ["customers"], "has_where": false}]},
                "url": {"type": "url", "host": "api.github.com", "canonical": false, "userinfo": false, "removed_chars": 0},
            }
        });
        let text = lines(&summary.to_string()).join("\n");
        assert_eq!(
            text,
            "WARNING: `sql`: secret detector(s) matched outside SQL literals\n\
             sql: SQL (sqlite), 2 statement(s)\n\
             \x20 1. UPDATE  writes orders  reads orders  with WHERE\n\
             \x20 2. DELETE  writes customers  reads customers  WITHOUT WHERE (every row)\n\
             url: URL to host api.github.com, NOT CANONICAL (another client may read it differently)"
        );
        assert!(lines("").is_empty());
    }
}
