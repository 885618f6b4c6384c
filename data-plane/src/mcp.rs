//! The request path for `/mcp/{server}`: the stages in their fixed order over one
//! `RequestCtx`.
//!
//! ```text
//! accept (route, Origin) → authenticate → limits (identity slot and rate, then the
//!   proxy's permit) → session (unseal) → read body (bounded, timed) → decode
//!   (strict) → protocol rules → admit (audit backlog) → tool rates → decide +
//!   record (every message) → hold (approval) → forward → respond (+ mask, record)
//! ```
//! Origin comes before authentication so a rebinding page learns nothing about keys;
//! identity limits come right after it, before any permit or body is held (see
//! `limits` for why); the session is unsealed before the body is read so a hijack
//! costs no parsing; tool rates are taken once the call is known to be recordable;
//! every message is decided before a single byte goes upstream (promise 1 and 2).
//!
//! Spans: one `mcp` (info) per request; each stage a `debug` child of it
//! (`authenticate`, `decode`, `decide`, `record`, `hold`, `forward`, `respond`),
//! so they cost one level check unless the OTLP export (or `RUST_LOG=debug`) wants
//! them. Names and fields are listed in `docs/audit.md` (Telemetry).

use crate::accept::{check_origin, read_body};
use crate::control::approvals::ApprovalClient;
use crate::ctx::{RequestCtx, Shared};
use crate::decide::{decide_review, decide_with, error_response, refusal};
use crate::decode::{decode, Message, Payload};
use crate::error::{codes, ProxyError};
use crate::forward::forward;
use crate::hold::{hold, Held};
use crate::limits::PendingConnection;
use crate::protocol::{
    check_content_headers, check_request, Revision, PROTOCOL_VERSION, SESSION_ID,
};
use crate::record::AuditEvent;
use crate::respond::{json_response, respond, Call, Exchange, ProxyResponse};
use crate::review::{review, ReviewView};
use airlock_policy::canonical::canonical_payload;
use airlock_policy::{Direction, Evaluation, IdentityInput, RateInput, Verdict};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;
use tracing::field::Empty;
use tracing::Instrument;

/// A failure, with the JSON-RPC id to answer it under when known.
struct Failure {
    error: ProxyError,
    id: Option<Value>,
}

impl From<ProxyError> for Failure {
    fn from(error: ProxyError) -> Self {
        Self { error, id: None }
    }
}

/// Runs one MCP request; never fails (errors become JSON-RPC error responses).
/// `pending` is the connection's place among its address's unauthenticated ones.
pub(crate) async fn handle(
    request: Request<Incoming>,
    shared: Arc<Shared>,
    server: String,
    pending: &PendingConnection,
) -> ProxyResponse {
    let started = Instant::now();
    let span = tracing::info_span!(
        "mcp",
        server = %server,
        http = %request.method(),
        subject = Empty,
        method = Empty,
        tool = Empty,
        verdict = Empty,
        status = Empty,
        latency_us = Empty,
    );
    if shared.trace_context {
        airlock_telemetry::propagate::adopt_remote_parent(&span, request.headers());
    }
    let metrics = Arc::clone(&shared);
    let response = match run(request, shared, &server, pending, span.clone()).await {
        Ok(response) => response,
        Err(failure) => {
            let error = failure.error;
            tracing::debug!(parent: &span, error = %error, "request refused");
            if let Some(limit) = error.limit() {
                metrics.metrics.refused(limit);
            }
            error.into_response(failure.id)
        }
    };
    span.record("status", response.status().as_u16());
    span.record("latency_us", started.elapsed().as_micros() as u64);
    tracing::info!(parent: &span, "request");
    response
}

