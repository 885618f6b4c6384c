//! A bundle compiled once per revision, and the per-message evaluation over it.
//!
//! Two backends run the same Rego: the regorus RVM (the bundle compiled to bytecode,
//! one `RegoVM` per concurrent evaluation, pooled) and the tree-walking interpreter
//! (a cheap `Engine` clone per evaluation). The RVM is the default because it is
//! several times faster (see benches/README.md); the interpreter is the fallback for
//! Rego the RVM compiler does not support yet.

use crate::{encode, output, Bundle, Decision, PolicyError, PolicyInput};
use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::vm::{RegoVM, VmError};
use regorus::rvm::Program;
use regorus::utils::limits::ExecutionTimerConfig;
use regorus::{Engine, Rc, Value};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The rule every bundle must define.
pub const DECISION_RULE: &str = "data.airlock.decision";
/// Reason id when evaluation fails.
pub const ERROR: &str = "policy.error";
/// Reason id when evaluation runs out of time or instructions.
pub const TIMEOUT: &str = "policy.timeout";
/// Default evaluation budget when the store does not set one.
pub const DEFAULT_EVAL_TIMEOUT: Duration = Duration::from_millis(100);

/// Clock reads are amortized over this many VM instructions / interpreter steps.
const TIMER_CHECK_INTERVAL: u32 = 32;
/// A backstop against runaway loops that the clock could miss; the default bundle
/// needs a few hundred instructions.
const MAX_INSTRUCTIONS: usize = 2_000_000;
/// Idle VMs kept per revision; beyond that a finished VM is dropped.
const VM_POOL_CAP: usize = 64;

/// Which evaluator runs a compiled policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The regorus RVM (bytecode). Falls back to the interpreter when the bundle uses
    /// Rego the RVM compiler does not support.
    Vm,
    /// The regorus interpreter.
    Interpreter,
}

impl Backend {
    /// A short name for logs and benchmarks.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Vm => "rvm",
            Backend::Interpreter => "interpreter",
        }
    }
}

/// A bundle compiled once per revision; cheap to share behind an [`Arc`].
pub struct CompiledPolicy {
    revision: String,
    engine: Engine,
    vm: Option<VmBackend>,
    timeout: Duration,
}

struct VmBackend {
    program: Arc<Program>,
    data: Value,
    pool: Mutex<Vec<RegoVM>>,
}

impl std::fmt::Debug for CompiledPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledPolicy")
            .field("revision", &self.revision)
            .field("backend", &self.backend())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl CompiledPolicy {
    /// Compiles a bundle with the RVM backend (falling back to the interpreter).
    /// Errors name the file and line.
    pub fn compile(bundle: &Bundle) -> Result<CompiledPolicy, PolicyError> {
        Self::compile_with(bundle, Backend::Vm)
    }

    /// Compiles a bundle for the given backend. `*_test.rego` modules are left out.
    pub fn compile_with(bundle: &Bundle, backend: Backend) -> Result<CompiledPolicy, PolicyError> {
        let mut engine = load_engine(bundle, false)?;
        let entry: Rc<str> = Rc::from(DECISION_RULE);
        if !engine
            .get_packages()
            .map_err(|e| PolicyError::from_regorus("(bundle)", &e))?
            .iter()
            .any(|p| p == "data.airlock")
        {
            return Err(PolicyError::NoDecisionRule);
        }
        // Compiling the entry point type-checks every module the decision reaches.
        let compiled = engine
            .compile_with_entrypoint(&entry)
            .map_err(|e| compile_error(bundle, &e))?;
        engine.set_execution_timer_config(timer(DEFAULT_EVAL_TIMEOUT));
        let vm = match backend {
            Backend::Interpreter => None,
            Backend::Vm => match Compiler::compile_from_policy(&compiled, &[DECISION_RULE]) {
                Ok(program) => Some(VmBackend::new(program, &bundle.data)?),
                Err(err) => {
                    tracing::warn!(revision = %bundle.revision, error = %err,
                        "the RVM cannot compile this bundle; using the interpreter");
                    None
                }
            },
        };
        Ok(CompiledPolicy {
            revision: bundle.revision.clone(),
            engine,
            vm,
            timeout: DEFAULT_EVAL_TIMEOUT,
        })
    }

    /// The bundle revision this was compiled from.
    pub fn revision(&self) -> &str {
        &self.revision
    }

    /// The backend that actually evaluates (the RVM, or the interpreter fallback).
    pub fn backend(&self) -> Backend {
        if self.vm.is_some() {
            Backend::Vm
        } else {
            Backend::Interpreter
        }
    }

    /// The wall-clock budget of one evaluation.
    pub fn eval_timeout(&self) -> Duration {
        self.timeout
    }

    /// Sets the wall-clock budget of each evaluation (the store sets its own on install).
    pub fn set_eval_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
        self.engine.set_execution_timer_config(timer(timeout));
        if let Some(vm) = &self.vm {
            vm.pool_lock().clear();
        }
    }

    /// Decides one message. Never panics; any error, undefined or malformed result is
    /// a deny with a reason id (`policy.error`, `policy.timeout`, `policy.undefined`,
    /// `policy.malformed_decision`).
    pub fn decide(&self, input: &PolicyInput) -> Decision {
        self.decide_regorus(encode::input(input))
    }

    /// Decides an arbitrary JSON input document (for `airlock policy eval`).
    pub fn decide_value(&self, input: &serde_json::Value) -> Decision {
        self.decide_regorus(encode::json(input))
    }

    fn decide_regorus(&self, input: Value) -> Decision {
        let value = match &self.vm {
            Some(vm) => match vm.run(input, self.timeout) {
                Ok(value) => value,
                Err(err) => return vm_failure(err),
            },
            None => match self.interpret(input) {
                Ok(value) => value,
                Err(text) => return interpreter_failure(&text),
            },
        };
        if value == Value::Undefined {
            return output::undefined();
        }
        match serde_json::to_value(&value) {
            Ok(json) => output::check(&json),
            Err(err) => Decision::deny(
                output::MALFORMED,
                format!(
                    "the decision is not representable as JSON ({err}); return plain JSON values"
                ),
            ),
        }
    }

    fn interpret(&self, input: Value) -> Result<Value, String> {
        let mut engine = self.engine.clone();
        engine.set_input(input);
        // regorus does not re-export its error type: keep the text.
        engine
            .eval_rule(DECISION_RULE.to_owned())
            .map_err(|err| err.to_string())
    }
}

