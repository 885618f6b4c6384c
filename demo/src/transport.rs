//! Streamable HTTP: the `/mcp` endpoint. Authenticates, enforces the size limit, finds
//! the session (or the stateless revision), and hands JSON-RPC messages to [`crate::rpc`].

use crate::database::Database;
use crate::rpc::{self, Message, RpcError, INVALID_REQUEST, PARSE_ERROR};
use crate::session::{self, Sessions, BATCH_REVISION, SESSION_REVISIONS, STATELESS_REVISION};
use crate::stream;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde_json::Value;
use std::convert::Infallible;
use std::sync::Arc;

/// Every response body: a buffered JSON document or an event stream.
pub(crate) type Body = BoxBody<Bytes, Infallible>;

/// Request bodies above this are refused with 413.
pub(crate) const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
/// JSON-RPC code for transport-level refusals (auth, session), in the server range.
const TRANSPORT_ERROR: i64 = -32000;

/// What every request shares.
pub(crate) struct State {
    pub(crate) db: Arc<Database>,
    pub(crate) sessions: Sessions,
    pub(crate) required_bearer: Option<String>,
}

/// Answers one HTTP request.
pub(crate) async fn route(req: Request<Incoming>, state: Arc<State>) -> Response<Body> {
    if req.uri().path() != "/mcp" {
        return error(
            StatusCode::NOT_FOUND,
            INVALID_REQUEST,
            "not found: the MCP endpoint is /mcp",
        );
    }
    if !authorized(req.headers(), state.required_bearer.as_deref()) {
        let mut response = error(
            StatusCode::UNAUTHORIZED,
            TRANSPORT_ERROR,
            "missing or wrong bearer token: send `Authorization: Bearer <token>` with the token \
             the demo server was started with (--require-token or AIRLOCK_DEMO_TOKEN)",
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"airlock-demo\""),
        );
        return response;
    }
    match *req.method() {
        Method::POST => post(req, &state).await,
        Method::DELETE => delete(req.headers(), &state.sessions),
        _ => {
            let mut response = error(
                StatusCode::METHOD_NOT_ALLOWED,
                INVALID_REQUEST,
                "this server offers no standalone event stream: POST JSON-RPC messages to /mcp, DELETE to end a session",
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST, DELETE"));
            response
        }
    }
}

fn authorized(headers: &HeaderMap, expected: Option<&str>) -> bool {
    let Some(expected) = expected else {
        return true;
    };
    let presented = header_str(headers, header::AUTHORIZATION.as_str())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    presented.is_some_and(|token| same_bytes(token.as_bytes(), expected.as_bytes()))
}

/// Compares without stopping at the first difference, so timing does not leak a prefix.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// What a POST carries besides its body.
struct PostContext {
    revision_header: Option<&'static str>,
    session_id: Option<String>,
    wants_sse: bool,
}

async fn post(req: Request<Incoming>, state: &State) -> Response<Body> {
    let headers = req.headers();
    let revision_header = match header_str(headers, VERSION_HEADER) {
        None => None,
        Some(v) => match session::known_revision(v) {
            Some(known) => Some(known),
            None => {
                let message = format!(
                    "unsupported MCP-Protocol-Version {v:?}; this server speaks {}",
                    session::ALL_REVISIONS.join(", ")
                );
                return error(StatusCode::BAD_REQUEST, INVALID_REQUEST, &message);
            }
        },
    };
    let context = PostContext {
        revision_header,
        session_id: header_str(headers, SESSION_HEADER).map(str::to_owned),
        wants_sse: header_str(headers, header::ACCEPT.as_str())
            .is_some_and(|accept| accept.contains("text/event-stream")),
    };
    let declared_len =
        header_str(headers, header::CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<u64>().ok());
    let value = match read_json(req.into_body(), declared_len).await {
        Ok(value) => value,
        Err(refusal) => return refusal.into_response(),
    };
    match value {
        Value::Array(batch) => post_batch(state, batch, &context).await,
        single => post_single(state, single, &context).await,
    }
}

async fn read_json(body: Incoming, declared_len: Option<u64>) -> Result<Value, Refusal> {
    let too_large = || {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            INVALID_REQUEST,
            "request body over 4 MiB: send a smaller message",
        )
    };
    if declared_len.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let bytes = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large()),
        Err(e) => {
            let message = format!("could not read the request body: {e}");
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                INVALID_REQUEST,
                message,
            ));
        }
    };
    serde_json::from_slice(&bytes).map_err(|e| {
        let message = format!("parse error: the body is not valid JSON ({e})");
        Refusal::new(StatusCode::BAD_REQUEST, PARSE_ERROR, message)
    })
}

/// An HTTP-level refusal: a status, and the JSON-RPC error its body carries.
struct Refusal {
    status: StatusCode,
    code: i64,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, code: i64, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn into_response(self) -> Response<Body> {
        error(self.status, self.code, &self.message)
    }
}

