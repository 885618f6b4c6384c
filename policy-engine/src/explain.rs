//! Why a decision was made: which rule definitions held for an input and what each
//! produced (each denial, hold and mask with its file and line).
//!
//! Every rule definition of the bundle's policy modules (not functions, not tests)
//! is copied, under a probe name, into a module with the same package and imports,
//! and evaluated on the interpreter (the reference engine) with the input: a
//! definition contributed when its probe is defined and not `false` or empty. A
//! `default` counts when no other definition of its rule held.

use crate::analysis::{self, HeadKind};
use crate::engine::{load_engine, DECISION_RULE};
use crate::{Bundle, Module, PolicyError};
use regorus::{Engine, Value};
use serde::Serialize;

/// Longest rendering of one contributed value.
const MAX_VALUE_CHARS: usize = 600;

/// One rule definition that held for the input.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contribution {
    /// `package.rule`, e.g. `airlock.denials`.
    pub rule: String,
    /// The file that defines it.
    pub file: String,
    /// The line of its head.
    pub line: u32,
    /// True for a `default` that applied.
    pub default: bool,
    /// What it produced (for a partial set: the elements this definition added).
    pub value: serde_json::Value,
}

/// Why a decision was made, grouped for reading.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// The definition of `airlock.decision` that produced the decision.
    pub decided_by: Option<Contribution>,
    /// Partial set rules that gained elements (`denials`, `holds`, ...): each
    /// denial, hold and mask with the definition that added it.
    pub contributions: Vec<Contribution>,
    /// Other rules that held with a scalar value (`tool_class = "write"`,
    /// `prod = true`): the facts the decision rested on.
    pub facts: Vec<Contribution>,
}

impl Explanation {
    /// Groups the contributions of [`Explainer::explain`].
    pub fn from_contributions(all: Vec<Contribution>, kinds: &[(String, bool)]) -> Explanation {
        let is_set = |rule: &str| kinds.iter().any(|(r, set)| r == rule && *set);
        let mut out = Explanation {
            decided_by: None,
            contributions: Vec::new(),
            facts: Vec::new(),
        };
        for c in all {
            if c.rule == "airlock.decision" {
                out.decided_by = Some(c);
            } else if is_set(&c.rule) {
                out.contributions.push(c);
            } else if !c.value.is_object() && !c.value.is_array() && !is_long(&c.value) {
                out.facts.push(c);
            }
        }
        out
    }
}

fn is_long(value: &serde_json::Value) -> bool {
    value.as_str().is_some_and(|s| s.ends_with('…'))
}

struct Probe {
    path: String,
    rule: String,
    file: String,
    line: u32,
    default: bool,
    set: bool,
}

/// The bundle compiled with a probe per rule definition.
pub struct Explainer {
    engine: Engine,
    probes: Vec<Probe>,
}

impl std::fmt::Debug for Explainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Explainer({} probes)", self.probes.len())
    }
}

impl Explainer {
    /// Builds the probes for `bundle`'s policy modules.
    pub fn new(bundle: &Bundle) -> Result<Explainer, PolicyError> {
        let parsed = analysis::parse_bundle(bundle, false)?;
        let mut probes = Vec::new();
        let mut extra = bundle.clone();
        for (index, module) in parsed.iter().enumerate() {
            let mut source = module.preamble.clone();
            for def in module.rules.iter().filter(|d| d.kind != HeadKind::Function) {
                let probe = format!("__airlock_explain_{}", probes.len());
                let offset = def.name_span.0.saturating_sub(def.start);
                let (Some(head), Some(tail)) = (
                    def.text.get(..offset),
                    def.text.get(offset + def.name.len()..),
                ) else {
                    continue;
                };
                source.push_str(&format!("\n{head}{probe}{tail}\n"));
                probes.push(Probe {
                    path: format!("data.{}.{probe}", module.package),
                    rule: format!("{}.{}", module.package, def.name),
                    file: module.path.clone(),
                    line: def.line,
                    default: def.kind == HeadKind::Default,
                    set: def.kind == HeadKind::Set,
                });
            }
            extra.modules.push(Module {
                path: format!("__airlock_explain_{index}__.rego"),
                source,
            });
        }
        let engine = load_engine(&extra, false, crate::builtins::all())?;
        Ok(Explainer { engine, probes })
    }

