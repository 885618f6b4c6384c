//! Every way a request can fail on the data plane, and the one place that maps each
//! to an HTTP status, a JSON-RPC error code and whether a client may retry.

use crate::config::ConfigError;
use crate::respond::{json_response, ProxyResponse};
use http::{header, HeaderValue, StatusCode};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;

/// The JSON-RPC error codes Airlock answers with. Standard codes first, then ours
/// (the server-defined range -32000..-32099). Documented in docs/errors: keep in sync.
pub mod codes {
    /// The body is not JSON (or not UTF-8).
    pub const PARSE_ERROR: i64 = -32700;
    /// The body is JSON but not an acceptable JSON-RPC message (duplicate keys, depth,
    /// batch not allowed, header/body mismatch, unsupported protocol revision).
    pub const INVALID_REQUEST: i64 = -32600;
    /// The proxy itself failed.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// The policy denied the message.
    pub const DENIED: i64 = -32001;
    /// The policy requires a human approval, which this node cannot obtain yet.
    pub const APPROVAL_REQUIRED: i64 = -32002;
    /// The upstream MCP server could not be reached or timed out.
    pub const UPSTREAM_UNAVAILABLE: i64 = -32003;
    /// A batch element was not forwarded because another element was refused.
    pub const BATCH_REFUSED: i64 = -32004;
    /// No valid API key was presented.
    pub const UNAUTHORIZED: i64 = -32005;
    /// The session id is unknown, expired or belongs to another identity.
    pub const SESSION_NOT_FOUND: i64 = -32006;
    /// The request's `Origin` is not allowed.
    pub const ORIGIN_FORBIDDEN: i64 = -32007;
    /// The path names no configured upstream.
    pub const UNKNOWN_SERVER: i64 = -32008;
    /// The body is larger than `server.max_body_bytes`.
    pub const PAYLOAD_TOO_LARGE: i64 = -32009;
    /// The proxy is at `server.max_concurrent_requests`.
    pub const OVERLOADED: i64 = -32010;
    /// The audit backlog is full (the audit sink is unreachable): the call was not
    /// forwarded because it could not be recorded (`[audit] on_full = "refuse"`).
    pub const AUDIT_UNAVAILABLE: i64 = -32020;
    /// A reviewer denied the held call (`data`: approval_id, decided_by, reason).
    pub const APPROVAL_DENIED: i64 = -32011;
    /// The held call's approval expired or was cancelled before approval.
    pub const APPROVAL_EXPIRED: i64 = -32012;
    /// `approval.mode = "async"`: the approval was requested; repeat the identical
    /// call once it is approved (`data.approval_id`).
    pub const APPROVAL_PENDING: i64 = -32013;
    /// The control plane could not be reached to obtain the approval.
    pub const APPROVAL_UNAVAILABLE: i64 = -32014;
}

