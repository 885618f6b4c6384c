//! `NodeService`: proxies report what they run (on change and as a heartbeat);
//! operators list the fleet, with nodes silent for three intervals marked stale.

use crate::api;
use crate::auth::{Authenticator, Rpc};
use crate::bundles::{blocking, now_ms};
use crate::store::{NodeRecord, Store};
use crate::ControlPlaneError;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// Heartbeat interval assumed when a node does not say (10 s).
pub const DEFAULT_HEARTBEAT_MS: u64 = 10_000;

/// A node is stale after this many missed heartbeats.
pub const STALE_AFTER_INTERVALS: u64 = 3;

/// Longest node id accepted.
const MAX_NODE_ID: usize = 128;

/// The `NodeService` implementation.
pub struct Nodes {
    store: Arc<dyn Store>,
    auth: Arc<Authenticator>,
}

impl Nodes {
    /// A node service over `store`.
    pub fn new(store: Arc<dyn Store>, auth: Arc<Authenticator>) -> Nodes {
        Nodes { store, auth }
    }
}

/// True when a node last seen at `last_seen_ms` has missed three heartbeats at `now_ms`.
pub fn is_stale(node: &NodeRecord, now_ms: u64) -> bool {
    let interval = match node.heartbeat_interval_ms {
        0 => DEFAULT_HEARTBEAT_MS,
        ms => ms,
    };
    now_ms.saturating_sub(node.last_seen_unix_ms) > interval.saturating_mul(STALE_AFTER_INTERVALS)
}

fn validate(req: &api::NodeServiceReportRequest) -> Result<(), ControlPlaneError> {
    let id = &req.node_id;
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':');
    if id.is_empty() || id.len() > MAX_NODE_ID || !id.chars().all(ok_char) {
        return Err(ControlPlaneError::InvalidArgument(format!(
            "node_id {id:?} is not valid; use 1 to {MAX_NODE_ID} characters among A-Z a-z 0-9 . _ - :"
        )));
    }
    Ok(())
}

#[tonic::async_trait]
impl api::node_service_server::NodeService for Nodes {
    async fn report(
        &self,
        request: Request<api::NodeServiceReportRequest>,
    ) -> Result<Response<api::NodeServiceReportResponse>, Status> {
        let caller = self.auth.authorize(request.metadata(), Rpc::NodeReport)?;
        let req = request.into_inner();
        validate(&req)?;
        let audit = req.audit.unwrap_or_default();
        if audit.trust() == api::AuditTrust::Refused {
            tracing::error!(
                node = %req.node_id,
                problem = %audit.problem,
                "a proxy refuses this control plane's audit log and ships no events to it"
            );
        }
        let record = NodeRecord {
            audit_trust: audit.trust,
            audit_checkpoint_size: audit.checkpoint_size,
            audit_problem: audit.problem,
            node_id: req.node_id,
            version: req.version,
            active_revision: req.active_revision,
            last_error: req.last_error,
            last_seen_unix_ms: now_ms(),
            heartbeat_interval_ms: req.heartbeat_interval_ms,
            reported_by: caller.subject,
            engine: req.engine,
            engine_reason: req.engine_reason,
        };
        let store = self.store.clone();
        let active = blocking(move || {
            store.put_node(&record)?;
            Ok(store.active_revision()?)
        })
        .await?;
        Ok(Response::new(api::NodeServiceReportResponse {
            active_revision: active.unwrap_or_default(),
        }))
    }

    async fn list(
        &self,
        request: Request<api::NodeServiceListRequest>,
    ) -> Result<Response<api::NodeServiceListResponse>, Status> {
        self.auth.authorize(request.metadata(), Rpc::NodeList)?;
        let store = self.store.clone();
        let records = blocking(move || Ok(store.nodes()?)).await?;
        let now = now_ms();
        let nodes = records
            .into_iter()
            .map(|n| api::NodeStatus {
                stale: is_stale(&n, now),
                node_id: n.node_id,
                version: n.version,
                active_revision: n.active_revision,
                last_error: n.last_error,
                last_seen_unix_ms: n.last_seen_unix_ms,
                heartbeat_interval_ms: match n.heartbeat_interval_ms {
                    0 => DEFAULT_HEARTBEAT_MS,
                    ms => ms,
                },
                reported_by: n.reported_by,
                engine: n.engine,
                engine_reason: n.engine_reason,
                audit: Some(api::NodeAuditStatus {
                    trust: n.audit_trust,
                    checkpoint_size: n.audit_checkpoint_size,
                    problem: n.audit_problem,
                }),
            })
            .collect();
        Ok(Response::new(api::NodeServiceListResponse { nodes }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_is_stale_after_three_missed_heartbeats() {
        let mut node = NodeRecord {
            node_id: "n1".into(),
            version: String::new(),
            active_revision: String::new(),
            last_error: String::new(),
            last_seen_unix_ms: 1_000,
            heartbeat_interval_ms: 100,
            reported_by: String::new(),
            engine: String::new(),
            engine_reason: String::new(),
            audit_trust: 0,
            audit_checkpoint_size: 0,
            audit_problem: String::new(),
        };
        assert!(!is_stale(&node, 1_300));
        assert!(is_stale(&node, 1_301));
        node.heartbeat_interval_ms = 0;
        assert!(!is_stale(&node, 31_000));
        assert!(is_stale(&node, 31_001));
    }
}
