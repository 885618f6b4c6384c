//! Stage 5, hold: a call the policy marks `require_approval` waits here until
//! reviewers decide it on the control plane, and only then goes upstream.
//!
//! ```text
//! grant for this exact payload? ──yes──▶ forward (used once)
//!        │ no
//!   mode async ──▶ submit, answer at once: APPROVAL_PENDING + approval id
//!        │ sync
//!   submit ─▶ SSE to the client (progress / keep-alives) ─▶ approved: consume, forward,
//!                                                             stream the answer
//!                                                        ─▶ denied / expired: error
//! ```
//! The approval is bound to the SHA-256 of the canonical payload (see
//! `airlock_policy::canonical`), the identity and the server; the bytes forwarded
//! after approval are the very bytes that were decided and submitted (promise 1, 5).
//! Fail closed: an unreachable control plane past the timeout is an error, never a
//! forward. A client that goes away cancels its request.

use crate::control::approvals::{ApprovalClient, Waiter};
use crate::control::hold_budget::{Full, HoldSlot};
use crate::ctx::RequestCtx;
use crate::decide::error_response;
use crate::decode::Message;
use crate::error::{codes, ProxyError};
use crate::forward::forward;
use crate::record::AuditEvent;
use crate::respond::{respond, Call, Exchange, ProxyResponse};
use crate::review::ReviewView;
use airlock_policy::canonical::{canonical_payload, payload_sha256};
use airlock_policy::{ApprovalMode, Evaluation};
use airlock_proto::v1 as api;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;

/// Time past the approval's timeout to wait for the control plane's own verdict.
const GRACE: Duration = Duration::from_secs(2);
/// Longest pause between re-submissions while the control plane is away.
const MAX_RETRY: Duration = Duration::from_secs(1);

type Frames = mpsc::Sender<Result<Frame<Bytes>, crate::respond::BoxError>>;

/// What the hold stage did with a call.
pub(crate) enum Held {
    /// The answer to send (an SSE stream that waits, or an error).
    Answer(ProxyResponse),
    /// The grant of this approval (for this exact payload) was used: forward now.
    Released(String),
}

/// One held call.
struct HeldCall {
    /// The JSON-RPC id to answer under.
    id: Value,
    /// The client's `_meta.progressToken`, if any.
    progress: Option<Value>,
    submit: api::ApprovalServiceSubmitRequest,
    deadline: Instant,
    /// What its answer needs: the tool (recorded) and the decision's masks.
    answer: Option<Call>,
}