/// The revision that governs a non-`initialize` POST, or the refusal to send.
fn resolve_revision(
    state: &State,
    context: &PostContext,
    method: Option<&str>,
) -> Result<&'static str, Refusal> {
    // Stateless requests and discovery need no session.
    if context.revision_header == Some(STATELESS_REVISION) || method == Some("server/discover") {
        return Ok(context.revision_header.unwrap_or(STATELESS_REVISION));
    }
    let Some(id) = context.session_id.as_deref() else {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            INVALID_REQUEST,
            "missing Mcp-Session-Id header: send initialize first and repeat the Mcp-Session-Id \
             it returns on every request (or send MCP-Protocol-Version: 2026-07-28 to be stateless)",
        ));
    };
    match state.sessions.get(id) {
        Some(session) => Ok(session.revision),
        None => Err(Refusal::new(
            StatusCode::NOT_FOUND,
            INVALID_REQUEST,
            "unknown or ended session: send initialize again to open a new one",
        )),
    }
}

async fn post_single(state: &State, value: Value, context: &PostContext) -> Response<Body> {
    let message = match rpc::decode(value) {
        Ok(message) => message,
        Err(reply) => return json(StatusCode::BAD_REQUEST, &reply),
    };
    if let Message::Request { id, method, params } = &message {
        if method == "initialize" {
            return initialize(&state.sessions, id.clone(), params);
        }
    }
    let revision = match resolve_revision(state, context, message.method()) {
        Ok(revision) => revision,
        Err(refusal) => return refusal.into_response(),
    };
    match message {
        Message::NoReply { .. } => accepted(),
        Message::Request { id, method, params } if context.wants_sse && method == "tools/call" => {
            stream::tool_call(Arc::clone(&state.db), id, params, revision).await
        }
        Message::Request { id, method, params } => json(
            StatusCode::OK,
            &rpc::answer(&state.db, id, &method, params, revision).await,
        ),
    }
}

async fn post_batch(state: &State, batch: Vec<Value>, context: &PostContext) -> Response<Body> {
    if batch.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            INVALID_REQUEST,
            "invalid JSON-RPC message: empty batch",
        );
    }
    let revision = match resolve_revision(state, context, None) {
        Ok(revision) => revision,
        Err(refusal) => return refusal.into_response(),
    };
    if revision != BATCH_REVISION {
        let message = format!(
            "JSON-RPC batches are only accepted on protocol revision {BATCH_REVISION}; this \
             request uses {revision}: send one message per POST"
        );
        return error(StatusCode::BAD_REQUEST, INVALID_REQUEST, &message);
    }
    let mut replies = Vec::new();
    for item in batch {
        match rpc::decode(item) {
            Err(reply) => replies.push(reply),
            Ok(Message::NoReply { .. }) => {}
            Ok(Message::Request { id, method, params }) => {
                replies.push(rpc::answer(&state.db, id, &method, params, revision).await);
            }
        }
    }
    if replies.is_empty() {
        accepted()
    } else {
        json(StatusCode::OK, &Value::Array(replies))
    }
}

fn initialize(sessions: &Sessions, id: Value, params: &Value) -> Response<Body> {
    let requested = params.get("protocolVersion").and_then(Value::as_str);
    let revision = session::negotiate(requested);
    debug_assert!(SESSION_REVISIONS.contains(&revision));
    match sessions.open(revision) {
        Ok(session_id) => {
            let reply = rpc::success(id, rpc::initialize_result(revision));
            let mut response = json(StatusCode::OK, &reply);
            if let Ok(value) = HeaderValue::from_str(&session_id) {
                response.headers_mut().insert(SESSION_HEADER, value);
            }
            tracing::debug!(session = %session_id, revision, "session opened");
            response
        }
        Err(session::SessionsFull) => {
            let full = RpcError::new(
                TRANSPORT_ERROR,
                "too many open sessions: end unused ones with DELETE /mcp, then retry",
            );
            json(StatusCode::SERVICE_UNAVAILABLE, &rpc::failure(id, &full))
        }
    }
}

fn delete(headers: &HeaderMap, sessions: &Sessions) -> Response<Body> {
    match header_str(headers, SESSION_HEADER) {
        None => error(
            StatusCode::BAD_REQUEST,
            INVALID_REQUEST,
            "DELETE /mcp needs the Mcp-Session-Id header of the session to end",
        ),
        Some(id) if sessions.close(id) => {
            tracing::debug!(session = %id, "session ended");
            empty(StatusCode::NO_CONTENT)
        }
        Some(_) => error(
            StatusCode::NOT_FOUND,
            INVALID_REQUEST,
            "unknown or already ended session",
        ),
    }
}

fn json(status: StatusCode, body: &Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// An HTTP error whose body is a JSON-RPC error without id, as the transport spec allows.
fn error(status: StatusCode, code: i64, message: &str) -> Response<Body> {
    json(
        status,
        &rpc::failure(Value::Null, &RpcError::new(code, message)),
    )
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::new()).boxed());
    *response.status_mut() = status;
    response
}

/// 202 Accepted: the answer to notifications and responses.
fn accepted() -> Response<Body> {
    empty(StatusCode::ACCEPTED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_check_is_exact() {
        let mut headers = HeaderMap::new();
        assert!(authorized(&headers, None));
        assert!(!authorized(&headers, Some("s3cret")));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret"),
        );
        assert!(authorized(&headers, Some("s3cret")));
        assert!(!authorized(&headers, Some("s3cre")));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer s3cret"),
        );
        assert!(authorized(&headers, Some("s3cret")));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic s3cret"),
        );
        assert!(!authorized(&headers, Some("s3cret")));
    }
}