/// A data-plane failure.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The policy bundle could not be loaded at start-up.
    #[error("cannot load the policy bundle: {0}; fix the policies (try `airlock policy test DIR`) and restart")]
    Policy(String),
    /// The control-plane link could not be set up at start-up.
    #[error("cannot set up the control-plane link: {0}; fix the [control_plane] table")]
    ControlPlane(String),
    /// The listener could not bind.
    #[error("cannot listen on {addr}: {source}; pick another address with --listen")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No or an unknown API key.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// A bearer JWT that does not verify (expired, wrong audience, unknown issuer...).
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// A `[[jwt]]` issuer's key set cannot be loaded at start-up.
    #[error("JWT issuer keys: {0}")]
    Jwks(String),
    /// The `Origin` header is not on `server.allowed_origins`.
    #[error("origin `{0}` is not allowed; add it to server.allowed_origins if this browser app should reach the proxy")]
    OriginForbidden(String),
    /// The path names no upstream.
    #[error("no MCP server named `{0}` behind this proxy; use /mcp/{{server}} with a configured upstream name")]
    UnknownServer(String),
    /// A path the proxy does not serve.
    #[error("not found: the proxy serves /mcp/{{server}}, /healthz and /readyz")]
    NotFound,
    /// A method the MCP endpoint does not accept.
    #[error("method not allowed: use POST, GET or DELETE on /mcp/{{server}}")]
    MethodNotAllowed,
    /// The body exceeds the configured limit.
    #[error("request body is larger than {0} bytes; send a smaller message")]
    BodyTooLarge(usize),
    /// The body could not be read from the client.
    #[error("cannot read the request body: {0}")]
    BodyRead(String),
    /// Strict decoding refused the body.
    #[error("{message}")]
    Decode {
        /// The decoder's JSON-RPC code (-32700 or -32600).
        code: i64,
        /// The decoder's message.
        message: String,
    },
    /// A batch under a protocol revision that does not allow one.
    #[error("JSON-RPC batches are not allowed under MCP protocol revision {0}; send one message per request")]
    BatchNotAllowed(String),
    /// An `Mcp-Method` / `Mcp-Name` header disagrees with the body, or is missing.
    #[error("{0}")]
    Header(String),
    /// The `MCP-Protocol-Version` header names a revision the proxy does not speak.
    #[error("unsupported MCP-Protocol-Version `{0}`; supported: 2025-03-26, 2025-06-18, 2025-11-25, 2026-07-28")]
    UnsupportedProtocol(String),
    /// The session id is unknown or bound to another identity.
    #[error("session not found: it expired or belongs to another identity; send a new initialize request")]
    SessionNotFound,
    /// A denied notification or response (requests get a JSON-RPC error with their id).
    #[error("{message}")]
    Refused {
        /// The JSON-RPC error object.
        code: i64,
        /// The policy message.
        message: String,
        /// `reasons`, `revision`, ...
        data: Value,
    },
    /// The upstream could not be reached.
    #[error("upstream `{upstream}` is unavailable: {detail}; retry later or check that the MCP server is running")]
    UpstreamUnavailable {
        /// The upstream name.
        upstream: String,
        /// What failed.
        detail: String,
    },
    /// The upstream did not answer in time.
    #[error("upstream `{upstream}` did not answer within {after:?}; retry later or raise server.request_timeout_s")]
    UpstreamTimeout {
        /// The upstream name.
        upstream: String,
        /// The timeout.
        after: Duration,
    },
    /// Too many requests in progress (`server.max_concurrent_requests`).
    #[error("the proxy is at its limit of concurrent requests; retry shortly")]
    Overloaded,
    /// The audit backlog is full; the call would go unrecorded.
    #[error("the audit log is unavailable ({0} events wait for the control plane): the call was not forwarded because it could not be recorded; retry later")]
    AuditUnavailable(usize),
    /// A bug or resource failure inside the proxy.
    #[error("internal proxy error: {0}")]
    Internal(String),
}