/// Holds `message` (a request the policy marks `require_approval`), and records its
/// `event` (when the recorder is on) with the approval id it ends up under, before
/// anything can be released: the request is always in the log before its answer.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn hold(
    ctx: &Arc<RequestCtx>,
    client: Arc<ApprovalClient>,
    message: &Message,
    evaluation: &Evaluation,
    review: Option<ReviewView>,
    event: Option<AuditEvent>,
    headers: &HeaderMap,
    bytes: Bytes,
) -> Held {
    let record = |approval_id: &str| {
        if let Some(mut event) = event {
            event.approval_id = Some(approval_id.to_owned()).filter(|id| !id.is_empty());
            ctx.shared.recorder.record(event, &message.value);
        }
    };
    let id = message.id().cloned().unwrap_or(Value::Null);
    let call = held_call(ctx, &client, message, evaluation, review, id.clone());
    // The `hold` span this future runs in (see `mcp`).
    let span = tracing::Span::current();
    span.record("approval_id", call.submit.approval_id.as_str());
    let asynchronous = evaluation
        .decision
        .approval
        .as_ref()
        .is_some_and(|a| a.mode == ApprovalMode::Async);
    let grant = client
        .consume(api::ApprovalServiceConsumeRequest {
            approval_id: String::new(),
            payload_sha256: call.submit.payload_sha256.clone(),
            subject: call.submit.subject.clone(),
            server: call.submit.server.clone(),
        })
        .await;
    match grant {
        Ok(Some(approval)) => {
            span.record("approval_id", approval.approval_id.as_str());
            tracing::info!(parent: &ctx.span, approval = %approval.approval_id, "approval grant used");
            record(&approval.approval_id);
            return Held::Released(approval.approval_id);
        }
        Ok(None) => {}
        Err(status) if asynchronous => {
            record(&call.submit.approval_id);
            return answer(&id, unavailable(&call.submit.approval_id, status.message()));
        }
        Err(_) => {} // sync: the wait below retries until the timeout
    }
    let slot = match client.budget.take(&call.submit.subject) {
        Ok(slot) => slot,
        Err(full) => {
            record(""); // nothing was submitted: there is no approval to name
            return answer(&id, budget_full(full));
        }
    };
    if asynchronous {
        let (approval_id, error) = match client.submit(call.submit.clone(), trace(ctx)).await {
            Ok(approval) => {
                // Open until the control plane reports it ended, or its expiry.
                let until = Instant::now() + Duration::from_secs(call.submit.timeout_s) + GRACE;
                client.budget.park(&approval.approval_id, slot, until);
                (approval.approval_id.clone(), pending(&approval))
            }
            Err(status) => {
                let id = &call.submit.approval_id;
                (id.clone(), unavailable(id, status.message()))
            }
        };
        record(&approval_id);
        return answer(&id, error);
    }
    record(&call.submit.approval_id);
    hold_open(ctx, client, call, slot, headers, bytes)
}

/// The retryable error for a request over `approvals.max_pending[_per_identity]`.
fn budget_full(full: Full) -> Value {
    let message = match full {
        Full::Node => "this proxy node has as many approval requests open as it may (approvals.max_pending); retry later",
        Full::Identity => "this identity has as many approval requests open as it may (approvals.max_pending_per_identity); wait for a decision on one, then retry",
    };
    json!({"code": codes::OVERLOADED, "message": message, "data": {"retryable": true}})
}

/// Sync mode: answers with an SSE stream at once and waits in a task that owns one
/// of the node's open-request slots (`slot`).
fn hold_open(
    ctx: &Arc<RequestCtx>,
    client: Arc<ApprovalClient>,
    call: HeldCall,
    slot: HoldSlot,
    headers: &HeaderMap,
    bytes: Bytes,
) -> Held {
    tracing::info!(parent: &ctx.span, approval = %call.submit.approval_id, "call held for approval");
    let (tx, rx) = mpsc::channel(16);
    let ctx = Arc::clone(ctx);
    let headers = headers.clone();
    tokio::spawn(async move {
        wait_then_release(ctx, client, call, headers, bytes, tx).await;
        drop(slot);
    });
    let mut response = Response::new(StreamBody::new(ReceiverStream::new(rx)).boxed());
    *response.status_mut() = StatusCode::OK;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Held::Answer(response)
}

