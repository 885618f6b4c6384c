//! Stage 7, respond: the upstream's answer back to the client.
//!
//! An SSE stream is parsed event by event and each event is decided and forwarded
//! as it arrives (never buffered whole): a server-to-client request or notification
//! the policy refuses is dropped (and a refused request is answered to the upstream
//! with a JSON-RPC error so it does not hang), a `tools/list` result is filtered to
//! the tools the identity may call, an answer to a call whose decision listed masks
//! (`decision.mask`) is masked (never its JSON-RPC envelope: the id comes back as
//! sent), anything else passes byte for byte. Every message is
//! recorded (stage 8). A JSON body streams through untouched unless something must
//! look at it (a listing, a mask, the audit trail); it is re-serialized only when
//! it changed.
//!
//! HTTP and stdio upstreams share this path: both answer with a `Reply` (see
//! `upstream::reply`). A stdio child's messages are decided one by one exactly as
//! SSE events are, and sent as SSE events (or as one JSON body when the only
//! message is the answer).

use crate::ctx::RequestCtx;
use crate::decide::{decide, error_response, filter_tools, refusal};
use crate::decode::{decode, Limits, Message, MessageKind};
use crate::error::ProxyError;
use crate::forward::{answer_upstream, is_hop_by_hop};
use crate::mask::MaskSet;
use crate::protocol::SESSION_ID;
use crate::record::AuditEvent;
use crate::sse::{SseEvent, SseParser};
use crate::upstream::reply::{MessageStream, Reply, ReplyBody};
use airlock_policy::{Direction, Evaluation, Verdict};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// The error type of response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body of every response the proxy sends.
pub type ProxyBody = BoxBody<Bytes, BoxError>;
/// A response the proxy sends.
pub type ProxyResponse = Response<ProxyBody>;

