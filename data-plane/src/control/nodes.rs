//! The node reporter: tells the control plane what this node serves (node id,
//! version, active revision, last error) and whether it trusts the audit log, on
//! every change and as a heartbeat.

use super::backoff::Backoff;
use super::bundles::NodeState;
use super::{AuditLogStatus, AuditTrust, ControlPlaneLink};
use airlock_proto::v1::node_service_client::NodeServiceClient;
use airlock_proto::v1::{self as api, NodeServiceReportRequest};
use std::time::Duration;
use tokio::sync::watch;

/// Reports a node's [`NodeState`] to `NodeService.Report`.
#[derive(Debug)]
pub struct NodeReporter {
    link: ControlPlaneLink,
    state: watch::Receiver<NodeState>,
    audit: watch::Receiver<AuditLogStatus>,
    heartbeat: Duration,
}

impl NodeReporter {
    /// A reporter of `state`, sending at least every `heartbeat`.
    pub fn new(
        link: ControlPlaneLink,
        state: watch::Receiver<NodeState>,
        heartbeat: Duration,
    ) -> NodeReporter {
        NodeReporter {
            audit: link.audit_status_changes(),
            link,
            state,
            heartbeat,
        }
    }

    /// Reports now, then on each change and each heartbeat; a failed report is
    /// retried with backoff (at most a heartbeat apart). Ends when the state's
    /// sender is gone (the proxy stopped).
    pub async fn run(mut self) {
        let mut client = NodeServiceClient::new(self.link.channel());
        let mut backoff = Backoff::default();
        let mut failing: Option<String> = None;
        loop {
            let state = self.state.borrow_and_update().clone();
            let audit = self.audit.borrow_and_update().clone();
            let wait = match self.report(&mut client, state, audit).await {
                Ok(()) => {
                    if failing.take().is_some() {
                        tracing::info!("node status reported again");
                    }
                    backoff.reset();
                    self.heartbeat
                }
                Err(error) => {
                    if failing.as_deref() != Some(error.as_str()) {
                        tracing::warn!(%error, "cannot report node status; retrying with backoff");
                        failing = Some(error);
                    }
                    backoff.next_delay().min(self.heartbeat)
                }
            };
            tokio::select! {
                changed = self.state.changed() => if changed.is_err() { return },
                changed = self.audit.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn report(
        &self,
        client: &mut NodeServiceClient<tonic::transport::Channel>,
        state: NodeState,
        audit: AuditLogStatus,
    ) -> Result<(), String> {
        let request = self
            .link
            .authorize(tonic::Request::new(NodeServiceReportRequest {
                node_id: self.link.node_id().to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                active_revision: state.active_revision.unwrap_or_default(),
                last_error: state.last_error.unwrap_or_default(),
                heartbeat_interval_ms: u64::try_from(self.heartbeat.as_millis())
                    .unwrap_or(u64::MAX),
                engine: state
                    .engine
                    .as_ref()
                    .map(|e| e.backend.as_str().to_owned())
                    .unwrap_or_default(),
                engine_reason: state.engine.map(|e| e.reason).unwrap_or_default(),
                audit: Some(to_proto(&audit)),
            }));
        client
            .report(request)
            .await
            .map(|_| ())
            .map_err(|status| format!("{:?}: {}", status.code(), status.message()))
    }
}

/// The border: the audit status becomes its protobuf message.
fn to_proto(status: &AuditLogStatus) -> api::NodeAuditStatus {
    let trust = match status.trust {
        AuditTrust::Unchecked => api::AuditTrust::Unspecified,
        AuditTrust::Verified => api::AuditTrust::Verified,
        AuditTrust::Refused => api::AuditTrust::Refused,
    };
    api::NodeAuditStatus {
        trust: trust.into(),
        checkpoint_size: status.checkpoint_size,
        problem: status.problem.clone().unwrap_or_default(),
    }
}
