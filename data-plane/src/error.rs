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
    /// The request body did not arrive in time (`limits.body_idle_timeout_s`,
    /// `limits.body_timeout_s`); HTTP 408.
    pub const REQUEST_TIMEOUT: i64 = -32015;
    /// A limit of the caller's identity was reached: requests in progress, the
    /// request rate or a tool's rate (`data.limit`, `data.retry_after_s`); HTTP 429
    /// with `Retry-After`.
    pub const TOO_MANY_REQUESTS: i64 = -32016;
}

/// Which limit refused a request or closed a connection (the `limit` label of
/// `airlock_limit_refusals_total`, and `data.limit` of a 429).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `limits.header_timeout_s`: the request head did not arrive in time (idle
    /// keep-alive connections closed by the same timer count here too).
    HeaderTimeout,
    /// `limits.body_idle_timeout_s` / `limits.body_timeout_s`.
    BodyTimeout,
    /// `limits.max_unauthenticated_per_source`: the connection was closed at once.
    SourceConnections,
    /// `limits.max_concurrent_per_identity`.
    IdentityConcurrency,
    /// `[limits.rate]`.
    IdentityRate,
    /// `[limits.tools.NAME]`.
    ToolRate,
    /// `server.max_concurrent_requests` (HTTP 503).
    ProxyConcurrency,
}

impl Limit {
    /// Every limit, in the order `/metrics` lists them.
    pub const ALL: [Limit; 7] = [
        Limit::HeaderTimeout,
        Limit::BodyTimeout,
        Limit::SourceConnections,
        Limit::IdentityConcurrency,
        Limit::IdentityRate,
        Limit::ToolRate,
        Limit::ProxyConcurrency,
    ];

