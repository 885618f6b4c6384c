//! What reviewers see of a held call: facts the proxy computes from the *unmasked*
//! payload, first, then the masked arguments.
//!
//! For each argument the decision's `approval.facts` names (or that reads as one:
//! an http(s) URL, an absolute path, SQL), the summary holds its parsed facts, with no
//! values: the SQL statements (kind, tables read and written, WHERE present), the
//! URL's host, the normalised path. Every argument says how many characters masking
//! removed from it. In SQL, masking replaces literal values only (the strings and
//! numbers `airlock_policy::facts::sql::literal_spans` names), never keywords,
//! comments or separators: a detector match outside the literals is shown unmasked
//! (the reviewer sees exactly what runs) and listed in `outside_literals`, which the
//! policy sees as `input.review` in a second decision and the default policy answers
//! with a stronger approval.

use crate::mask::{Family, MaskSet};
use airlock_policy::facts::{path, sql, url};
use airlock_policy::ArgumentKind;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::ops::Range;

/// Arguments described at most (the rest are masked, not summarised).
const MAX_ARGUMENTS: usize = 64;
/// Statements described per SQL argument at most.
const MAX_STATEMENTS: usize = 64;

/// A held call as reviewers see it.
#[derive(Debug, Clone)]
pub(crate) struct ReviewView {
    /// The canonical payload, masked as described above.
    pub(crate) shown: String,
    /// Whether masking changed anything.
    pub(crate) masked: bool,
    /// The facts: `{"arguments": {...}, "removed_chars": n, "warnings": [...]}`.
    pub(crate) summary: Value,
}

/// The reviewer's view of the canonical payload `canonical` (`{"method", "params"}`).
pub(crate) fn review(
    canonical: &str,
    hints: &BTreeMap<String, ArgumentKind>,
    last_four: bool,
) -> ReviewView {
    let set = MaskSet::all(last_four);
    let Ok(mut payload) = serde_json::from_str::<Value>(canonical) else {
        return ReviewView {
            shown: canonical.to_owned(),
            masked: false,
            summary: json!({"arguments": {}, "removed_chars": 0, "warnings": []}),
        };
    };
    let arguments = payload
        .pointer_mut("/params/arguments")
        .and_then(Value::as_object_mut)
        .map(std::mem::take)
        .unwrap_or_default();
    let mut summaries = Map::new();
    let mut shown_arguments = Map::new();
    let mut warnings = Vec::new();
    let mut removed_total = 0;
    for (index, (name, value)) in arguments.into_iter().enumerate() {
        let described = argument(&name, value, hints.get(&name), &set);
        removed_total += described.removed_chars;
        warnings.extend(described.warnings);
        if index < MAX_ARGUMENTS {
            summaries.insert(name.clone(), described.summary);
        }
        shown_arguments.insert(name, described.shown);
    }
    // The rest of the payload (the tool name, _meta, ...) is masked as any payload.
    let mut masked = set.apply(&mut payload) > 0;
    masked |= removed_total > 0;
    if let Some(params) = payload.get_mut("params").and_then(Value::as_object_mut) {
        if !shown_arguments.is_empty() {
            params.insert("arguments".to_owned(), Value::Object(shown_arguments));
        }
    }
    let text = payload.to_string();
    ReviewView {
        shown: airlock_policy::canonical::recanonicalize(&text).unwrap_or(text),
        masked,
        summary: json!({
            "arguments": summaries,
            "removed_chars": removed_total,
            "warnings": warnings,
        }),
    }
}

/// One argument described.
struct Described {
    shown: Value,
    summary: Value,
    removed_chars: usize,
    warnings: Vec<String>,
}

fn argument(name: &str, value: Value, hint: Option<&ArgumentKind>, set: &MaskSet) -> Described {
    let Value::String(text) = value else {
        let mut shown = value;
        let redactions = set.apply(&mut shown);
        let mut warnings = Vec::new();
        if redactions > 0 {
            warnings.push(format!(
                "masking replaced {redactions} value(s) in `{name}`"
            ));
        }
        return Described {
            shown,
            summary: json!({"type": "value", "redactions": redactions}),
            removed_chars: 0,
            warnings,
        };
    };
    let kind = hint.cloned().or_else(|| detect(&text));
    match kind {
        Some(ArgumentKind::Sql { dialect }) => sql_argument(name, &text, &dialect, set),
        Some(ArgumentKind::Url) => text_argument(name, &text, set, url_facts(&text)),
        Some(ArgumentKind::Path) => text_argument(name, &text, set, path_facts(&text)),
        None => text_argument(name, &text, set, json!({"type": "text"})),
    }
}

