//! The tonic side of `ApprovalService`: authorization, validation of submissions,
//! and the `Watch` stream.

use super::{convert, rules, Approvals};
use crate::api;
use crate::auth::{Caller, Role, Rpc};
use crate::store::{ApprovalRecord, ApprovalState};
use crate::ControlPlaneError;
use airlock_policy::canonical::{payload_sha256, recanonicalize};
use std::pin::Pin;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use tracing::Instrument as _;

/// The stream `ApprovalService.Watch` answers with.
pub(crate) type WatchApprovalStream =
    Pin<Box<dyn Stream<Item = Result<api::ApprovalServiceWatchResponse, Status>> + Send>>;

/// Validates a submission into a new pending record.
pub(super) fn new_record(
    caller: &Caller,
    req: api::ApprovalServiceSubmitRequest,
    now_ms: u64,
) -> Result<ApprovalRecord, ControlPlaneError> {
    let invalid = |m: &str| ControlPlaneError::InvalidArgument(m.to_owned());
    rules::check_id(&req.approval_id)?;
    if req.subject.is_empty() || req.server.is_empty() || req.method.is_empty() {
        return Err(invalid("subject, server and method are required"));
    }
    if req.payload_json.len() > rules::MAX_PAYLOAD {
        return Err(invalid("payload_json is larger than 1 MiB"));
    }
    if req.summary_json.len() > rules::MAX_PAYLOAD {
        return Err(invalid("summary_json is larger than 1 MiB"));
    }
    if !req.summary_json.is_empty()
        && !serde_json::from_str::<serde_json::Value>(&req.summary_json)
            .is_ok_and(|v| v.is_object())
    {
        return Err(invalid("summary_json must be a JSON object"));
    }
    // Unmasked, the reviewers see exactly what the grant is bound to: the hash is
    // recomputed. Masked (promise 7), the hash is of the payload the proxy holds and
    // forwards; only its form can be checked here.
    let canonical = recanonicalize(&req.payload_json).as_deref() == Some(req.payload_json.as_str());
    let bound = if req.payload_masked {
        is_sha256_hex(&req.payload_sha256)
    } else {
        payload_sha256(&req.payload_json) == req.payload_sha256
    };
    if !canonical || !bound {
        return Err(invalid(
            "payload_json is not canonical or payload_sha256 does not match it; see docs/approvals.md",
        ));
    }
    if req.timeout_s == 0 || req.timeout_s > rules::MAX_TIMEOUT_S {
        return Err(invalid("timeout_s must be between 1 and 86400"));
    }
    Ok(ApprovalRecord {
        approval_id: req.approval_id,
        state: ApprovalState::Pending,
        subject: req.subject,
        subject_groups: req.subject_groups,
        server: req.server,
        node_id: req.node_id,
        requested_by: caller.subject.clone(),
        method: req.method,
        tool: req.tool,
        payload_json: req.payload_json,
        payload_sha256: req.payload_sha256,
        payload_masked: req.payload_masked,
        summary_json: req.summary_json,
        reasons: req.reasons,
        message: req.message,
        policy_revision: req.policy_revision,
        reviewer_groups: req.reviewer_groups,
        min_approvals: req.min_approvals.max(1),
        mode: convert::mode(req.mode),
        created_unix_ms: now_ms,
        expires_unix_ms: now_ms.saturating_add(req.timeout_s.saturating_mul(1000)),
        reviews: Vec::new(),
    })
}

fn one(record: &ApprovalRecord) -> Option<api::Approval> {
    Some(api::Approval::from(record))
}

#[tonic::async_trait]
impl api::approval_service_server::ApprovalService for Approvals {
    async fn submit(
        &self,
        request: Request<api::ApprovalServiceSubmitRequest>,
    ) -> Result<Response<api::ApprovalServiceSubmitResponse>, Status> {
        let caller = self
            .auth()
            .authorize(request.metadata(), Rpc::ApprovalSubmit)?;
        let req = request.get_ref();
        let span = tracing::debug_span!(
            "approval.submit",
            approval_id = %req.approval_id,
            server = %req.server,
            tool = %req.tool,
            created = tracing::field::Empty,
        );
        // A proxy exporting traces sends its request's context: join that trace.
        let headers = request.metadata().clone().into_headers();
        airlock_telemetry::propagate::adopt_remote_parent(&span, &headers);
        let record = self
            .submit_as(caller, request.into_inner())
            .instrument(span)
            .await?;
        Ok(Response::new(api::ApprovalServiceSubmitResponse {
            approval: one(&record),
        }))
    }

    type WatchStream = WatchApprovalStream;