fn held_call(
    ctx: &RequestCtx,
    client: &ApprovalClient,
    message: &Message,
    evaluation: &Evaluation,
    review: Option<ReviewView>,
    id: Value,
) -> HeldCall {
    let spec = evaluation.decision.approval.clone().unwrap_or_default();
    let method = message.method().unwrap_or_default();
    let canonical = canonical_payload(method, message.params());
    let sha256 = payload_sha256(&canonical);
    // The grant binds the unmasked payload; reviewers see facts and a masked copy.
    let review = review.unwrap_or_else(|| {
        crate::review::review(&canonical, &spec.facts, ctx.shared.recorder.last_four())
    });
    let progress = message.params().pointer("/_meta/progressToken").cloned();
    let approval_id = format!("apr_{}", hex::encode(rand::random::<[u8; 12]>()));
    let timeout_s = spec.timeout_s.clamp(1, 86_400);
    HeldCall {
        answer: Call::of(ctx, message, evaluation),
        id,
        progress,
        deadline: Instant::now() + Duration::from_secs(timeout_s) + GRACE,
        submit: api::ApprovalServiceSubmitRequest {
            approval_id,
            subject: ctx.identity.subject.clone(),
            subject_groups: ctx.identity.groups.clone(),
            server: ctx.upstream.name.clone(),
            node_id: client.node_id().to_owned(),
            method: method.to_owned(),
            tool: message.target_name().unwrap_or_default().to_owned(),
            payload_sha256: sha256,
            payload_json: review.shown,
            payload_masked: review.masked,
            summary_json: review.summary.to_string(),
            reasons: evaluation.decision.reasons.clone(),
            message: evaluation.decision.message.clone().unwrap_or_default(),
            policy_revision: evaluation.revision.clone().unwrap_or_default(),
            reviewer_groups: spec.reviewers,
            min_approvals: spec.min_approvals.max(1),
            timeout_s,
            mode: match spec.mode {
                ApprovalMode::Async => api::ApprovalMode::Async,
                ApprovalMode::Sync => api::ApprovalMode::Sync,
            } as i32,
        },
    }
}

/// How the wait ended.
enum Outcome {
    /// The control plane's decision (approved, denied, expired, cancelled).
    Decided(Arc<api::Approval>),
    /// No decision by the deadline; the last control-plane error, if any.
    TimedOut(Option<String>),
    /// The client went away.
    Gone,
}

async fn wait_then_release(
    ctx: Arc<RequestCtx>,
    client: Arc<ApprovalClient>,
    call: HeldCall,
    headers: HeaderMap,
    bytes: Bytes,
    tx: Frames,
) {
    let approval_id = call.submit.approval_id.clone();
    let waiter = client.register(&approval_id);
    let comment = format!(": held for approval {approval_id}\n\n");
    if tx
        .send(Ok(Frame::data(Bytes::from(comment))))
        .await
        .is_err()
    {
        return;
    }
    let error = match assert_send(wait(&client, &call, waiter, tx.clone(), trace(&ctx))).await {
        Outcome::Gone => {
            tracing::info!(parent: &ctx.span, approval = %approval_id, "client went away: approval cancelled");
            client.cancel(approval_id);
            return;
        }
        Outcome::TimedOut(last_error) => match last_error {
            Some(err) => unavailable(&approval_id, &err),
            None => expired(&approval_id),
        },
        Outcome::Decided(approval) => match api::ApprovalState::try_from(approval.state) {
            Ok(api::ApprovalState::Approved) => {
                assert_send(release(&ctx, &client, &call, headers, bytes, tx)).await;
                return;
            }
            Ok(api::ApprovalState::Denied) => denied(&approval),
            _ => expired(&approval_id),
        },
    };
    tracing::info!(parent: &ctx.span, approval = %approval_id, error = %error["message"], "held call refused");
    let _ = tx
        .send(Ok(Frame::data(event(&error_response(&call.id, error)))))
        .await;
}

fn decisive(approval: &api::Approval) -> bool {
    !matches!(
        api::ApprovalState::try_from(approval.state),
        Ok(api::ApprovalState::Pending) | Ok(api::ApprovalState::Unspecified) | Err(_)
    )
}

