//! The Airlock control plane: the gRPC services that a fleet of stateless proxies
//! pulls signed policy bundles from and reports its status to, with its state in
//! sled behind the narrow [`store::Store`] trait.
//!
//! [`ControlPlane::start`] opens the store and binds; [`ControlPlane::run`] serves
//! `airlock.v1.BundleService`, `airlock.v1.NodeService`, `grpc.health.v1` and server
//! reflection until a shutdown future resolves. Every call carries a bearer token
//! whose roles the one table in [`auth`] checks.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod approvals;
pub mod audit;
pub mod auth;
mod bundles;
mod config;
mod error;
pub mod metrics;
pub mod nodes;
pub mod secrets;
mod server;
pub mod store;
mod tools;
mod ui;
mod webhooks;

pub use airlock_proto::v1 as api;
pub use approvals::Approvals;
pub use audit::{Audit, AuditSettings};
pub use auth::{token_sha256, Role, TokenEntry};
pub use bundles::{Bundles, WatchStream};
pub use config::{ControlPlaneConfig, TlsFiles, DEFAULT_LISTEN};
pub use error::ControlPlaneError;
pub use server::ControlPlane;
pub use tools::Tools;
pub use webhooks::Webhooks;

/// The gRPC package every control-plane service lives in.
pub const API_PACKAGE: &str = "airlock.v1";