async fn run(
    request: Request<Incoming>,
    shared: Arc<Shared>,
    server: &str,
    pending: &PendingConnection,
    span: tracing::Span,
) -> Result<ProxyResponse, Failure> {
    let upstream = shared
        .upstreams
        .get(server)
        .cloned()
        .ok_or_else(|| ProxyError::UnknownServer(server.chars().take(64).collect()))?;
    check_origin(request.headers(), &shared.allowed_origins)?;
    let method = request.method().clone();
    if !matches!(method, Method::POST | Method::GET | Method::DELETE) {
        return Err(ProxyError::MethodNotAllowed.into());
    }
    let identity = shared
        .auth
        .authenticate(request.headers())
        .instrument(tracing::debug_span!(parent: &span, "authenticate"))
        .await?;
    span.record("subject", identity.subject.as_str());
    pending.authenticated();
    // Held until the response head is sent (as the proxy's permit).
    let admission = shared.limiter.admit(&identity.subject)?;
    let Ok(_permit) = Arc::clone(&shared.in_flight).try_acquire_owned() else {
        return Err(ProxyError::Overloaded.into());
    };
    let revision = Revision::from_headers(request.headers())?;
    let client_session = match request.headers().get(SESSION_ID) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| ProxyError::SessionNotFound)?
                .to_owned(),
        ),
    };
    let upstream_session = match &client_session {
        None => None,
        Some(id) => Some(shared.seal.unseal(&identity.subject, &upstream.name, id)?),
    };
    let ctx = Arc::new(RequestCtx {
        identity_input: IdentityInput {
            subject: identity.subject.clone(),
            groups: identity.groups.clone(),
            kind: identity.kind.clone(),
            claims: identity.claims.clone(),
        },
        protocol_header: request.headers().get(PROTOCOL_VERSION).cloned(),
        shared,
        upstream,
        identity,
        revision,
        client_session,
        upstream_session,
        budgets: admission.budgets.clone(),
        span,
    });
    if method == Method::POST {
        post(ctx, request).await
    } else {
        // GET opens the server's stream, DELETE ends the session: no body to decide,
        // but every server message on a GET stream is decided in respond.
        ctx.shared.recorder.admit()?;
        let (parts, _) = request.into_parts();
        let sent = Instant::now();
        let upstream = forward(&ctx, method, &parts.headers, Bytes::new()).await?;
        let exchange = Exchange::new(Vec::new(), Vec::new(), sent);
        Ok(respond_in_span(ctx, upstream, exchange).await?)
    }
}

async fn post(ctx: Arc<RequestCtx>, request: Request<Incoming>) -> Result<ProxyResponse, Failure> {
    let (parts, body) = request.into_parts();
    check_content_headers(&parts.headers)?;
    let bytes = read_body(
        body,
        &parts.headers,
        ctx.shared.limits.max_body_bytes,
        ctx.shared.limiter.body,
    )
    .await?;
    let payload = tracing::debug_span!(parent: &ctx.span, "decode", bytes = bytes.len())
        .in_scope(|| decode(&bytes, &ctx.shared.limits))
        .map_err(|e| ProxyError::Decode {
            code: e.jsonrpc_code(),
            message: e.to_string(),
        })?;
    let single_id = match &payload {
        Payload::Single(message) => message.id().cloned(),
        Payload::Batch(_) => None,
    };
    check_request(&parts.headers, ctx.revision, &payload).map_err(|error| Failure {
        error,
        id: single_id.clone(),
    })?;
    record_message(&ctx, &payload);
    // A call that could not be recorded must not happen (promise 3): refuse before
    // deciding, so nothing is counted against the session either.
    ctx.shared.recorder.admit().map_err(|error| {
        ctx.shared.metrics.refused_by_audit();
        Failure {
            error,
            id: single_id.clone(),
        }
    })?;
    let tool_budgets = tool_budgets(&ctx, &payload).map_err(|error| Failure {
        error,
        id: single_id,
    })?;

    let mut decided = decide_all(&ctx, &payload, tool_budgets);
    ctx.span.record("verdict", decided.verdict.as_str());
    let mut approved_by = None;
    if let (Payload::Single(message), Some(held)) = (&payload, decided.held.take()) {
        let client = held.client;
        let event = held.event;
        let span = tracing::debug_span!(parent: &ctx.span, "hold", approval_id = Empty);
        match hold(
            &ctx,
            client,
            message,
            &held.evaluation,
            held.review,
            event,
            &parts.headers,
            bytes.clone(),
        )
        .instrument(span)
        .await
        {
            Held::Answer(response) => return Ok(response),
            Held::Released(approval_id) => {
                decided.refusals.clear();
                approved_by = Some(approval_id);
            }
        }
    }
    if decided.refusals.iter().any(Option::is_some) {
        return Ok(refuse(&payload, decided.refusals));
    }

    let listing: Vec<Value> = payload
        .messages()
        .iter()
        .filter(|m| m.method() == Some("tools/list"))
        .filter_map(|m| m.id().cloned())
        .collect();
    // The exact bytes that were decoded and decided go upstream (promise 1).
    let sent = Instant::now();
    let upstream = forward(&ctx, Method::POST, &parts.headers, bytes).await?;
    let mut exchange = Exchange::new(listing, decided.calls, sent);
    if let Some(approval_id) = &approved_by {
        exchange = exchange.approved_by(approval_id);
    }
    Ok(respond_in_span(ctx, upstream, exchange).await?)
}