/// Waits for a decision, re-submitting after every reconnect, keeping the client
/// informed every `approvals.keepalive_s`.
async fn wait(
    client: &ApprovalClient,
    call: &HeldCall,
    mut waiter: Waiter,
    tx: Frames,
    trace: Option<&tracing::Span>,
) -> Outcome {
    let mut submit_due = Some(Instant::now());
    let mut backoff = Duration::from_millis(50);
    let mut last_error = None;
    let mut ticks = 0u64;
    let mut keepalive =
        tokio::time::interval_at(Instant::now() + client.keepalive, client.keepalive);
    loop {
        if submit_due.is_some_and(|at| at <= Instant::now()) {
            match client.submit(call.submit.clone(), trace).await {
                Ok(approval) if decisive(&approval) => return Outcome::Decided(Arc::new(approval)),
                Ok(_) => {
                    submit_due = None;
                    last_error = None;
                    backoff = Duration::from_millis(50);
                }
                Err(status) => {
                    last_error = Some(status.message().to_owned());
                    submit_due = Some(Instant::now() + backoff);
                    backoff = (backoff * 2).min(MAX_RETRY);
                }
            }
        }
        if let Some(approval) = waiter.latest.borrow_and_update().clone() {
            if decisive(&approval) {
                return Outcome::Decided(approval);
            }
        }
        let retry_at = submit_due.unwrap_or(call.deadline);
        tokio::select! {
            _ = waiter.latest.changed() => {}
            _ = waiter.generation.changed() => submit_due = Some(Instant::now()),
            _ = keepalive.tick() => {
                ticks += 1;
                if tx.send(Ok(Frame::data(keepalive_frame(call, ticks)))).await.is_err() {
                    return Outcome::Gone;
                }
            }
            _ = tx.closed() => return Outcome::Gone,
            _ = tokio::time::sleep_until(call.deadline) => return Outcome::TimedOut(last_error),
            _ = tokio::time::sleep_until(retry_at), if submit_due.is_some() => {}
        }
    }
}

/// Uses the grant, forwards the submitted bytes, streams the upstream's answer.
async fn release(
    ctx: &Arc<RequestCtx>,
    client: &ApprovalClient,
    call: &HeldCall,
    headers: HeaderMap,
    bytes: Bytes,
    tx: Frames,
) {
    let approval_id = &call.submit.approval_id;
    let consume = api::ApprovalServiceConsumeRequest {
        approval_id: approval_id.clone(),
        payload_sha256: call.submit.payload_sha256.clone(),
        subject: call.submit.subject.clone(),
        server: call.submit.server.clone(),
    };
    let error = match client.consume(consume).await {
        Ok(Some(_)) => None,
        Ok(None) => Some(expired(approval_id)),
        Err(status) => Some(unavailable(approval_id, status.message())),
    };
    if let Some(error) = error {
        let _ = tx
            .send(Ok(Frame::data(event(&error_response(&call.id, error)))))
            .await;
        return;
    }
    tracing::info!(parent: &ctx.span, approval = %approval_id, "approved call released");
    // Boxed as `dyn Send`: the forward future borrows the context, and spawning it
    // unboxed trips the compiler's higher-ranked `Send` check.
    let forwarding: std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send + '_>> =
        Box::pin(forward(ctx, Method::POST, &headers, bytes));
    let answer = match forwarding.await {
        Ok(upstream) => {
            // The answer is masked as the decision said and recorded with the
            // approval that released the call.
            let calls = call.answer.iter().cloned().collect();
            let exchange = Exchange::new(Vec::new(), calls, std::time::Instant::now())
                .approved_by(approval_id);
            respond(Arc::clone(ctx), upstream, exchange).await
        }
        Err(err) => Err(err),
    };
    match answer {
        Ok(response) => assert_send(stream_answer(ctx, response, call, tx)).await,
        Err(err) => {
            let _ = tx
                .send(Ok(Frame::data(event(&error_response(
                    &call.id,
                    err.jsonrpc_error(),
                )))))
                .await;
        }
    }
}

