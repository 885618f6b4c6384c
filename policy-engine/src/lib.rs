//! `airlock-policy`: Airlock's Rego contract and evaluator.
//!
//! A [`Bundle`] (Rego modules + `data.json`) is compiled once per revision into a
//! [`CompiledPolicy`] that decides each MCP message by evaluating
//! `data.airlock.decision` with regorus: the interpreter (the reference, as OPA
//! decides) or, for a bundle that carries an agreement proof, the faster RVM
//! ([`proof`]). A [`PolicyStore`] holds the active policy and swaps it atomically;
//! [`watch_dir`] hot-reloads a directory; [`testing::run_tests`] runs OPA-style `test_`
//! rules on the interpreter and replays their decisions on the RVM; [`explain`] says
//! which rules made a decision. Every failure to decide is a deny with a stable
//! reason id: the proxy fails closed.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod analysis;
pub mod builtins;
mod bundle;
pub mod canonical;
pub mod contract;
mod corpus;
pub mod decision;
mod encode;
mod engine;
mod error;
pub mod explain;
pub mod facts;
pub mod input;
pub mod output;
pub mod proof;
mod store;
pub mod testing;
mod watch;

pub use analysis::ConflictRisk;
pub use bundle::{default_revision, Bundle, Module};
pub use decision::*;
pub use engine::{
    Backend, CompiledPolicy, EngineChoice, DECISION_RULE, DEFAULT_EVAL_TIMEOUT, ERROR, EXPLAIN_KEY,
    TIMEOUT,
};
pub use error::PolicyError;
pub use input::*;
pub use store::{Evaluation, PolicyStore, NO_BUNDLE};
pub use watch::{watch_dir, BundleWatcher};

#[cfg(test)]
mod tests;
