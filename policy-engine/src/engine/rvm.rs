//! The regorus RVM: the decision compiled to bytecode once per revision, one
//! `RegoVM` per concurrent evaluation (pooled). Calls to `airlock.*` built-ins are
//! compiled to `HostAwait` instructions: the VM suspends, this module computes the
//! built-in from the same table the interpreter uses, and resumes it.

use super::interpreter::timer;
use super::{error_deny, timeout_deny, DECISION_RULE, DEFAULT_EVAL_TIMEOUT};
use crate::builtins::{self, Builtin};
use crate::{Bundle, Decision, PolicyError};
use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::vm::{ExecutionMode, RegoVM, VmError};
use regorus::rvm::Program;
use regorus::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A backstop against runaway loops that the clock could miss; the default bundle
/// needs a few hundred instructions.
const MAX_INSTRUCTIONS: usize = 2_000_000;
/// Idle VMs kept per revision; beyond that a finished VM is dropped.
const VM_POOL_CAP: usize = 64;
/// Most built-in calls one evaluation may make (each is a suspension).
const MAX_HOST_CALLS: usize = 10_000;

pub(super) struct VmBackend {
    program: Arc<Program>,
    data: Value,
    builtins: &'static [Builtin],
    pool: Mutex<Vec<RegoVM>>,
}

impl VmBackend {
    pub(super) fn new(
        bundle: &Bundle,
        compiled: &regorus::CompiledPolicy,
        builtins: &'static [Builtin],
    ) -> Result<VmBackend, PolicyError> {
        Self::with_entries(bundle, compiled, builtins, &[DECISION_RULE])
    }

    /// A program with several entry points (the decision first), to compare rule
    /// values across engines.
    pub(super) fn with_entries(
        bundle: &Bundle,
        compiled: &regorus::CompiledPolicy,
        builtins: &'static [Builtin],
        entries: &[&str],
    ) -> Result<VmBackend, PolicyError> {
        let host: Vec<(&str, usize)> = builtins
            .iter()
            .map(|b| (b.name, usize::from(b.arity)))
            .collect();
        let program = Compiler::compile_from_policy_with_host_await(compiled, entries, &host)
            .map_err(|err| PolicyError::Engine {
                message: format!(
                    "the RVM cannot compile this bundle ({err}); it runs on the interpreter"
                ),
            })?;
        let backend = VmBackend {
            program,
            data: Value::from(bundle.data.clone()),
            builtins,
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
        if self.program.has_host_await {
            vm.set_execution_mode(ExecutionMode::Suspendable);
        }
        Ok(vm)
    }

    fn pool_lock(&self) -> std::sync::MutexGuard<'_, Vec<RegoVM>> {
        // A VM is only ever pushed whole, so a poisoned pool is still consistent.
        self.pool
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    pub(super) fn clear_pool(&self) {
        self.pool_lock().clear();
    }

    pub(super) fn run(&self, input: Value, timeout: Duration) -> Result<Value, VmError> {
        self.run_entry(None, input, timeout)
    }

    /// Runs one entry point (`None`: the first, the decision).
    pub(super) fn run_entry(
        &self,
        entry: Option<&str>,
        input: Value,
        timeout: Duration,
    ) -> Result<Value, VmError> {
        let pooled = self.pool_lock().pop();
        let mut vm = match pooled {
            Some(vm) => vm,
            None => self.fresh_vm(timeout)?,
        };
        if entry.is_some() {
            // Probes run with their own (longer) budget.
            vm.set_execution_timer_config(Some(timer(timeout)));
        }
        vm.set_input(input);
        let result = match entry {
            None => self.execute(&mut vm),
            Some(name) => vm
                .execute_entry_point_by_name(name)
                .and_then(|first| self.answer_host_calls(&mut vm, first)),
        };
        // A VM that failed mid-run is dropped rather than trusted again.
        if result.is_ok() {
            let mut pool = self.pool_lock();
            if pool.len() < VM_POOL_CAP {
                pool.push(vm);
            }
        }
        result
    }

    /// Runs to the end, answering every `HostAwait` with its built-in.
    fn execute(&self, vm: &mut RegoVM) -> Result<Value, VmError> {
        let first = vm.execute()?;
        self.answer_host_calls(vm, first)
    }

    fn answer_host_calls(&self, vm: &mut RegoVM, first: Value) -> Result<Value, VmError> {
        let mut value = first;
        for _ in 0..MAX_HOST_CALLS {
            let Some(answer) = self.host_answer(vm) else {
                return Ok(value);
            };
            value = vm.resume(Some(answer))?;
        }
        // Too many suspensions: treated like running out of instructions.
        Err(VmError::InstructionLimitExceeded {
            limit: MAX_HOST_CALLS,
            executed: MAX_HOST_CALLS,
            pc: vm.get_pc(),
        })
    }

    /// The value a suspended VM waits for, or `None` when it is not suspended.
    fn host_answer(&self, vm: &RegoVM) -> Option<Value> {
        let name = vm.get_host_await_identifier()?;
        let args = vm
            .get_host_await_argument()
            .cloned()
            .unwrap_or(Value::Undefined);
        let name = name.as_string().map(|s| s.to_string()).unwrap_or_default();
        let answer = match builtins::find(self.builtins, &name) {
            Some(builtin) => match args.as_array() {
                Ok(args) => builtins::invoke(builtin, &args.to_vec()),
                Err(_) => builtins::failure("built-in arguments were not an array"),
            },
            None => builtins::failure(&format!("unknown built-in {name}")),
        };
        Some(answer)
    }
}

pub(super) fn failure(err: VmError) -> Decision {
    match err {
        VmError::TimeLimitExceeded { limit, .. } => timeout_deny(&format!("time limit {limit:?}")),
        VmError::InstructionLimitExceeded { limit, .. } => {
            timeout_deny(&format!("instruction limit {limit}"))
        }
        other => error_deny(&other.to_string()),
    }
}