/// Sends the upstream's answer as SSE: its events as they come, or its JSON body as one event.
async fn stream_answer(ctx: &RequestCtx, response: ProxyResponse, call: &HeldCall, tx: Frames) {
    let sse = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("text/event-stream"));
    let mut body = response.into_body();
    if sse {
        while let Some(frame) = body.frame().await {
            if tx.send(frame).await.is_err() {
                return;
            }
        }
        return;
    }
    // Collected by hand (bounded): `Limited`'s boxed error trips the `Send` check
    // of the spawned task.
    let mut buf = Vec::new();
    let mut complete = true;
    while let Some(frame) = body.frame().await {
        match frame.map(Frame::into_data) {
            Ok(Ok(data)) if buf.len() + data.len() <= ctx.shared.max_response_bytes => {
                buf.extend_from_slice(&data)
            }
            Ok(Err(_)) => {} // trailers
            _ => {
                complete = false;
                break;
            }
        }
    }
    let value = complete
        .then(|| serde_json::from_slice::<Value>(&buf).ok())
        .flatten();
    let message = value.unwrap_or_else(|| {
        let err = ProxyError::UpstreamUnavailable {
            upstream: ctx.upstream.name.clone(),
            detail: "it answered the released call with something that is not JSON".into(),
        };
        error_response(&call.id, err.jsonrpc_error())
    });
    let _ = tx.send(Ok(Frame::data(event(&message)))).await;
}

/// One SSE `message` event carrying `value` (compact JSON has no newline).
fn event(value: &Value) -> Bytes {
    let data = serde_json::to_string(value).unwrap_or_default();
    Bytes::from(format!("event: message\ndata: {data}\n\n"))
}

fn keepalive_frame(call: &HeldCall, ticks: u64) -> Bytes {
    let approval_id = &call.submit.approval_id;
    match &call.progress {
        Some(token) => event(&json!({
            "jsonrpc": "2.0",
            "method": "notifications/progress",
            "params": {
                "progressToken": token,
                "progress": ticks,
                "message": format!("waiting for approval {approval_id}"),
            }
        })),
        None => Bytes::from(format!(": waiting for approval {approval_id}\n\n")),
    }
}

fn answer(id: &Value, error: Value) -> Held {
    let body = error_response(id, error);
    Held::Answer(crate::respond::json_response(StatusCode::OK, &body))
}

fn pending(approval: &api::Approval) -> Value {
    json!({
        "code": codes::APPROVAL_PENDING,
        "message": format!(
            "approval required: request {} is waiting for reviewers ({}); repeat this identical call once it is approved (it will pass once)",
            approval.approval_id,
            if approval.reviewer_groups.is_empty() { "any reviewer".to_owned() } else { approval.reviewer_groups.join(", ") }
        ),
        "data": {"approval_id": approval.approval_id, "retry": "after_approval", "expires_unix_ms": approval.expires_unix_ms, "reasons": approval.reasons},
    })
}

fn denied(approval: &api::Approval) -> Value {
    let deny = approval
        .reviews
        .iter()
        .find(|r| r.verdict == api::ApprovalVerdict::Deny as i32);
    let (by, reason) = deny
        .map(|r| (r.reviewer.clone(), r.reason.clone()))
        .unwrap_or_default();
    json!({
        "code": codes::APPROVAL_DENIED,
        "message": format!("denied by {by}: {reason}"),
        "data": {"approval_id": approval.approval_id, "decided_by": by, "reason": reason, "reasons": approval.reasons},
    })
}

fn expired(approval_id: &str) -> Value {
    json!({
        "code": codes::APPROVAL_EXPIRED,
        "message": format!("approval {approval_id} expired (or was cancelled) before reviewers approved it; the call was not forwarded, send it again to ask again"),
        "data": {"approval_id": approval_id},
    })
}

fn unavailable(approval_id: &str, detail: &str) -> Value {
    json!({
        "code": codes::APPROVAL_UNAVAILABLE,
        "message": format!("approval {approval_id} could not be obtained: the control plane is unreachable ({detail}); the call was not forwarded, retry later"),
        "data": {"approval_id": approval_id},
    })
}

/// A compile-time check that each step of the spawned wait stays `Send`, so a
/// regression points at the step instead of at `tokio::spawn`.
fn assert_send<T: Send>(t: T) -> T {
    t
}

/// The span whose trace context goes to the control plane, when traces are exported.
fn trace(ctx: &RequestCtx) -> Option<&tracing::Span> {
    ctx.shared.trace_context.then_some(&ctx.span)
}
