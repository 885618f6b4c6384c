//! Why a test failed: the first statement of its body that does not hold, and the
//! values involved (as `opa test -v` shows them).
//!
//! The test's body is replayed as prefix probes in the test's own package and imports
//! (`__airlock_probe_k if { s1; ...; sk }`) on a clone of the test engine; the first
//! probe that is not `true` names the failing statement. Then the variables that
//! statement uses, bound by the statements before it, and the two sides of a
//! comparison are evaluated the same way.

use crate::analysis::{Definition, Parsed};
use regorus::{Engine, Value};

/// Longest rendering of one value.
const MAX_VALUE_CHARS: usize = 400;

/// The statement that failed and what it saw.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FailureDetail {
    /// The statement's source text.
    pub statement: String,
    /// Its line in the test file.
    pub line: u32,
    /// `name = value` for each variable it uses and, for a comparison, each side.
    pub values: Vec<(String, String)>,
}

/// Finds the failing statement of `test` (defined in `module`), or `None` when the
/// probes cannot say (e.g. a body the probes cannot reproduce).
pub(crate) fn explain(
    engine: &Engine,
    module: &Parsed,
    test: &Definition,
) -> Option<FailureDetail> {
    let stmts = &test.statements;
    if stmts.is_empty() {
        return None;
    }
    let prefix = |k: usize| {
        stmts[..k]
            .iter()
            .map(|s| format!("{}{}", s.text, s.with_text))
            .collect::<Vec<_>>()
            .join("\n\t")
    };
    let mut source = module.preamble.clone();
    for k in 1..=stmts.len() {
        source.push_str(&format!(
            "\n__airlock_probe_{k} if {{\n\t{}\n}}\n",
            prefix(k)
        ));
    }
    let mut probe = engine.clone();
    probe
        .add_policy("__airlock_probe__.rego".to_owned(), source)
        .ok()?;
    let rule = |name: &str| format!("data.{}.{name}", module.package);
    let failing = (1..=stmts.len()).find(|k| {
        !matches!(
            probe
                .clone()
                .eval_rule(rule(&format!("__airlock_probe_{k}"))),
            Ok(Value::Bool(true))
        )
    })?;
    let stmt = &stmts[failing - 1];
    let bound: Vec<&String> = stmts[..failing - 1].iter().flat_map(|s| &s.binds).collect();
    let mut wanted: Vec<(String, String)> = stmt
        .mentions
        .iter()
        .filter(|v| bound.contains(v) && !v.starts_with('_'))
        .map(|v| (v.clone(), v.clone()))
        .collect();
    if let Some((lhs, rhs)) = &stmt.sides {
        for side in [lhs, rhs] {
            if !wanted.iter().any(|(name, _)| name == side) {
                wanted.push((side.clone(), format!("({side}){}", stmt.with_text)));
            }
        }
    }
    let values = wanted
        .into_iter()
        .map(|(name, expr)| {
            let value = evaluate(engine, module, &prefix(failing - 1), &expr, &rule);
            (name, value)
        })
        .collect();
    Some(FailureDetail {
        statement: format!("{}{}", stmt.text, stmt.with_text),
        line: stmt.line,
        values,
    })
}

/// Evaluates `expr` after the statements in `prefix`, in the test's package.
fn evaluate(
    engine: &Engine,
    module: &Parsed,
    prefix: &str,
    expr: &str,
    rule: &dyn Fn(&str) -> String,
) -> String {
    let source = format!(
        "{}\n__airlock_value := __v if {{\n\t{}{}__v := {expr}\n}}\n",
        module.preamble,
        prefix,
        if prefix.is_empty() { "" } else { "\n\t" }
    );
    let mut probe = engine.clone();
    if probe
        .add_policy("__airlock_value__.rego".to_owned(), source)
        .is_err()
    {
        return "(cannot be evaluated here)".to_owned();
    }
    match probe.eval_rule(rule("__airlock_value")) {
        Ok(Value::Undefined) => "undefined".to_owned(),
        Ok(value) => render(&value),
        Err(err) => format!("error: {}", first_line(&err.to_string())),
    }
}

fn render(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= MAX_VALUE_CHARS {
        return text;
    }
    let cut: String = text.chars().take(MAX_VALUE_CHARS).collect();
    format!("{cut}…")
}

fn first_line(text: &str) -> &str {
    text.lines()
        .find(|l| l.trim_start().starts_with("error:"))
        .unwrap_or_else(|| text.lines().next().unwrap_or(text))
        .trim()
}
