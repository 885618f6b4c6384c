//! A bundle compiled once per revision, and the per-message evaluation over it.
//!
//! Two regorus engines can run the same Rego: the tree-walking interpreter, which is
//! the reference (it is what `airlock policy test` runs, and it decides what OPA
//! decides: conflicts are errors, `else` is taken as OPA takes it), and the RVM
//! (bytecode, several times faster), which is known to differ from OPA on some Rego
//! (policy-engine/tests/rvm_differences.rs keeps the reproducers). A bundle runs on
//! the RVM only when it carries an agreement proof for its exact content and this
//! engine version, and has no rule whose values could clash ([`crate::proof`]);
//! otherwise on the interpreter. Either way [`CompiledPolicy::engine`] says which and
//! why, and decisions are the interpreter's.

mod interpreter;
mod probe;
mod rvm;

use crate::builtins::Builtin;
use crate::{encode, output, Bundle, Decision, PolicyError, PolicyInput};
use regorus::Value;
use std::time::Duration;

pub(crate) use interpreter::load_engine;
pub(crate) use probe::RuleProbe;

/// The rule every bundle must define.
pub const DECISION_RULE: &str = "data.airlock.decision";
/// Reason id when evaluation fails (including a rule conflict).
pub const ERROR: &str = "policy.error";
/// Reason id when evaluation runs out of time or instructions.
pub const TIMEOUT: &str = "policy.timeout";
/// Default evaluation budget when the store does not set one.
pub const DEFAULT_EVAL_TIMEOUT: Duration = Duration::from_millis(100);

/// Which regorus engine evaluates a compiled policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// The regorus RVM (bytecode): only for bundles proven to agree with the
    /// interpreter.
    Vm,
    /// The regorus interpreter: the reference.
    Interpreter,
}

impl Backend {
    /// A short name for logs, `/readyz`, `nodes list` and benchmarks.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Vm => "rvm",
            Backend::Interpreter => "interpreter",
        }
    }
}

/// The engine a policy runs on, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineChoice {
    /// The engine.
    pub backend: Backend,
    /// Why, in words (e.g. "proved: 42 test decisions and 2000 generated inputs agree").
    pub reason: String,
}

/// A bundle compiled once per revision; cheap to share behind an `Arc`.
pub struct CompiledPolicy {
    revision: String,
    engine: interpreter::Interpreter,
    vm: Option<rvm::VmBackend>,
    choice: EngineChoice,
    timeout: Duration,
    /// For bundles that opt in (`data.airlock_explain: true`).
    explainer: Option<crate::explain::Explainer>,
    /// `data.airlock_pins` of the bundle (`Null` when absent).
    tool_pins: std::sync::Arc<serde_json::Value>,
}

/// The data key a bundle sets to `true` to have every decision explained
/// (recorded with its audit event; costs one interpreter pass per rule).
pub const EXPLAIN_KEY: &str = "airlock_explain";