/// A body of fixed bytes.
pub(crate) fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A JSON response with `status`.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> ProxyResponse {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(full(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// One client request of the exchange, for its answer: what it called (recorded
/// with the answer) and what the decision said to mask in the answer.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    id: Value,
    tool: String,
    mask: Option<MaskSet>,
}

impl Call {
    /// The call a request makes, `None` for notifications and responses.
    pub(crate) fn of(ctx: &RequestCtx, message: &Message, evaluation: &Evaluation) -> Option<Call> {
        let MessageKind::Request { id, .. } = &message.kind else {
            return None;
        };
        let names = &evaluation.decision.mask;
        let mask = (!names.is_empty()).then(|| {
            let (set, unknown) = MaskSet::from_names(names, ctx.shared.recorder.last_four());
            if !unknown.is_empty() {
                tracing::warn!(parent: &ctx.span, ?unknown, "decision.mask names unknown detectors: masking with every detector");
            }
            set
        });
        Some(Call {
            id: id.clone(),
            tool: message.target_name().unwrap_or_default().to_owned(),
            mask,
        })
    }
}

/// What the response path must know about the client's side of the exchange.
#[derive(Debug)]
pub(crate) struct Exchange {
    /// Ids of the client's `tools/list` requests (their results are filtered).
    listing: Vec<Value>,
    calls: Vec<Call>,
    sent: Instant,
    upstream_ms: u64,
    /// The session id the agent sees (a new one when this answers `initialize`).
    session: String,
    /// The approval that released the call, recorded with its answer.
    approval_id: Option<String>,
}

impl Exchange {
    /// The exchange of requests sent upstream at `sent`.
    pub(crate) fn new(listing: Vec<Value>, calls: Vec<Call>, sent: Instant) -> Exchange {
        Exchange {
            listing,
            calls,
            sent,
            upstream_ms: 0,
            session: String::new(),
            approval_id: None,
        }
    }

    /// The exchange of a held call released by `approval_id`.
    pub(crate) fn approved_by(mut self, approval_id: &str) -> Exchange {
        self.approval_id = Some(approval_id.to_owned());
        self
    }

    fn call(&self, id: &Value) -> Option<&Call> {
        self.calls.iter().find(|c| &c.id == id)
    }
}

/// Turns the upstream's answer into the client's, deciding what it carries.
pub(crate) async fn respond(
    ctx: Arc<RequestCtx>,
    upstream: Reply,
    mut exchange: Exchange,
) -> Result<ProxyResponse, ProxyError> {
    exchange.upstream_ms = exchange.sent.elapsed().as_millis() as u64;
    let Reply {
        status,
        headers: upstream_headers,
        body,
    } = upstream;
    let headers = client_headers(&ctx, &upstream_headers);
    exchange.session = headers
        .get(SESSION_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(ctx.session_id())
        .to_owned();
    let content_type = upstream_headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    // A JSON answer is read whole only when something must look at it: a listing
    // to filter, a mask to apply, or an audit event to record.
    let inspect = !exchange.listing.is_empty()
        || exchange.calls.iter().any(|c| c.mask.is_some())
        || ctx.shared.recorder.enabled();
    let body = match body {
        ReplyBody::Http(body) if content_type.starts_with("text/event-stream") => {
            sse_body(ctx, body, exchange)
        }
        ReplyBody::Http(body) if content_type.starts_with("application/json") && inspect => {
            let bytes = read_answer(&ctx, body).await?;
            full(answer_json(&ctx, bytes, &exchange)?)
        }
        ReplyBody::Http(body) => body.map_err(BoxError::from).boxed(),
        ReplyBody::Json(bytes) if inspect => full(answer_json(&ctx, bytes, &exchange)?),
        ReplyBody::Json(bytes) => full(bytes),
        ReplyBody::Messages(stream) => message_events(ctx, stream, exchange),
        ReplyBody::Empty => full(Bytes::new()),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

/// Upstream headers the client may see; the session id is sealed to the identity.
fn client_headers(ctx: &RequestCtx, upstream: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(upstream.len());
    for (name, value) in upstream {
        let withheld =
            name == header::CONTENT_LENGTH || name == header::SET_COOKIE || name == SESSION_ID;
        if !withheld && !is_hop_by_hop(name, upstream) {
            out.append(name.clone(), value.clone());
        }
    }
    if let Some(id) = upstream.get(SESSION_ID).and_then(|v| v.to_str().ok()) {
        let sealed = ctx
            .shared
            .seal
            .seal(&ctx.identity.subject, &ctx.upstream.name, id);
        if let Ok(value) = HeaderValue::from_str(&sealed) {
            out.insert(SESSION_ID, value);
        }
    }
    out
}

fn response_limits(ctx: &RequestCtx) -> Limits {
    Limits {
        max_body_bytes: ctx.shared.max_response_bytes,
        max_depth: ctx.shared.limits.max_depth,
    }
}

fn unusable(ctx: &RequestCtx, detail: String) -> ProxyError {
    ProxyError::UpstreamUnavailable {
        upstream: ctx.upstream.name.clone(),
        detail,
    }
}

/// Reads an HTTP upstream's JSON answer, bounded.
async fn read_answer(ctx: &RequestCtx, body: Incoming) -> Result<Bytes, ProxyError> {
    Ok(Limited::new(body, ctx.shared.max_response_bytes)
        .collect()
        .await
        .map_err(|e| unusable(ctx, format!("its response could not be read: {e}")))?
        .to_bytes())
}

/// Filters a JSON answer's `tools/list` results, masks what the decisions say,
/// records each message; re-serializes only when something changed.
fn answer_json(
    ctx: &Arc<RequestCtx>,
    bytes: Bytes,
    exchange: &Exchange,
) -> Result<Bytes, ProxyError> {
    let payload = decode(&bytes, &response_limits(ctx))
        .map_err(|e| unusable(ctx, format!("it answered an invalid message: {e}")))?;
    let batch = payload.is_batch();
    let total = payload.messages().len();
    let mut changed = false;
    let mut values = Vec::with_capacity(total);
    for message in payload.into_messages() {
        if message.method().is_some() {
            // A JSON body answers requests; a server request in one is decided anyway.
            values.extend(decide_server_message(ctx, message, &exchange.session));
        } else {
            let (value, modified) = answer(ctx, message, exchange);
            changed |= modified;
            values.push(value);
        }
    }
    if !changed && values.len() == total {
        return Ok(bytes); // decided, recorded and unchanged: the exact bytes
    }
    let value = match (batch, values.pop()) {
        (false, Some(single)) => single,
        (_, last) => {
            values.extend(last);
            Value::Array(values)
        }
    };
    serde_json::to_vec(&value)
        .map(Bytes::from)
        .map_err(|e| ProxyError::Internal(format!("cannot serialize a filtered response: {e}")))
}

/// A response to one of the client's requests: a `tools/list` result filtered, the
/// decision's masks applied, then recorded (masked for storage). The flag says
/// whether the value the client gets changed.
fn answer(ctx: &RequestCtx, message: Message, exchange: &Exchange) -> (Value, bool) {
    let mut event = AuditEvent::of(ctx, Direction::ServerToClient, &message, &exchange.session);
    event.verdict = Verdict::Allow.as_str().to_owned();
    event.upstream_ms = exchange.upstream_ms;
    event.approval_id.clone_from(&exchange.approval_id);
    let mut value = message.value;
    let mut changed = false;
    if let MessageKind::Response { id } = &message.kind {
        if exchange.listing.contains(id) {
            let removed = value
                .get_mut("result")
                .map(|result| filter_tools(ctx, result))
                .unwrap_or(0);
            if removed > 0 {
                tracing::debug!(parent: &ctx.span, removed, "tools/list filtered");
            }
            changed |= removed > 0;
        }
        if let Some(call) = exchange.call(id) {
            event.tool.clone_from(&call.tool);
            if let Some(mask) = &call.mask {
                changed |= mask.apply(&mut value) > 0;
            }
        }
    }
    ctx.shared.recorder.record(event, &value);
    (value, changed)
}

/// Streams the upstream's SSE to the client, deciding each event on the way.
fn sse_body(ctx: Arc<RequestCtx>, mut body: Incoming, exchange: Exchange) -> ProxyBody {
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, BoxError>>(16);
    tokio::spawn(async move {
        let mut parser = SseParser::default();
        loop {
            let frame = tokio::select! {
                frame = body.frame() => frame,
                // The client went away: stop reading the upstream (dropping it closes it).
                _ = tx.closed() => return,
            };
            let data = match frame {
                None => return, // an unfinished last event was never decided: it stays here
                Some(Err(err)) => {
                    let _ = tx.send(Err(BoxError::from(err))).await;
                    return;
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_) => continue, // trailers
                },
            };
            for event in parser.feed(&data) {
                if let Some(out) = filter_event(&ctx, &event, &exchange) {
                    if tx.send(Ok(Frame::data(out))).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    StreamBody::new(ReceiverStream::new(rx)).boxed()
}

/// What to send the client for one upstream event, if anything.
fn filter_event(ctx: &Arc<RequestCtx>, event: &SseEvent, exchange: &Exchange) -> Option<Bytes> {
    // Comments, keep-alives and priming events (an `id` with empty data, sent for
    // resumability) carry no message: forward them untouched.
    if !event.has_data || event.data.iter().all(u8::is_ascii_whitespace) {
        return Some(event.raw.clone());
    }
    match filter_message(ctx, &event.data, exchange) {
        Filtered::Dropped => None,
        Filtered::Unchanged => Some(event.raw.clone()), // decided and unchanged: the exact bytes
        Filtered::Changed(data) => Some(event.with_data(&data)),
    }
}

/// One upstream message (or batch) after its decisions.
enum Filtered {
    /// Refused, or not a valid message: nothing goes to the client.
    Dropped,
    /// Decided, recorded and unchanged.
    Unchanged,
    /// Filtered or masked: these bytes instead.
    Changed(Vec<u8>),
}

/// Decides (server requests), filters and masks (answers) and records one upstream
/// message or batch.
fn filter_message(ctx: &Arc<RequestCtx>, data: &[u8], exchange: &Exchange) -> Filtered {
    let payload = match decode(data, &response_limits(ctx)) {
        Ok(payload) => payload,
        Err(err) => {
            tracing::warn!(parent: &ctx.span, error = %err, "dropped an upstream message that is not a valid JSON-RPC message");
            return Filtered::Dropped;
        }
    };
    let batch = payload.is_batch();
    let total = payload.messages().len();
    let mut changed = false;
    let mut kept = Vec::with_capacity(total);
    for message in payload.into_messages() {
        if message.method().is_some() {
            kept.extend(decide_server_message(ctx, message, &exchange.session));
        } else {
            let (value, modified) = answer(ctx, message, exchange);
            changed |= modified;
            kept.push(value);
        }
    }
    if kept.is_empty() {
        return Filtered::Dropped;
    }
    if !changed && kept.len() == total {
        return Filtered::Unchanged;
    }
    let value = if batch {
        Value::Array(kept)
    } else {
        match kept.pop() {
            Some(value) => value,
            None => return Filtered::Dropped,
        }
    };
    match serde_json::to_vec(&value) {
        Ok(data) => Filtered::Changed(data),
        Err(_) => Filtered::Dropped,
    }
}

/// Streams a stdio child's messages to the client as SSE events, deciding each.
fn message_events(
    ctx: Arc<RequestCtx>,
    mut stream: MessageStream,
    exchange: Exchange,
) -> ProxyBody {
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, BoxError>>(16);
    tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                message = stream.next() => message,
                // The client went away: stop (the child keeps running for its session).
                _ = tx.closed() => return,
            };
            let Some(message) = message else { return };
            let data = match filter_message(&ctx, &message, &exchange) {
                Filtered::Dropped => continue,
                Filtered::Unchanged => message.to_vec(),
                Filtered::Changed(data) => data,
            };
            let mut event = Vec::with_capacity(data.len() + 24);
            event.extend_from_slice(b"event: message\ndata: ");
            event.extend_from_slice(&data);
            event.extend_from_slice(b"\n\n");
            if tx.send(Ok(Frame::data(Bytes::from(event)))).await.is_err() {
                return;
            }
        }
    });
    StreamBody::new(ReceiverStream::new(rx)).boxed()
}

/// Decides a server-to-client request or notification and records it; `None` when
/// refused.
fn decide_server_message(ctx: &Arc<RequestCtx>, message: Message, session: &str) -> Option<Value> {
    let evaluation = decide(ctx, &message, Direction::ServerToClient);
    ctx.shared
        .metrics
        .decided(Direction::ServerToClient, &evaluation);
    let event = AuditEvent::of(ctx, Direction::ServerToClient, &message, session);
    ctx.shared
        .recorder
        .record(event.decided(&evaluation), &message.value);
    // Server-to-client messages are never held: there is no one to hold them for.
    let Some(error) = refusal(&evaluation, false) else {
        return Some(message.value);
    };
    tracing::info!(
        parent: &ctx.span,
        server_method = message.method().unwrap_or_default(),
        verdict = evaluation.decision.verdict.as_str(),
        reasons = ?evaluation.decision.reasons,
        "refused a server-to-client message"
    );
    if let MessageKind::Request { id, .. } = &message.kind {
        answer_upstream(Arc::clone(ctx), error_response(id, error));
    }
    None
}