/// Every message of a POST decided (and recorded, except a held request's).
struct Decisions {
    /// Per message: the error to answer it with, if refused.
    refusals: Vec<Option<Value>>,
    /// The requests forwarded, for their answers.
    calls: Vec<Call>,
    /// The first verdict that is not `allow`, else `allow`.
    verdict: Verdict,
    /// A single request the policy holds for a human.
    held: Option<HeldRequest>,
}

/// A request for the hold stage, with its audit event still to record (the hold
/// stage records it with the approval id once that is known).
struct HeldRequest {
    evaluation: Evaluation,
    event: Option<AuditEvent>,
    client: Arc<ApprovalClient>,
    /// What its reviewers see (facts first, then the masked payload).
    review: Option<ReviewView>,
}

/// The reviewers' view of a held request (`review.rs`).
fn review_of(ctx: &RequestCtx, message: &Message, evaluation: &Evaluation) -> ReviewView {
    let canonical = canonical_payload(message.method().unwrap_or_default(), message.params());
    let hints = evaluation
        .decision
        .approval
        .as_ref()
        .map(|a| a.facts.clone())
        .unwrap_or_default();
    let _span = tracing::debug_span!(parent: &ctx.span, "review").entered();
    review(&canonical, &hints, ctx.shared.recorder.last_four())
}

/// A token from each limited tool's bucket, per message (`None` where the message
/// is not a `tools/call` of a limited tool). A batch over any tool's rate is
/// refused whole, as a batch with any refusal is.
fn tool_budgets(ctx: &RequestCtx, payload: &Payload) -> Result<Vec<Option<RateInput>>, ProxyError> {
    payload
        .messages()
        .iter()
        .map(|message| match (message.method(), message.target_name()) {
            (Some("tools/call"), Some(tool)) => {
                ctx.shared
                    .limiter
                    .admit_tool(&ctx.identity.subject, &ctx.upstream.name, tool)
            }
            _ => Ok(None),
        })
        .collect()
}

