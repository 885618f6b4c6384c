//! The policy input document: what `data.airlock.decision` sees for one message.
//!
//! Built once per message on the data plane; serialized into the regorus engine.
//! The field names are the Rego contract (see docs/ARCHITECTURE.md): renaming one
//! breaks every user's policy.

use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Which way a message travels through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the MCP client (agent) to the MCP server.
    ClientToServer,
    /// From the MCP server to the client (server-initiated requests, responses).
    ServerToClient,
}

/// Who is calling, as established by the authenticate stage.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IdentityInput {
    /// Stable subject (API key owner, JWT `sub`).
    pub subject: String,
    /// Groups the subject belongs to.
    pub groups: Vec<String>,
    /// `agent`, `user` or `service`.
    pub kind: String,
    /// Extra claims (JWT claims; empty for API keys).
    pub claims: Map<String, Value>,
}

/// The upstream MCP server the message is for.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerInput {
    /// The configured upstream name (the `{server}` in `/mcp/{server}`).
    pub name: String,
    /// Operator-assigned labels, e.g. `env=prod`.
    pub labels: BTreeMap<String, String>,
}

/// The JSON-RPC message, as decoded (method, id, params).
#[derive(Debug, Clone, Default, Serialize)]
pub struct MessageInput {
    /// The JSON-RPC method; absent for responses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The JSON-RPC id; absent for notifications.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    /// The params object (or `null`).
    pub params: Value,
}

/// The tool a `tools/call` names, lifted out of `params` for convenience.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ToolInput {
    /// `params.name`.
    pub name: String,
    /// `params.arguments` (an object, or `null` when absent).
    pub arguments: Value,
    /// How the tool's definition compares with its pin (`input.tool.pin`); absent
    /// where the proxy does not track pins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin: Option<PinInput>,
}

/// A tool definition against its reviewed pin (`input.tool.pin`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PinInput {
    /// `pinned`, `new` or `drifted`.
    pub status: PinStatus,
    /// `sha256:...` of the definition this node saw listed last; empty when it has
    /// not seen the tool listed yet.
    pub digest: String,
    /// The reviewed digest (control plane, else bundle); empty when none.
    pub pinned_digest: String,
}

/// Where a tool definition stands against its pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PinStatus {
    /// The definition is a reviewed one (or the tool is pinned and this node has
    /// not seen it listed).
    Pinned,
    /// Never reviewed.
    New,
    /// Reviewed, and changed since.
    Drifted,
}

impl PinStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            PinStatus::Pinned => "pinned",
            PinStatus::New => "new",
            PinStatus::Drifted => "drifted",
        }
    }
}

/// The MCP session the message belongs to.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SessionInput {
    /// The session id the client presented (empty when none).
    pub id: String,
    /// Messages this node has seen on the session before this one (best effort).
    pub calls: u64,
}

/// The evaluation time.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TimeInput {
    /// Milliseconds since the Unix epoch.
    pub unix_ms: u64,
}

/// The caller's budgets under the proxy's `[limits]`, as they stand after this
/// request was counted (`input.limits`). A request over a limit never reaches the
/// policy (it is answered 429), so these let a policy act before that, e.g. hold
/// an expensive tool for approval when its budget runs low.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LimitsInput {
    /// The identity's requests in progress on this node, this one included.
    pub concurrent: ConcurrencyInput,
    /// The identity's request rate (`[limits.rate]`); absent when unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<RateInput>,
    /// This `tools/call`'s tool rate for the identity (`[limits.tools.NAME]`);
    /// absent for other messages and for tools without a limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<RateInput>,
}

/// Requests in progress against a cap.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConcurrencyInput {
    /// The cap (`limits.max_concurrent_per_identity`).
    pub limit: u64,
    /// In progress now, this request included.
    pub in_use: u64,
}

/// A token bucket's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RateInput {
    /// Sustained rate.
    pub per_minute: u64,
    /// Bucket size.
    pub burst: u64,
    /// Requests that could still be made right now, after this one.
    pub remaining: u64,
}

/// One policy input document (package `airlock`, `input`).
#[derive(Debug, Clone, Serialize)]
pub struct PolicyInput {
    /// The caller.
    pub identity: IdentityInput,
    /// The upstream server.
    pub server: ServerInput,
    /// Which way the message travels.
    pub direction: Direction,
    /// The JSON-RPC message.
    pub message: MessageInput,
    /// Present for `tools/call` (and for `tools/list` filtering, see `listing`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<ToolInput>,
    /// The session.
    pub session: SessionInput,
    /// When.
    pub time: TimeInput,
    /// True when the proxy asks "may this identity ever call `tool`?" to filter a
    /// `tools/list` result; `tool.arguments` is then `{}`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub listing: bool,
    /// The caller's budgets (`input.limits`); absent where no request is being
    /// counted (listing checks, callers outside the proxy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsInput>,
    /// What the reviewers of a held call will see (`input.review`): present only in
    /// the second decision the proxy makes for a call the first one held, so a policy
    /// can ask for more when masking touched code (see data-plane/src/review.rs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review: Option<Value>,
}