impl std::fmt::Debug for CompiledPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledPolicy")
            .field("revision", &self.revision)
            .field("engine", &self.choice)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl CompiledPolicy {
    /// Compiles a bundle for the engine its proof allows: the RVM when the bundle
    /// carries a valid agreement proof ([`crate::proof::choose`]), else the
    /// interpreter. Errors name the file and line.
    pub fn compile(bundle: &Bundle) -> Result<CompiledPolicy, PolicyError> {
        let choice = crate::proof::choose(bundle);
        match Self::compile_for(bundle, choice, crate::builtins::all()) {
            Err(PolicyError::Engine { message }) => {
                let choice = EngineChoice {
                    backend: Backend::Interpreter,
                    reason: message,
                };
                Self::compile_for(bundle, choice, crate::builtins::all())
            }
            other => other,
        }
    }

    /// Compiles a bundle for the given engine, whatever its proof says (for proofs,
    /// tests and benchmarks). Asking for the RVM on Rego its compiler does not
    /// support is an error.
    pub fn compile_with(bundle: &Bundle, backend: Backend) -> Result<CompiledPolicy, PolicyError> {
        let choice = EngineChoice {
            backend,
            reason: "chosen by the caller".to_owned(),
        };
        Self::compile_for(bundle, choice, crate::builtins::all())
    }

    pub(crate) fn compile_for(
        bundle: &Bundle,
        choice: EngineChoice,
        builtins: &'static [Builtin],
    ) -> Result<CompiledPolicy, PolicyError> {
        let engine = interpreter::Interpreter::new(bundle, builtins)?;
        // regorus does not refuse recursive rules, and evaluating one overflows the
        // stack: refuse them here, as OPA does.
        crate::analysis::parse_bundle(bundle, false)?;
        let vm = match choice.backend {
            Backend::Interpreter => None,
            Backend::Vm => Some(rvm::VmBackend::new(bundle, engine.compiled(), builtins)?),
        };
        let explainer = match bundle.data.get(EXPLAIN_KEY) {
            Some(serde_json::Value::Bool(true)) => Some(crate::explain::Explainer::new(bundle)?),
            _ => None,
        };
        Ok(CompiledPolicy {
            revision: bundle.revision.clone(),
            engine,
            vm,
            choice,
            timeout: DEFAULT_EVAL_TIMEOUT,
            explainer,
            tool_pins: std::sync::Arc::new(
                bundle.data.get("airlock_pins").cloned().unwrap_or_default(),
            ),
        })
    }

    /// The tool pins the bundle ships (`data.airlock_pins`: server → tool → digest
    /// or list of digests), `Null` when it ships none: a fleet enforces
    /// definitions reviewed once.
    pub fn tool_pins(&self) -> &serde_json::Value {
        &self.tool_pins
    }

    /// The bundle revision this was compiled from.
    pub fn revision(&self) -> &str {
        &self.revision
    }

    /// The engine that evaluates.
    pub fn backend(&self) -> Backend {
        self.choice.backend
    }

    /// The engine that evaluates, and why.
    pub fn engine(&self) -> &EngineChoice {
        &self.choice
    }

    /// The wall-clock budget of one evaluation.
    pub fn eval_timeout(&self) -> Duration {
        self.timeout
    }

    /// Sets the wall-clock budget of each evaluation (the store sets its own on install).
    pub fn set_eval_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
        self.engine.set_timeout(timeout);
        if let Some(vm) = &self.vm {
            vm.clear_pool();
        }
    }

    /// Decides one message. Never panics; any error (a rule conflict included),
    /// undefined or malformed result is a deny with a reason id (`policy.error`,
    /// `policy.timeout`, `policy.undefined`, `policy.malformed_decision`).
    pub fn decide(&self, input: &PolicyInput) -> Decision {
        self.decide_regorus(encode::input(input))
    }

    /// Why `input` was decided as it was, when the bundle opts in; `None` otherwise.
    pub fn explain(&self, input: &PolicyInput) -> Option<serde_json::Value> {
        let explainer = self.explainer.as_ref()?;
        let doc = serde_json::to_value(input).ok()?;
        serde_json::to_value(explainer.explanation(&doc)).ok()
    }

    /// Decides an arbitrary JSON input document (for `airlock policy eval`).
    pub fn decide_value(&self, input: &serde_json::Value) -> Decision {
        self.decide_regorus(encode::json(input))
    }

    /// The raw value of `data.airlock.decision` for an input on this policy's engine
    /// (`Err` with the engine's message when evaluation fails). For agreement checks.
    pub(crate) fn raw_value(&self, input: Value) -> Result<Value, String> {
        match &self.vm {
            Some(vm) => vm.run(input, self.timeout).map_err(|e| e.to_string()),
            None => self.engine.eval(input),
        }
    }

    fn decide_regorus(&self, input: Value) -> Decision {
        let value = match &self.vm {
            Some(vm) => match vm.run(input, self.timeout) {
                Ok(value) => value,
                Err(err) => return rvm::failure(err),
            },
            None => match self.engine.eval(input) {
                Ok(value) => value,
                Err(text) => return interpreter::failure(&text),
            },
        };
        to_decision(&value)
    }
}

/// Checks the value `data.airlock.decision` evaluated to.
pub(crate) fn to_decision(value: &Value) -> Decision {
    if *value == Value::Undefined {
        return output::undefined();
    }
    match serde_json::to_value(value) {
        Ok(json) => output::check(&json),
        Err(err) => Decision::deny(
            output::MALFORMED,
            format!("the decision is not representable as JSON ({err}); return plain JSON values"),
        ),
    }
}

fn timeout_deny(which: &str) -> Decision {
    Decision::deny(
        TIMEOUT,
        format!("policy evaluation exceeded its {which}; simplify the policy (use data lookups instead of loops) or raise the evaluation timeout"),
    )
}

fn error_deny(text: &str) -> Decision {
    Decision::deny(
        ERROR,
        format!("policy evaluation failed: {text}; run `airlock policy eval` with this input to reproduce"),
    )
}