    /// The name on the wire and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::HeaderTimeout => "header_timeout",
            Limit::BodyTimeout => "body_timeout",
            Limit::SourceConnections => "source_connections",
            Limit::IdentityConcurrency => "identity_concurrency",
            Limit::IdentityRate => "identity_rate",
            Limit::ToolRate => "tool_rate",
            Limit::ProxyConcurrency => "proxy_concurrency",
        }
    }
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
    /// The body stalled or took too long (`[limits]` body timeouts).
    #[error("the request body did not arrive in time ({0}); send the whole body at once, without pauses")]
    BodyTimeout(String),
    /// A limit of the caller's identity (`[limits]`): answered 429 with `Retry-After`.
    #[error("{message}")]
    Limited {
        /// Which limit.
        limit: Limit,
        /// What was exceeded and what to do, e.g. "... retry after 3 s".
        message: String,
        /// When a retry may succeed (at least one second on the wire).
        retry_after: Duration,
    },
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
    /// A stdio upstream runs `max_processes` children already.
    #[error("upstream `{upstream}` already runs its max_processes = {max_processes} processes; retry later, close idle sessions (DELETE), or raise max_processes")]
    UpstreamBusy {
        /// The upstream name.
        upstream: String,
        /// Its limit.
        max_processes: usize,
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
            ProxyError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ProxyError::Limited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::BodyRead(_)
            | ProxyError::Decode { .. }
            | ProxyError::BatchNotAllowed(_)
            | ProxyError::Header(_)
            | ProxyError::UnsupportedProtocol(_) => StatusCode::BAD_REQUEST,
            ProxyError::UpstreamUnavailable { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Overloaded
            | ProxyError::AuditUnavailable(_)
            | ProxyError::UpstreamBusy { .. } => StatusCode::SERVICE_UNAVAILABLE,
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
            ProxyError::BodyTimeout(_) => codes::REQUEST_TIMEOUT,
            ProxyError::Limited { .. } => codes::TOO_MANY_REQUESTS,
            ProxyError::Decode { code, .. } | ProxyError::Refused { code, .. } => *code,
            ProxyError::BatchNotAllowed(_)
            | ProxyError::Header(_)
            | ProxyError::UnsupportedProtocol(_) => codes::INVALID_REQUEST,
            ProxyError::UpstreamUnavailable { .. }
            | ProxyError::UpstreamTimeout { .. }
            | ProxyError::UpstreamBusy { .. } => codes::UPSTREAM_UNAVAILABLE,
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
                | ProxyError::UpstreamBusy { .. }
                | ProxyError::Overloaded
                | ProxyError::AuditUnavailable(_)
                | ProxyError::UpstreamTimeout { .. }
                | ProxyError::BodyRead(_)
                | ProxyError::BodyTimeout(_)
                | ProxyError::Limited { .. }
        )
    }

    /// The JSON-RPC error object (`{"code", "message", "data"?}`).
    pub fn jsonrpc_error(&self) -> Value {
        let mut error = json!({"code": self.jsonrpc_code(), "message": self.to_string()});
        match self {
            ProxyError::Refused { data, .. } => error["data"] = data.clone(),
            ProxyError::Limited { limit, .. } => {
                error["data"] =
                    json!({"limit": limit.as_str(), "retry_after_s": self.retry_after_s()});
            }
            _ => {}
        }
        error
    }

    /// The limit behind this error (`airlock_limit_refusals_total`), if any.
    pub fn limit(&self) -> Option<Limit> {
        match self {
            ProxyError::Limited { limit, .. } => Some(*limit),
            ProxyError::BodyTimeout(_) => Some(Limit::BodyTimeout),
            ProxyError::Overloaded => Some(Limit::ProxyConcurrency),
            _ => None,
        }
    }

    /// Whole seconds until a refused request may be sent again (`Retry-After`);
    /// `None` for errors that do not say.
    pub fn retry_after_s(&self) -> Option<u64> {
        match self {
            // Rounded up: a client that waits the advertised time must find a token.
            ProxyError::Limited { retry_after, .. } => {
                Some(retry_after.as_secs_f64().ceil().max(1.0) as u64)
            }
            _ => None,
        }
    }

    /// The HTTP response: status, JSON-RPC error body (`id` when known),
    /// `WWW-Authenticate` on 401 and `Retry-After` on 429.
    pub(crate) fn into_response(self, id: Option<Value>) -> ProxyResponse {
        let body = json!({"jsonrpc": "2.0", "id": id.unwrap_or(Value::Null), "error": self.jsonrpc_error()});
        let mut response = json_response(self.status(), &body);
        if let Some(seconds) = self.retry_after_s() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
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
                ProxyError::BodyTimeout("idle for 5 s".into()),
                408,
                codes::REQUEST_TIMEOUT,
            ),
            (
                limited(Limit::IdentityRate, 2500),
                429,
                codes::TOO_MANY_REQUESTS,
            ),
            (ProxyError::Overloaded, 503, codes::OVERLOADED),
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

    fn limited(limit: Limit, retry_after_ms: u64) -> ProxyError {
        ProxyError::Limited {
            limit,
            message: "over".into(),
            retry_after: Duration::from_millis(retry_after_ms),
        }
    }

    #[test]
    fn a_429_says_which_limit_and_when_to_retry_rounded_up() {
        let cases = [
            (Limit::ToolRate, 2500, 3),
            (Limit::IdentityConcurrency, 0, 1),
        ];
        for (limit, after_ms, seconds) in cases {
            let error = limited(limit, after_ms);
            assert!(error.is_retryable());
            let data = &error.jsonrpc_error()["data"];
            assert_eq!(data["limit"], limit.as_str());
            assert_eq!(data["retry_after_s"], seconds);
            let response = error.into_response(Some(json!(7)));
            assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(response.headers()[header::RETRY_AFTER], seconds.to_string());
        }
        let other = ProxyError::BodyTimeout("idle".into()).into_response(None);
        assert!(other.headers().get(header::RETRY_AFTER).is_none());
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