impl VmBackend {
    fn new(program: Arc<Program>, data: &serde_json::Value) -> Result<VmBackend, PolicyError> {
        let backend = VmBackend {
            program,
            data: Value::from(data.clone()),
            pool: Mutex::new(Vec::new()),
        };
        // Surfaces data/rule conflicts at compile time rather than per message.
        let first =
            backend
                .fresh_vm(DEFAULT_EVAL_TIMEOUT)
                .map_err(|err| PolicyError::Document {
                    file: "data.json".to_owned(),
                    message: format!(
                        "conflicts with a rule: {err}; rename the data key or the rule"
                    ),
                })?;
        backend.pool_lock().push(first);
        Ok(backend)
    }

    fn fresh_vm(&self, timeout: Duration) -> Result<RegoVM, VmError> {
        let mut vm = RegoVM::new();
        vm.load_program(self.program.clone());
        vm.set_data(self.data.clone())?;
        vm.set_max_instructions(MAX_INSTRUCTIONS);
        vm.set_execution_timer_config(Some(timer(timeout)));
        Ok(vm)
    }

    fn pool_lock(&self) -> std::sync::MutexGuard<'_, Vec<RegoVM>> {
        // A VM is only ever pushed whole, so a poisoned pool is still consistent.
        self.pool
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn run(&self, input: Value, timeout: Duration) -> Result<Value, VmError> {
        let pooled = self.pool_lock().pop();
        let mut vm = match pooled {
            Some(vm) => vm,
            None => self.fresh_vm(timeout)?,
        };
        vm.set_input(input);
        let result = vm.execute();
        // A VM that failed mid-run is dropped rather than trusted again.
        if result.is_ok() {
            let mut pool = self.pool_lock();
            if pool.len() < VM_POOL_CAP {
                pool.push(vm);
            }
        }
        result
    }
}

fn timer(limit: Duration) -> ExecutionTimerConfig {
    ExecutionTimerConfig {
        limit,
        check_interval: NonZeroU32::new(TIMER_CHECK_INTERVAL).unwrap_or(NonZeroU32::MIN),
    }
}

fn vm_failure(err: VmError) -> Decision {
    match err {
        VmError::TimeLimitExceeded { limit, .. } => timeout_deny(&format!("time limit {limit:?}")),
        VmError::InstructionLimitExceeded { limit, .. } => {
            timeout_deny(&format!("instruction limit {limit}"))
        }
        other => Decision::deny(
            ERROR,
            format!("policy evaluation failed: {other}; run `airlock policy eval` with this input to reproduce"),
        ),
    }
}

fn interpreter_failure(text: &str) -> Decision {
    if text.contains("time limit") {
        return timeout_deny("time limit");
    }
    Decision::deny(
        ERROR,
        format!("policy evaluation failed: {text}; run `airlock policy eval` with this input to reproduce"),
    )
}

fn timeout_deny(which: &str) -> Decision {
    Decision::deny(
        TIMEOUT,
        format!("policy evaluation exceeded its {which}; simplify the policy (use data lookups instead of loops) or raise the evaluation timeout"),
    )
}

/// Builds an interpreter engine holding the bundle's data and modules.
pub(crate) fn load_engine(bundle: &Bundle, with_tests: bool) -> Result<Engine, PolicyError> {
    let mut engine = Engine::new();
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

fn compile_error(bundle: &Bundle, err: &dyn std::fmt::Display) -> PolicyError {
    let first = bundle
        .modules
        .iter()
        .find(|m| !m.is_test())
        .map_or("(bundle)", |m| m.path.as_str());
    PolicyError::from_regorus(first, err)
}
