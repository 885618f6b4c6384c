//! The regorus interpreter: the reference engine. One engine per revision, with the
//! bundle's data, modules and the `airlock.*` built-ins; each evaluation runs on a
//! clone (cheap: the modules are shared).

use super::{error_deny, timeout_deny, DECISION_RULE, DEFAULT_EVAL_TIMEOUT};
use crate::builtins::{self, Builtin};
use crate::{Bundle, Decision, PolicyError};
use regorus::utils::limits::ExecutionTimerConfig;
use regorus::{Engine, Rc, Value};
use std::num::NonZeroU32;
use std::time::Duration;

/// Clock reads are amortized over this many interpreter steps / VM instructions.
const TIMER_CHECK_INTERVAL: u32 = 32;

pub(super) struct Interpreter {
    engine: Engine,
    compiled: regorus::CompiledPolicy,
}

impl Interpreter {
    /// Loads the bundle (tests left out) and type-checks everything the decision
    /// reaches.
    pub(super) fn new(
        bundle: &Bundle,
        builtins: &'static [Builtin],
    ) -> Result<Interpreter, PolicyError> {
        let mut engine = load_engine(bundle, false, builtins)?;
        if !engine
            .get_packages()
            .map_err(|e| PolicyError::from_regorus("(bundle)", &e))?
            .iter()
            .any(|p| p == "data.airlock")
        {
            return Err(PolicyError::NoDecisionRule);
        }
        let entry: Rc<str> = Rc::from(DECISION_RULE);
        let compiled = engine
            .compile_with_entrypoint(&entry)
            .map_err(|e| compile_error(bundle, &e))?;
        engine.set_execution_timer_config(timer(DEFAULT_EVAL_TIMEOUT));
        Ok(Interpreter { engine, compiled })
    }

    pub(super) fn compiled(&self) -> &regorus::CompiledPolicy {
        &self.compiled
    }

    pub(super) fn set_timeout(&mut self, timeout: Duration) {
        self.engine.set_execution_timer_config(timer(timeout));
    }

    /// Evaluates the decision rule; `Err` carries regorus's message (regorus does
    /// not re-export its error type).
    pub(super) fn eval(&self, input: Value) -> Result<Value, String> {
        let mut engine = self.engine.clone();
        engine.set_input(input);
        engine
            .eval_rule(DECISION_RULE.to_owned())
            .map_err(|err| err.to_string())
    }
}

pub(super) fn timer(limit: Duration) -> ExecutionTimerConfig {
    ExecutionTimerConfig {
        limit,
        check_interval: NonZeroU32::new(TIMER_CHECK_INTERVAL).unwrap_or(NonZeroU32::MIN),
    }
}

pub(super) fn failure(text: &str) -> Decision {
    if text.contains("time limit") {
        return timeout_deny("time limit");
    }
    error_deny(text)
}

/// Builds an interpreter engine holding the bundle's data, modules (tests too when
/// `with_tests`) and the given built-ins.
pub(crate) fn load_engine(
    bundle: &Bundle,
    with_tests: bool,
    builtins: &'static [Builtin],
) -> Result<Engine, PolicyError> {
    let mut engine = Engine::new();
    register_builtins(&mut engine, builtins)?;
    engine
        .add_data(Value::from(bundle.data.clone()))
        .map_err(|e| PolicyError::Document {
            file: "data.json".to_owned(),
            message: format!("{e}; data.json must be a JSON object"),
        })?;
    for module in bundle.modules.iter().filter(|m| with_tests || !m.is_test()) {
        engine
            .add_policy(module.path.clone(), module.source.clone())
            .map_err(|e| PolicyError::from_regorus(&module.path, &e))?;
    }
    Ok(engine)
}

/// Registers each built-in as a regorus extension.
pub(crate) fn register_builtins(
    engine: &mut Engine,
    builtins: &'static [Builtin],
) -> Result<(), PolicyError> {
    for builtin in builtins {
        let call = move |args: Vec<Value>| -> anyhow::Result<Value> {
            Ok(builtins::invoke(builtin, &args))
        };
        engine
            .add_extension(builtin.name.to_owned(), builtin.arity, Box::new(call))
            .map_err(|e| PolicyError::Document {
                file: "(built-ins)".to_owned(),
                message: format!("cannot register {}: {e}", builtin.name),
            })?;
    }
    Ok(())
}

fn compile_error(bundle: &Bundle, err: &dyn std::fmt::Display) -> PolicyError {
    let first = bundle
        .modules
        .iter()
        .find(|m| !m.is_test())
        .map_or("(bundle)", |m| m.path.as_str());
    PolicyError::from_regorus(first, err)
}
