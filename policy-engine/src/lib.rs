//! `airlock-policy`: Airlock's Rego contract and evaluator.
//!
//! A [`Bundle`] (Rego modules + `data.json`) is compiled once per revision into a
//! [`CompiledPolicy`] that decides each MCP message by evaluating
//! `data.airlock.decision` with regorus (RVM bytecode by default). A [`PolicyStore`]
//! holds the active policy and swaps it atomically; [`watch_dir`] hot-reloads a
//! directory; [`testing::run_tests`] runs OPA-style `test_` rules. Every failure to
//! decide is a deny with a stable reason id: the proxy fails closed.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod bundle;
pub mod canonical;
mod compiled;
pub mod decision;
mod encode;
mod error;
pub mod facts;
pub mod input;
pub mod output;
mod store;
pub mod testing;
mod watch;

pub use bundle::{Bundle, Module};
pub use compiled::{Backend, CompiledPolicy, DECISION_RULE, DEFAULT_EVAL_TIMEOUT, ERROR, TIMEOUT};
pub use decision::*;
pub use error::PolicyError;
pub use input::*;
pub use store::{Evaluation, PolicyStore, NO_BUNDLE};
pub use watch::{watch_dir, BundleWatcher};

#[cfg(test)]
mod tests;
