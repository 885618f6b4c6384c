//! The active policy of a node, swapped atomically when a new revision arrives.

use crate::{CompiledPolicy, Decision, PolicyInput};
use arc_swap::ArcSwapOption;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Reason id when no bundle has been loaded yet.
pub const NO_BUNDLE: &str = "policy.no_bundle";

/// The currently active policy. Readers take an `Arc` snapshot (lock-free); a new
/// revision replaces it atomically, and in-flight evaluations finish on the old one.
#[derive(Debug)]
pub struct PolicyStore {
    active: ArcSwapOption<CompiledPolicy>,
    eval_timeout: Duration,
}

/// One decision with what produced it.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The decision (a deny when no bundle is loaded or evaluation failed).
    pub decision: Decision,
    /// The bundle revision that decided, `None` when no bundle is loaded.
    pub revision: Option<String>,
    /// Wall-clock time of the evaluation.
    pub elapsed: Duration,
    /// Which rules made the decision, when the bundle opts in
    /// (`data.airlock_explain: true`; see [`crate::explain`]).
    pub explanation: Option<serde_json::Value>,
}

impl PolicyStore {
    /// An empty store whose evaluations are bounded by `eval_timeout` each.
    pub fn new(eval_timeout: Duration) -> PolicyStore {
        PolicyStore {
            active: ArcSwapOption::empty(),
            eval_timeout,
        }
    }

    /// Makes `policy` the active one (atomic swap), with the store's evaluation timeout.
    pub fn install(&self, mut policy: CompiledPolicy) {
        policy.set_eval_timeout(self.eval_timeout);
        tracing::info!(
            revision = policy.revision(),
            engine = policy.backend().as_str(),
            why = %policy.engine().reason,
            "policy bundle installed"
        );
        self.active.store(Some(Arc::new(policy)));
    }

    /// The active policy, if any.
    pub fn current(&self) -> Option<Arc<CompiledPolicy>> {
        self.active.load_full()
    }

    /// True once a bundle is loaded.
    pub fn is_ready(&self) -> bool {
        self.active.load().is_some()
    }

    /// The active revision, if any.
    pub fn revision(&self) -> Option<String> {
        self.active.load().as_ref().map(|p| p.revision().to_owned())
    }

    /// Decides one message with the active policy; with none loaded, a deny
    /// (`policy.no_bundle`): the proxy fails closed.
    pub fn decide(&self, input: &PolicyInput) -> Evaluation {
        let started = Instant::now();
        let guard = self.active.load();
        let Some(policy) = guard.as_ref() else {
            return Evaluation {
                decision: Decision::deny(
                    NO_BUNDLE,
                    "no policy bundle is loaded on this proxy, so every call is refused; \
                     check the proxy's policy directory or its control-plane connection",
                ),
                revision: None,
                elapsed: started.elapsed(),
                explanation: None,
            };
        };
        let decision = policy.decide(input);
        let elapsed = started.elapsed();
        Evaluation {
            decision,
            revision: Some(policy.revision().to_owned()),
            elapsed,
            explanation: policy.explain(input),
        }
    }
}