    /// Why `input` was decided as it was, grouped ([`Explanation`]).
    pub fn explanation(&self, input: &serde_json::Value) -> Explanation {
        let kinds: Vec<(String, bool)> = self
            .probes
            .iter()
            .map(|p| (p.rule.clone(), p.set))
            .collect();
        Explanation::from_contributions(self.explain(input).0, &kinds)
    }

    /// The definitions that held for `input`, in file and line order, then the
    /// decision they made (`data.airlock.decision`, as the interpreter evaluates it).
    pub fn explain(&self, input: &serde_json::Value) -> (Vec<Contribution>, serde_json::Value) {
        let mut engine = self.engine.clone();
        engine.set_input(Value::from(input.clone()));
        let mut out: Vec<Contribution> = Vec::new();
        for probe in &self.probes {
            let value = engine.clone().eval_rule(probe.path.clone());
            let Ok(value) = value else { continue };
            if !contributes(&value) {
                continue;
            }
            out.push(Contribution {
                rule: probe.rule.clone(),
                file: probe.file.clone(),
                line: probe.line,
                default: probe.default,
                value: render(&value),
            });
        }
        // A default is listed only when no other definition of its rule held.
        let held: Vec<String> = out
            .iter()
            .filter(|c| !c.default)
            .map(|c| c.rule.clone())
            .collect();
        out.retain(|c| !c.default || !held.contains(&c.rule));
        let decision = engine
            .eval_rule(DECISION_RULE.to_owned())
            .ok()
            .and_then(|v| serde_json::to_value(&v).ok())
            .unwrap_or(serde_json::Value::Null);
        (out, decision)
    }
}

fn contributes(value: &Value) -> bool {
    match value {
        Value::Undefined | Value::Bool(false) => false,
        Value::Set(items) => !items.is_empty(),
        _ => true,
    }
}

fn render(value: &Value) -> serde_json::Value {
    let json = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    let text = json.to_string();
    if text.chars().count() <= MAX_VALUE_CHARS {
        return json;
    }
    serde_json::Value::String(text.chars().take(MAX_VALUE_CHARS).collect::<String>() + "…")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_each_rule_that_held_with_its_line() {
        let bundle = Bundle::from_parts(
            vec![Module {
                path: "airlock.rego".into(),
                source: "package airlock\n\nimport rego.v1\n\n\
                    default decision := {\"verdict\": \"allow\"}\n\n\
                    decision := {\"verdict\": \"deny\", \"reasons\": sort(denials)} if count(denials) > 0\n\n\
                    denials contains \"sql.ddl\" if contains(input.sql, \"DROP\")\n\n\
                    denials contains \"sql.other\" if input.other\n\n\
                    prod if input.env == \"prod\"\n"
                    .into(),
            }],
            json!({}),
        );
        let explainer = Explainer::new(&bundle).unwrap();
        let (found, decision) = explainer.explain(&json!({"sql": "DROP TABLE x", "env": "dev"}));
        let lines: Vec<_> = found.iter().map(|c| (c.rule.as_str(), c.line)).collect();
        assert_eq!(lines, [("airlock.decision", 7), ("airlock.denials", 9)]);
        assert_eq!(found[1].value, json!(["sql.ddl"]));
        assert_eq!(decision["verdict"], "deny");

        let (found, _) = explainer.explain(&json!({"sql": "select", "env": "prod"}));
        let lines: Vec<_> = found
            .iter()
            .map(|c| (c.rule.as_str(), c.line, c.default))
            .collect();
        assert_eq!(
            lines,
            [("airlock.decision", 5, true), ("airlock.prod", 13, false)]
        );
        let grouped = explainer.explanation(&json!({"sql": "DROP", "env": "prod"}));
        assert_eq!(grouped.decided_by.unwrap().line, 7);
        assert_eq!(grouped.contributions.len(), 1);
        assert_eq!(grouped.facts[0].rule, "airlock.prod");
    }
}
