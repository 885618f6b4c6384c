//! The node's side of `ApprovalService`: one `Watch` stream for every call this node
//! holds (not one per call, so a thousand held calls cost one HTTP/2 stream), a
//! registry of waiters it dispatches to, and the unary calls (submit, consume,
//! cancel) with deadlines.
//!
//! When the stream (re)connects the generation number moves on: each waiter then
//! re-submits its request (idempotent on the id the proxy chose) to learn a decision
//! it may have missed while the control plane was away.

use super::hold_budget::HoldBudget;
use super::ControlPlaneLink;
use crate::config::ApprovalsConfig;
use airlock_proto::v1 as api;
use api::approval_service_client::ApprovalServiceClient;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::watch;
use tonic::transport::Channel;

/// Deadline of one unary call to the control plane.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest pause between attempts to reopen the watch stream.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

type Latest = watch::Sender<Option<Arc<api::Approval>>>;

/// Waits on approvals for the calls this node holds.
pub(crate) struct ApprovalClient {
    link: ControlPlaneLink,
    waiters: Mutex<HashMap<String, Latest>>,
    generation: watch::Sender<u64>,
    /// Open approval requests, sync and async (`approvals.max_pending`, per node
    /// and per identity).
    pub(crate) budget: Arc<HoldBudget>,
    /// Keep-alive / progress interval.
    pub(crate) keepalive: Duration,
}

/// One held call's view: its latest state and the stream's generation.
pub(crate) struct Waiter {
    pub(crate) latest: watch::Receiver<Option<Arc<api::Approval>>>,
    pub(crate) generation: watch::Receiver<u64>,
    client: Arc<ApprovalClient>,
    id: String,
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.client.waiters().remove(&self.id);
    }
}

impl ApprovalClient {
    /// Starts the watch stream (it lives as long as the client).
    pub(crate) fn start(link: ControlPlaneLink, config: &ApprovalsConfig) -> Arc<ApprovalClient> {
        let client = Arc::new(ApprovalClient {
            link,
            waiters: Mutex::new(HashMap::new()),
            generation: watch::channel(0).0,
            budget: HoldBudget::new(config.max_pending, config.max_pending_per_identity),
            keepalive: config.keepalive,
        });
        tokio::spawn(watch_loop(Arc::downgrade(&client)));
        client
    }

    /// How many approval requests this node keeps open (held calls and async
    /// requests not yet decided).
    pub(crate) fn held(&self) -> usize {
        self.budget.open()
    }

    /// This node's id.
    pub(crate) fn node_id(&self) -> &str {
        self.link.node_id()
    }

    fn waiters(&self) -> std::sync::MutexGuard<'_, HashMap<String, Latest>> {
        self.waiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn grpc(&self) -> ApprovalServiceClient<Channel> {
        ApprovalServiceClient::new(self.link.channel())
    }

    /// Registers a waiter for `id` (before submitting, so no update is missed).
    pub(crate) fn register(self: &Arc<Self>, id: &str) -> Waiter {
        let (tx, latest) = watch::channel(None);
        self.waiters().insert(id.to_owned(), tx);
        Waiter {
            latest,
            generation: self.generation.subscribe(),
            client: Arc::clone(self),
            id: id.to_owned(),
        }
    }

    /// Submits (or re-submits) a held call; returns it as stored. With `trace`, the
    /// call carries that span's W3C trace context, so the control plane's
    /// `approval.submit` span joins the request's trace.
    pub(crate) async fn submit(
        &self,
        request: api::ApprovalServiceSubmitRequest,
        trace: Option<&tracing::Span>,
    ) -> Result<api::Approval, tonic::Status> {
        let request = traced(self.link.authorize(tonic::Request::new(request)), trace);
        let mut grpc = self.grpc();
        let response = timed(grpc.submit(request)).await?;
        response
            .into_inner()
            .approval
            .ok_or_else(|| tonic::Status::internal("the control plane answered no approval"))
    }

    /// Uses a grant once; `None` when there is no usable grant.
    pub(crate) async fn consume(
        &self,
        request: api::ApprovalServiceConsumeRequest,
    ) -> Result<Option<api::Approval>, tonic::Status> {
        let request = self.link.authorize(tonic::Request::new(request));
        let response = timed(self.grpc().consume(request)).await?.into_inner();
        Ok(if response.consumed {
            response.approval
        } else {
            None
        })
    }

    /// Cancels `id` in the background (the client went away).
    pub(crate) fn cancel(self: &Arc<Self>, id: String) {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let request =
                this.link
                    .authorize(tonic::Request::new(api::ApprovalServiceCancelRequest {
                        approval_id: id.clone(),
                    }));
            if let Err(status) = timed(this.grpc().cancel(request)).await {
                tracing::warn!(approval = %id, error = %status.message(), "could not cancel an abandoned approval");
            }
        });
    }

    fn dispatch(&self, approval: api::Approval) {
        if approval.state != api::ApprovalState::Pending as i32 {
            self.budget.ended(&approval.approval_id);
        }
        if let Some(tx) = self.waiters().get(&approval.approval_id) {
            tx.send_replace(Some(Arc::new(approval)));
        }
    }
}

async fn timed<T>(
    call: impl std::future::Future<Output = Result<T, tonic::Status>>,
) -> Result<T, tonic::Status> {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| {
            Err(tonic::Status::deadline_exceeded(
                "the control plane did not answer in time",
            ))
        })
}

/// Keeps one `Watch` stream open for as long as the client lives.
async fn watch_loop(client: Weak<ApprovalClient>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let Some(this) = client.upgrade() else { return };
        let request = this
            .link
            .authorize(tonic::Request::new(api::ApprovalServiceWatchRequest {
                approval_id: String::new(),
            }));
        let mut grpc = this.grpc();
        drop(this);
        match grpc.watch(request).await {
            Ok(response) => {
                backoff = Duration::from_millis(50);
                if let Some(this) = client.upgrade() {
                    this.generation.send_modify(|g| *g += 1);
                }
                let mut stream = response.into_inner();
                while let Ok(Some(message)) = stream.message().await {
                    let Some(this) = client.upgrade() else { return };
                    if let Some(approval) = message.approval {
                        this.dispatch(approval);
                    }
                }
                tracing::warn!("the approval watch stream ended; reconnecting");
            }
            Err(status) => {
                tracing::debug!(error = %status.message(), "cannot open the approval watch stream; retrying");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// `request` with `trace`'s context in `traceparent`/`tracestate` metadata.
fn traced<T>(mut request: tonic::Request<T>, trace: Option<&tracing::Span>) -> tonic::Request<T> {
    let Some(span) = trace else {
        return request;
    };
    let mut headers = http::HeaderMap::new();
    airlock_telemetry::propagate::inject(span, &mut headers);
    for (name, value) in &headers {
        let key = tonic::metadata::MetadataKey::from_bytes(name.as_str().as_bytes());
        let value = value.to_str().ok().and_then(|v| v.parse().ok());
        if let (Ok(key), Some(value)) = (key, value) {
            request.metadata_mut().insert(key, value);
        }
    }
    request
}