fn decide_all(
    ctx: &Arc<RequestCtx>,
    payload: &Payload,
    tool_budgets: Vec<Option<RateInput>>,
) -> Decisions {
    // Only a single request can wait for a human: a notification has no id to answer
    // under, and a batch is refused whole (send the held call on its own).
    let holder = match payload {
        Payload::Single(m) if m.method().is_some() && m.id().is_some() => {
            ctx.shared.approvals.clone()
        }
        _ => None,
    };
    let mut decided = Decisions {
        refusals: Vec::with_capacity(payload.messages().len()),
        calls: Vec::new(),
        verdict: Verdict::Allow,
        held: None,
    };
    for (message, tool_budget) in payload.messages().iter().zip(tool_budgets) {
        let (mut evaluation, input) =
            decide_with(ctx, message, Direction::ClientToServer, tool_budget);
        let mut review = None;
        if holder.is_some() && evaluation.decision.verdict == Verdict::RequireApproval {
            // What the reviewers will see, and the policy's second look with it.
            let view = review_of(ctx, message, &evaluation);
            evaluation = decide_review(ctx, input, evaluation, view.summary.clone());
            review = Some(view);
        }
        ctx.shared
            .metrics
            .decided(Direction::ClientToServer, &evaluation);
        if decided.verdict == Verdict::Allow {
            decided.verdict = evaluation.decision.verdict;
        }
        decided.calls.extend(Call::of(ctx, message, &evaluation));
        decided
            .refusals
            .push(refusal(&evaluation, ctx.shared.approvals.is_some()));
        // Recorded whatever the verdict: denied and held messages are evidence too.
        let event = ctx.shared.recorder.enabled().then(|| {
            AuditEvent::of(ctx, Direction::ClientToServer, message, ctx.session_id())
                .decided(&evaluation)
        });
        match &holder {
            Some(client) if evaluation.decision.verdict == Verdict::RequireApproval => {
                decided.held = Some(HeldRequest {
                    evaluation,
                    event,
                    client: Arc::clone(client),
                    review,
                });
            }
            _ => {
                if let Some(event) = event {
                    let _record = tracing::debug_span!(parent: &ctx.span, "record").entered();
                    ctx.shared.recorder.record(event, &message.value);
                }
            }
        }
    }
    decided
}

/// The respond stage (filter, mask, record the answer) in its span; an SSE answer's
/// events are decided later, as they arrive, outside it.
async fn respond_in_span(
    ctx: Arc<RequestCtx>,
    upstream: crate::upstream::reply::Reply,
    exchange: Exchange,
) -> Result<ProxyResponse, ProxyError> {
    let span = tracing::debug_span!(parent: &ctx.span, "respond");
    respond(ctx, upstream, exchange).instrument(span).await
}

fn record_message(ctx: &RequestCtx, payload: &Payload) {
    if let Payload::Single(message) = payload {
        if let Some(method) = message.method() {
            ctx.span.record("method", method);
        }
        if let Some(name) = message.target_name() {
            ctx.span.record("tool", name);
        }
    } else {
        ctx.span.record("method", "(batch)");
    }
}

/// The answer when any message was refused; nothing is forwarded.
///
/// A refused request gets a JSON-RPC error under its id (HTTP 200, as any JSON-RPC
/// error). A refused notification or response has no id to answer under, so it gets
/// HTTP 403 with an error body (`id: null`) instead of a silent 202. A batch with any
/// refusal is refused whole: every element gets an error, the refused ones with
/// their reason and the others with `BATCH_REFUSED`.
fn refuse(payload: &Payload, refusals: Vec<Option<Value>>) -> ProxyResponse {
    match payload {
        Payload::Single(message) => {
            let error = refusals.into_iter().flatten().next().unwrap_or(Value::Null);
            match message.id() {
                Some(id) if message.method().is_some() => {
                    json_response(StatusCode::OK, &error_response(id, error))
                }
                _ => ProxyError::Refused {
                    code: error["code"].as_i64().unwrap_or(codes::DENIED),
                    message: error["message"]
                        .as_str()
                        .unwrap_or("denied by policy")
                        .to_owned(),
                    data: error["data"].clone(),
                }
                .into_response(None),
            }
        }
        Payload::Batch(messages) => {
            let answers: Vec<Value> = messages
                .iter()
                .zip(refusals)
                .map(|(message, refused)| {
                    let id = message.id().cloned().unwrap_or(Value::Null);
                    let error = refused.unwrap_or_else(|| {
                        json!({
                            "code": codes::BATCH_REFUSED,
                            "message": "not forwarded: another message in this batch was refused; send the allowed messages on their own",
                        })
                    });
                    error_response(&id, error)
                })
                .collect();
            json_response(StatusCode::OK, &Value::Array(answers))
        }
    }
}
