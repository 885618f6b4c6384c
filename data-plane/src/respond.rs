//! Stage 7, respond: the upstream's answer back to the client.
//!
//! An SSE stream is parsed event by event and each event is decided and forwarded
//! as it arrives (never buffered whole): a server-to-client request or notification
//! the policy refuses is dropped (and a refused request is answered to the upstream
//! with a JSON-RPC error so it does not hang), a `tools/list` result is filtered to
//! the tools the identity may call, anything else passes byte for byte. A JSON body
//! streams through untouched unless it answers a `tools/list`, the only case where
//! the proxy re-serializes.

use crate::ctx::RequestCtx;
use crate::decide::{decide, error_response, filter_tools, refusal};
use crate::decode::{decode, Limits, Message, MessageKind};
use crate::error::ProxyError;
use crate::forward::{answer_upstream, is_hop_by_hop};
use crate::protocol::SESSION_ID;
use crate::sse::{SseEvent, SseParser};
use airlock_policy::Direction;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::Value;
use std::sync::Arc;
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

/// Turns the upstream's response into the client's, deciding what it carries.
/// `listing` holds the ids of the client's `tools/list` requests in this exchange.
pub(crate) async fn respond(
    ctx: Arc<RequestCtx>,
    upstream: Response<Incoming>,
    listing: Vec<Value>,
) -> Result<ProxyResponse, ProxyError> {
    let (parts, body) = upstream.into_parts();
    let headers = client_headers(&ctx, &parts.headers);
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let body = if content_type.starts_with("text/event-stream") {
        sse_body(ctx, body, listing)
    } else if content_type.starts_with("application/json") && !listing.is_empty() {
        full(filtered_json(&ctx, body, &listing).await?)
    } else {
        body.map_err(BoxError::from).boxed()
    };
    let mut response = Response::new(body);
    *response.status_mut() = parts.status;
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

/// Reads a JSON answer (bounded), filters its `tools/list` results, re-serializes.
async fn filtered_json(
    ctx: &RequestCtx,
    body: Incoming,
    listing: &[Value],
) -> Result<Vec<u8>, ProxyError> {
    let unusable = |detail: String| ProxyError::UpstreamUnavailable {
        upstream: ctx.upstream.name.clone(),
        detail,
    };
    let bytes = Limited::new(body, ctx.shared.max_response_bytes)
        .collect()
        .await
        .map_err(|e| unusable(format!("its response could not be read: {e}")))?
        .to_bytes();
    let payload = decode(&bytes, &response_limits(ctx))
        .map_err(|e| unusable(format!("it answered an invalid message: {e}")))?;
    let batch = payload.is_batch();
    let mut values: Vec<Value> = payload
        .into_messages()
        .into_iter()
        .map(|message| filter_listing(ctx, message, listing).0)
        .collect();
    let value = match (batch, values.pop()) {
        (false, Some(single)) => single,
        (_, last) => {
            values.extend(last);
            Value::Array(values)
        }
    };
    serde_json::to_vec(&value)
        .map_err(|e| ProxyError::Internal(format!("cannot serialize a filtered response: {e}")))
}

/// A response to one of the client's `tools/list` requests, filtered; anything else
/// unchanged. The flag says whether the value changed.
fn filter_listing(ctx: &RequestCtx, message: Message, listing: &[Value]) -> (Value, bool) {
    let mut value = message.value;
    let answers_listing =
        matches!(&message.kind, MessageKind::Response { id } if listing.contains(id));
    if !answers_listing {
        return (value, false);
    }
    let removed = value
        .get_mut("result")
        .map(|result| filter_tools(ctx, result))
        .unwrap_or(0);
    if removed > 0 {
        tracing::debug!(parent: &ctx.span, removed, "tools/list filtered");
    }
    (value, removed > 0)
}

/// Streams the upstream's SSE to the client, deciding each event on the way.
fn sse_body(ctx: Arc<RequestCtx>, mut body: Incoming, listing: Vec<Value>) -> ProxyBody {
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
                if let Some(out) = filter_event(&ctx, &event, &listing) {
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
fn filter_event(ctx: &Arc<RequestCtx>, event: &SseEvent, listing: &[Value]) -> Option<Bytes> {
    // Comments, keep-alives and priming events (an `id` with empty data, sent for
    // resumability) carry no message: forward them untouched.
    if !event.has_data || event.data.iter().all(u8::is_ascii_whitespace) {
        return Some(event.raw.clone());
    }
    let payload = match decode(&event.data, &response_limits(ctx)) {
        Ok(payload) => payload,
        Err(err) => {
            tracing::warn!(parent: &ctx.span, error = %err, "dropped an upstream event that is not a valid JSON-RPC message");
            return None;
        }
    };
    let batch = payload.is_batch();
    let total = payload.messages().len();
    let mut changed = false;
    let mut kept = Vec::with_capacity(total);
    for message in payload.into_messages() {
        if message.method().is_some() {
            if let Some(value) = decide_server_message(ctx, message) {
                kept.push(value);
            }
        } else {
            let (value, filtered) = filter_listing(ctx, message, listing);
            changed |= filtered;
            kept.push(value);
        }
    }
    if kept.is_empty() {
        return None;
    }
    if !changed && kept.len() == total {
        return Some(event.raw.clone()); // decided and unchanged: the exact bytes
    }
    let value = if batch {
        Value::Array(kept)
    } else {
        kept.pop()?
    };
    let data = serde_json::to_vec(&value).ok()?;
    Some(event.with_data(&data))
}

/// Decides a server-to-client request or notification; `None` when refused.
fn decide_server_message(ctx: &Arc<RequestCtx>, message: Message) -> Option<Value> {
    let evaluation = decide(ctx, &message, Direction::ServerToClient);
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