impl ProxyError {
    /// The HTTP status the client sees.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::Unauthorized(_) | ProxyError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            ProxyError::OriginForbidden(_) | ProxyError::Refused { .. } => StatusCode::FORBIDDEN,
            ProxyError::UnknownServer(_) | ProxyError::NotFound | ProxyError::SessionNotFound => {
                StatusCode::NOT_FOUND
            }
            ProxyError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::BodyRead(_)
            | ProxyError::Decode { .. }
            | ProxyError::BatchNotAllowed(_)
            | ProxyError::Header(_)
            | ProxyError::UnsupportedProtocol(_) => StatusCode::BAD_REQUEST,
            ProxyError::UpstreamUnavailable { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Overloaded | ProxyError::AuditUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProxyError::Config(_)
            | ProxyError::Policy(_)
            | ProxyError::ControlPlane(_)
            | ProxyError::Jwks(_)
            | ProxyError::Bind { .. }
            | ProxyError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON-RPC error code in the body.
    pub fn jsonrpc_code(&self) -> i64 {
        match self {
            ProxyError::Unauthorized(_) | ProxyError::InvalidToken(_) => codes::UNAUTHORIZED,
            ProxyError::OriginForbidden(_) => codes::ORIGIN_FORBIDDEN,
            ProxyError::UnknownServer(_) | ProxyError::NotFound | ProxyError::MethodNotAllowed => {
                codes::UNKNOWN_SERVER
            }
            ProxyError::SessionNotFound => codes::SESSION_NOT_FOUND,
            ProxyError::BodyTooLarge(_) => codes::PAYLOAD_TOO_LARGE,
            ProxyError::BodyRead(_) => codes::PARSE_ERROR,
            ProxyError::Decode { code, .. } | ProxyError::Refused { code, .. } => *code,
            ProxyError::BatchNotAllowed(_)
            | ProxyError::Header(_)
            | ProxyError::UnsupportedProtocol(_) => codes::INVALID_REQUEST,
            ProxyError::UpstreamUnavailable { .. } | ProxyError::UpstreamTimeout { .. } => {
                codes::UPSTREAM_UNAVAILABLE
            }
            ProxyError::Overloaded => codes::OVERLOADED,
            ProxyError::AuditUnavailable(_) => codes::AUDIT_UNAVAILABLE,
            ProxyError::Config(_)
            | ProxyError::Policy(_)
            | ProxyError::ControlPlane(_)
            | ProxyError::Jwks(_)
            | ProxyError::Bind { .. }
            | ProxyError::Internal(_) => codes::INTERNAL_ERROR,
        }
    }

    /// Whether sending the same request again may succeed without changing it.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ProxyError::UpstreamUnavailable { .. }
                | ProxyError::Overloaded
                | ProxyError::AuditUnavailable(_)
                | ProxyError::UpstreamTimeout { .. }
                | ProxyError::BodyRead(_)
        )
    }

    /// The JSON-RPC error object (`{"code", "message", "data"?}`).
    pub fn jsonrpc_error(&self) -> Value {
        let mut error = json!({"code": self.jsonrpc_code(), "message": self.to_string()});
        if let ProxyError::Refused { data, .. } = self {
            error["data"] = data.clone();
        }
        error
    }

    /// The HTTP response: status, JSON-RPC error body (`id` when known), and
    /// `WWW-Authenticate` on 401.
    pub(crate) fn into_response(self, id: Option<Value>) -> ProxyResponse {
        let body = json!({"jsonrpc": "2.0", "id": id.unwrap_or(Value::Null), "error": self.jsonrpc_error()});
        let mut response = json_response(self.status(), &body);
        if self.status() == StatusCode::UNAUTHORIZED {
            // RFC 6750: a token that was presented and refused is `invalid_token`.
            let challenge = if matches!(self, ProxyError::InvalidToken(_)) {
                "Bearer realm=\"airlock\", error=\"invalid_token\""
            } else {
                "Bearer realm=\"airlock\""
            };
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_maps_to_one_status_and_code() {
        let cases = [
            (ProxyError::Unauthorized("no key"), 401, codes::UNAUTHORIZED),
            (
                ProxyError::OriginForbidden("http://evil".into()),
                403,
                codes::ORIGIN_FORBIDDEN,
            ),
            (ProxyError::SessionNotFound, 404, codes::SESSION_NOT_FOUND),
            (ProxyError::BodyTooLarge(10), 413, codes::PAYLOAD_TOO_LARGE),
            (
                ProxyError::BatchNotAllowed("2025-06-18".into()),
                400,
                codes::INVALID_REQUEST,
            ),
            (
                ProxyError::UpstreamUnavailable {
                    upstream: "demo".into(),
                    detail: "refused".into(),
                },
                502,
                codes::UPSTREAM_UNAVAILABLE,
            ),
        ];
        for (err, status, code) in cases {
            assert_eq!(err.status().as_u16(), status, "{err}");
            assert_eq!(err.jsonrpc_code(), code, "{err}");
        }
    }

    #[test]
    fn only_upstream_failures_are_retryable() {
        assert!(ProxyError::UpstreamTimeout {
            upstream: "d".into(),
            after: Duration::from_secs(1)
        }
        .is_retryable());
        assert!(!ProxyError::SessionNotFound.is_retryable());
        assert!(!ProxyError::Unauthorized("x").is_retryable());
    }

    #[test]
    fn a_401_carries_www_authenticate() {
        let response = ProxyError::Unauthorized("no key").into_response(None);
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"airlock\""
        );
    }
}
