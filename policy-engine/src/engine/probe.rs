//! Both engines over every rule of a bundle, not only the decision: an RVM
//! difference often hides in a rule whose value the decision happens not to use for
//! a given input (an `else` the RVM skips), and shows in the decision only for
//! rarer inputs. Comparing every rule's value on every input finds it early.

use super::interpreter::{load_engine, timer};
use super::rvm::VmBackend;
use super::{Backend, CompiledPolicy, EngineChoice, DECISION_RULE};
use crate::{Bundle, PolicyError};
use regorus::{Engine, Value};
use std::time::Duration;

/// A rule's value on one engine: `Err` with the engine's message when it failed.
pub(crate) type RuleValue = Result<Value, String>;

/// The interpreter and an RVM program with one entry point per rule.
pub(crate) struct RuleProbe {
    interpreter: Engine,
    vm: VmBackend,
    /// `data.pkg.rule` paths, grouped by package (`data.pkg`).
    packages: Vec<(String, Vec<String>)>,
    timeout: Duration,
}

impl RuleProbe {
    /// Compiles `rules` (`(package, rule names)`, non-function rules) for both engines.
    pub(crate) fn new(
        bundle: &Bundle,
        rules: Vec<(String, Vec<String>)>,
        timeout: Duration,
    ) -> Result<RuleProbe, PolicyError> {
        let builtins = crate::builtins::all();
        let decision = CompiledPolicy::compile_for(
            bundle,
            EngineChoice {
                backend: Backend::Interpreter,
                reason: String::new(),
            },
            builtins,
        )?;
        let mut entries: Vec<String> = vec![DECISION_RULE.to_owned()];
        for (package, names) in &rules {
            entries.extend(names.iter().map(|n| format!("data.{package}.{n}")));
        }
        entries.dedup();
        let refs: Vec<&str> = entries.iter().map(String::as_str).collect();
        let vm = VmBackend::with_entries(bundle, decision.engine.compiled(), builtins, &refs)?;
        let mut interpreter = load_engine(bundle, false, builtins)?;
        interpreter.set_execution_timer_config(timer(timeout));
        Ok(RuleProbe {
            interpreter,
            vm,
            packages: rules,
            timeout,
        })
    }

    /// The first rule whose value differs between the engines on `input`, as
    /// (`data.pkg.rule`, interpreter result, RVM result). An error and undefined
    /// count as the same (no value).
    pub(crate) fn first_difference(&self, input: &Value) -> Option<(String, RuleValue, RuleValue)> {
        let mut engine = self.interpreter.clone();
        engine.set_input(input.clone());
        for (package, names) in &self.packages {
            let whole = engine
                .clone()
                .eval_query(format!("data.{package}"), false)
                .ok()
                .and_then(|r| r.result.into_iter().next())
                .and_then(|r| r.expressions.into_iter().next())
                .map(|e| e.value);
            for name in names {
                let path = format!("data.{package}.{name}");
                let reference = match &whole {
                    Some(object) => Ok(object[&Value::from(name.as_str())].clone()),
                    None => engine
                        .clone()
                        .eval_rule(path.clone())
                        .map_err(|e| e.to_string()),
                };
                let rvm = self
                    .vm
                    .run_entry(Some(&path), input.clone(), self.timeout)
                    .map_err(|e| e.to_string());
                if !same(&reference, &rvm) {
                    return Some((path, reference, rvm));
                }
            }
        }
        None
    }
}

fn same(a: &RuleValue, b: &RuleValue) -> bool {
    let none = |r: &RuleValue| matches!(r, Err(_) | Ok(Value::Undefined));
    match (a, b) {
        (Ok(x), Ok(y)) => x == y,
        (x, y) => none(x) && none(y),
    }
}
