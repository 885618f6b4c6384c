//! What the stages share: `Shared` lives as long as the proxy, `RequestCtx` as long
//! as one HTTP request (and its response stream).

use crate::authenticate::{Authenticator, Identity};
use crate::decode::Limits;
use crate::protocol::Revision;
use crate::session::{CallCounter, SessionSeal};
use crate::upstream::http::HttpClient;
use crate::upstream::Upstream;
use airlock_policy::{IdentityInput, LimitsInput, PolicyStore};
use http::HeaderValue;
use std::collections::HashMap;
use std::sync::Arc;
use tracing::Span;

/// Per-process state, built once at start-up.
pub(crate) struct Shared {
    pub(crate) upstreams: HashMap<String, Arc<Upstream>>,
    pub(crate) auth: Authenticator,
    pub(crate) seal: SessionSeal,
    pub(crate) calls: CallCounter,
    pub(crate) store: Arc<PolicyStore>,
    pub(crate) client: HttpClient,
    pub(crate) limits: Limits,
    /// Upstream response bodies buffered for filtering are capped at this size.
    pub(crate) max_response_bytes: usize,
    pub(crate) allowed_origins: Vec<String>,
    /// Permits for MCP requests in progress (load shedding).
    pub(crate) in_flight: Arc<tokio::sync::Semaphore>,
    /// Per-identity and per-source caps, rate buckets, body timeouts (`[limits]`).
    pub(crate) limiter: Arc<crate::limits::Limiter>,
    /// The record stage: audit events, their backlog and sink.
    pub(crate) recorder: crate::record::Recorder,
    /// Prometheus counters (`/metrics`).
    pub(crate) metrics: crate::metrics::Metrics,
    /// The control-plane link (bundles, status; approvals and audit reuse it),
    /// `None` in directory mode.
    pub(crate) control: Option<crate::control::ControlPlaneLink>,
    /// Approvals on the control plane; `None` without `[control_plane]` (held
    /// calls are then refused).
    pub(crate) approvals: Option<Arc<crate::control::approvals::ApprovalClient>>,
    /// Tool pins and the definitions this node saw (`input.tool.pin`).
    pub(crate) pins: Arc<crate::pins::Pins>,
    /// Spans are exported (`[telemetry]`): take the client's `traceparent` as the
    /// parent and send ours upstream. Off, trace headers pass through untouched.
    pub(crate) trace_context: bool,
}

/// One request's context, carried through the stages.
pub(crate) struct RequestCtx {
    pub(crate) shared: Arc<Shared>,
    pub(crate) upstream: Arc<Upstream>,
    pub(crate) identity: Arc<Identity>,
    /// `input.identity`, built once per request.
    pub(crate) identity_input: IdentityInput,
    pub(crate) revision: Revision,
    /// The `MCP-Protocol-Version` header as sent, forwarded as is.
    pub(crate) protocol_header: Option<HeaderValue>,
    /// The session id the client presented (sealed form).
    pub(crate) client_session: Option<String>,
    /// The upstream's session id behind it.
    pub(crate) upstream_session: Option<String>,
    /// The identity's budgets when the request was admitted (`input.limits`).
    pub(crate) budgets: LimitsInput,
    pub(crate) span: Span,
}

impl RequestCtx {
    /// The session id given to the policy (`input.session.id`): the client's form,
    /// so policies and audit see what the agent sees.
    pub(crate) fn session_id(&self) -> &str {
        self.client_session.as_deref().unwrap_or("")
    }
}