/// What an argument without a hint reads as: an http(s) URL, an absolute path, or
/// SQL of known kinds; else plain text.
fn detect(text: &str) -> Option<ArgumentKind> {
    if text.contains("://") {
        let facts = url::parse(text);
        let web = matches!(facts["scheme"].as_str(), Some("http" | "https"));
        if facts["ok"] == true && web {
            return Some(ArgumentKind::Url);
        }
    }
    let path_like = text.starts_with('/') || text.starts_with("~/") || text.starts_with("../");
    if path_like && !text.chars().any(char::is_whitespace) {
        return Some(ArgumentKind::Path);
    }
    let facts = sql::parse(text, "generic");
    let statements = facts["statements"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let known = |s: &Value| s["kind"].as_str().is_some_and(|k| k != "other");
    if facts["ok"] == true && !statements.is_empty() && statements.iter().all(known) {
        return Some(ArgumentKind::Sql {
            dialect: "generic".to_owned(),
        });
    }
    None
}

fn url_facts(text: &str) -> Value {
    let f = url::parse(text);
    json!({
        "type": "url", "ok": f["ok"], "scheme": f["scheme"], "host": f["host"],
        "port": f["port"], "userinfo": f["userinfo"], "canonical": f["canonical"],
        "ambiguities": f["ambiguities"],
    })
}

fn path_facts(text: &str) -> Value {
    let f = path::normalize(text);
    json!({
        "type": "path", "ok": f["ok"], "normalized": f["normalized"],
        "was_normal": f["was_normal"], "escapes_root": f["escapes_root"],
    })
}

/// A text argument: masked whole, with its facts.
fn text_argument(name: &str, text: &str, set: &MaskSet, mut summary: Value) -> Described {
    let removed = covered(text, &set.match_ranges(text));
    let shown = set.mask_str(text).unwrap_or_else(|| text.to_owned());
    summary["removed_chars"] = json!(removed);
    let mut warnings = Vec::new();
    if removed > 0 {
        warnings.push(format!(
            "masking removed {removed} character(s) from `{name}`"
        ));
    }
    Described {
        shown: Value::String(shown),
        summary,
        removed_chars: removed,
        warnings,
    }
}

/// A SQL argument: its statements, and masking inside its literals only.
fn sql_argument(name: &str, text: &str, dialect: &str, set: &MaskSet) -> Described {
    let facts = sql::parse(text, dialect);
    if facts["ok"] != true {
        // No literals can be told apart: masked as text, and said loudly.
        let mut described = text_argument(name, text, set, json!({"type": "sql"}));
        described.summary["dialect"] = json!(dialect);
        described.summary["ok"] = json!(false);
        described.summary["error"] = facts["error"].clone();
        if described.removed_chars > 0 {
            described.summary["outside_literals"] = json!(["unparsed"]);
            described.warnings.push(format!(
                "`{name}` does not parse as {dialect} SQL, so masking could not keep to its literals: what runs may differ from what you see"
            ));
        }
        return described;
    }
    let literals = sql::literal_spans(text, dialect);
    let matches = set.match_ranges(text);
    let (inside, outside): (Vec<_>, Vec<_>) = matches.into_iter().partition(|(range, _)| {
        literals
            .iter()
            .any(|l| l.start <= range.start && range.end <= l.end)
    });
    let shown = mask_literals(text, &literals, &inside, set);
    let removed = covered(text, &inside);
    let mut outside_families: Vec<&str> = outside.iter().map(|(_, f)| f.as_str()).collect();
    outside_families.sort_unstable();
    outside_families.dedup();
    let statements: Vec<Value> = facts["statements"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .take(MAX_STATEMENTS)
        .map(|s| json!({"kind": s["kind"], "reads": s["reads"], "writes": s["writes"], "has_where": s["has_where"]}))
        .collect();
    let mut warnings = Vec::new();
    if removed > 0 {
        warnings.push(format!(
            "masking removed {removed} character(s) from literal values of `{name}`"
        ));
    }
    if !outside.is_empty() {
        warnings.push(format!(
            "`{name}`: {} detector(s) matched outside SQL literals (in code or a comment); shown unmasked so you see exactly what runs",
            outside_families.join(", ")
        ));
    }
    Described {
        shown: Value::String(shown),
        summary: json!({
            "type": "sql", "dialect": dialect, "ok": true, "count": facts["count"],
            "statements": statements, "removed_chars": removed,
            "outside_literals": outside_families,
        }),
        removed_chars: removed,
        warnings,
    }
}

/// `text` with the detector matches inside literal spans masked, nothing else.
fn mask_literals(
    text: &str,
    literals: &[Range<usize>],
    inside: &[(Range<usize>, Family)],
    set: &MaskSet,
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for literal in literals {
        let touched = inside
            .iter()
            .any(|(r, _)| literal.start <= r.start && r.end <= literal.end);
        let (Some(before), Some(value)) = (text.get(at..literal.start), text.get(literal.clone()))
        else {
            continue;
        };
        if !touched || literal.start < at {
            continue;
        }
        out.push_str(before);
        out.push_str(&set.mask_str(value).unwrap_or_else(|| value.to_owned()));
        at = literal.end;
    }
    out.push_str(text.get(at..).unwrap_or_default());
    out
}

/// Characters of `text` covered by the (possibly overlapping, sorted) ranges.
fn covered(text: &str, ranges: &[(Range<usize>, Family)]) -> usize {
    let mut total = 0;
    let mut end = 0;
    for (range, _) in ranges {
        let start = range.start.max(end);
        if range.end > start {
            total += text.get(start..range.end).map_or(0, |t| t.chars().count());
            end = range.end;
        }
    }
    total
}

#[cfg(test)]
#[path = "review_test.rs"]
mod tests;
