//! Watching what the Rego tests decide, so each decision can be replayed on the RVM.
//!
//! The tests mock `input` with `with`, which only the interpreter supports. To see
//! every input a test decides, the test bundle's `decision` rules in package `airlock`
//! are renamed (by byte range from the parser, nothing else moves) and a wrapper
//! takes their place:
//!
//! ```rego
//! decision := __airlock_reference_decision if __airlock_seen
//! ```
//!
//! where `__airlock_seen` calls a capture extension with `input` (and is `true` by
//! default, so a test without an input behaves as before). The wrapper is undefined,
//! an error or a value exactly when the original is, so the tests' verdicts are
//! unchanged; the captured inputs are then decided by both engines on the original
//! bundle.

use crate::analysis::{rename_rule, Parsed};
use crate::{Bundle, Module, PolicyError};
use regorus::{Engine, Value};
use std::sync::{Arc, Mutex};

/// The name the original `decision` rules get.
const REFERENCE: &str = "__airlock_reference_decision";
/// The extension that records an input.
const CAPTURE: &str = "__airlock_capture";
/// The wrapper module's path (left out of coverage).
pub(crate) const WRAPPER_PATH: &str = "__airlock_capture__.rego";

const WRAPPER: &str = "package airlock\n\nimport rego.v1\n\n\
default __airlock_seen := true\n\n\
__airlock_seen if __airlock_capture(input)\n\n\
decision := __airlock_reference_decision if __airlock_seen\n";

/// Inputs recorded while a test runs.
#[derive(Clone, Default)]
pub(crate) struct Sink(Arc<Mutex<Vec<Value>>>);

impl Sink {
    /// Takes what was recorded since the last call.
    pub(crate) fn take(&self) -> Vec<Value> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// The bundle with every `decision` of package `airlock` renamed and the wrapper
/// added. `parsed` must be the bundle's modules, tests included, in bundle order.
pub(crate) fn instrument(bundle: &Bundle, parsed: &[Parsed]) -> Bundle {
    let mut out = bundle.clone();
    for (module, facts) in out.modules.iter_mut().zip(parsed) {
        if facts.package == "airlock" && facts.rules.iter().any(|d| d.name == "decision") {
            module.source = rename_rule(&module.source, facts, "decision", REFERENCE);
        }
    }
    out.modules.push(Module {
        path: WRAPPER_PATH.to_owned(),
        source: WRAPPER.to_owned(),
    });
    out
}

/// Registers the capture extension on `engine`, recording into a new sink.
pub(crate) fn register(engine: &mut Engine) -> Result<Sink, PolicyError> {
    let sink = Sink::default();
    let recorder = sink.clone();
    let capture = move |args: Vec<Value>| -> anyhow::Result<Value> {
        if let Some(input) = args.into_iter().next() {
            recorder
                .0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(input);
        }
        Ok(Value::Bool(true))
    };
    engine
        .add_extension(CAPTURE.to_owned(), 1, Box::new(capture))
        .map_err(|e| PolicyError::Engine {
            message: format!("cannot watch the tests' decisions: {e}"),
        })?;
    Ok(sink)
}