    async fn watch(
        &self,
        request: Request<api::ApprovalServiceWatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let caller = self
            .auth()
            .authorize(request.metadata(), Rpc::ApprovalWatch)?;
        let only = request.into_inner().approval_id;
        Ok(Response::new(self.watch_as(caller, only)))
    }

    async fn consume(
        &self,
        request: Request<api::ApprovalServiceConsumeRequest>,
    ) -> Result<Response<api::ApprovalServiceConsumeResponse>, Status> {
        let caller = self
            .auth()
            .authorize(request.metadata(), Rpc::ApprovalConsume)?;
        let used = self.consume_as(caller, request.into_inner()).await?;
        Ok(Response::new(api::ApprovalServiceConsumeResponse {
            consumed: used.is_some(),
            approval: used.as_ref().and_then(one),
        }))
    }

    async fn cancel(
        &self,
        request: Request<api::ApprovalServiceCancelRequest>,
    ) -> Result<Response<api::ApprovalServiceCancelResponse>, Status> {
        let caller = self
            .auth()
            .authorize(request.metadata(), Rpc::ApprovalCancel)?;
        let record = self
            .cancel_as(caller, request.into_inner().approval_id)
            .await?;
        Ok(Response::new(api::ApprovalServiceCancelResponse {
            approval: one(&record),
        }))
    }

    async fn list(
        &self,
        request: Request<api::ApprovalServiceListRequest>,
    ) -> Result<Response<api::ApprovalServiceListResponse>, Status> {
        self.auth()
            .authorize(request.metadata(), Rpc::ApprovalList)?;
        let req = request.into_inner();
        let limit = match req.limit {
            0 => 100,
            n => n as usize,
        };
        let records = Approvals::list(self, req.pending_only, limit).await?;
        Ok(Response::new(api::ApprovalServiceListResponse {
            approvals: records.iter().map(api::Approval::from).collect(),
        }))
    }

    async fn get(
        &self,
        request: Request<api::ApprovalServiceGetRequest>,
    ) -> Result<Response<api::ApprovalServiceGetResponse>, Status> {
        self.auth()
            .authorize(request.metadata(), Rpc::ApprovalGet)?;
        let record = Approvals::get(self, request.into_inner().approval_id).await?;
        Ok(Response::new(api::ApprovalServiceGetResponse {
            approval: one(&record),
        }))
    }

    async fn decide(
        &self,
        request: Request<api::ApprovalServiceDecideRequest>,
    ) -> Result<Response<api::ApprovalServiceDecideResponse>, Status> {
        let caller = self
            .auth()
            .authorize(request.metadata(), Rpc::ApprovalDecide)?;
        let req = request.into_inner();
        let verdict = convert::verdict(req.verdict).ok_or_else(|| {
            ControlPlaneError::InvalidArgument("verdict must be APPROVE or DENY".into())
        })?;
        let record = self
            .decide_as(caller, req.approval_id, verdict, req.reason)
            .await?;
        Ok(Response::new(api::ApprovalServiceDecideResponse {
            approval: one(&record),
        }))
    }
}

impl Approvals {
    /// Streams the live records `caller` may see (a node: those it submitted), then
    /// every change to them; re-sends the snapshot when it falls behind.
    pub(crate) fn watch_as(&self, caller: Caller, only: String) -> WatchApprovalStream {
        let node_scope = !caller.has(Role::Admin) && !caller.has(Role::Reviewer);
        let visible = move |r: &ApprovalRecord| {
            (only.is_empty() || r.approval_id == only)
                && (!node_scope || r.requested_by == caller.subject)
        };
        let mut changes = self.inner.changes.subscribe();
        let mut stopping = self.inner.stopping.clone();
        let this = self.clone();
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            let snapshot = |this: &Approvals| -> Vec<api::Approval> {
                this.live()
                    .values()
                    .filter(|r| visible(r))
                    .map(api::Approval::from)
                    .collect()
            };
            let mut pending = snapshot(&this);
            loop {
                for approval in pending.drain(..) {
                    let message = api::ApprovalServiceWatchResponse {
                        approval: Some(approval),
                    };
                    if tx.send(Ok(message)).await.is_err() {
                        return;
                    }
                }
                tokio::select! {
                    change = changes.recv() => match change {
                        Ok(record) if visible(&record) => pending.push(api::Approval::from(record.as_ref())),
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => pending = snapshot(&this),
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    _ = tx.closed() => return,
                    _ = stopping.changed() => return,
                }
            }
        });
        Box::pin(ReceiverStream::new(rx))
    }
}

/// 64 lower-case hex digits.
fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
