//! The decision document (`data.airlock.decision`) and its validation.
//!
//! A policy's output is untrusted data: anything that is not a well-formed decision
//! becomes a deny with a reason, never an allow.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What happens to the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Forward it.
    Allow,
    /// Refuse it with a JSON-RPC error.
    Deny,
    /// Hold it until enough reviewers approve.
    RequireApproval,
}

impl Verdict {
    /// The wire name (`allow`, `deny`, `require_approval`).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::RequireApproval => "require_approval",
        }
    }
}

/// How a held call is reviewed (`decision.approval`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalSpec {
    /// Groups whose members may decide.
    #[serde(default)]
    pub reviewers: Vec<String>,
    /// Distinct reviewers needed.
    #[serde(default = "default_min_approvals")]
    pub min_approvals: u32,
    /// Seconds before the request expires.
    #[serde(default = "default_timeout_s")]
    pub timeout_s: u64,
    /// How the agent waits (`sync` or `async`; anything else makes the decision
    /// malformed, so a typo denies instead of quietly holding the call open).
    #[serde(default)]
    pub mode: ApprovalMode,
    /// Which arguments hold SQL, a URL or a path, so the proxy shows the reviewer
    /// their parsed facts and keeps masking out of their code:
    /// `{"sql": {"type": "sql", "dialect": "sqlite"}}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub facts: BTreeMap<String, ArgumentKind>,
}

/// How the agent waits for a held call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalMode {
    /// The call is held open (SSE progress or keep-alives) until a decision.
    #[default]
    Sync,
    /// The agent is answered at once with the approval id and repeats the call.
    Async,
}

/// What an argument holds, for the reviewer's facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ArgumentKind {
    /// SQL text, read in this dialect (as `airlock.sql.parse`).
    Sql {
        /// `sqlite`, `postgres`, `mysql` or `generic`.
        #[serde(default = "generic")]
        dialect: String,
    },
    /// A URL (as `airlock.url.parse`).
    Url,
    /// A file path (as `airlock.path.normalize`).
    Path,
}

fn generic() -> String {
    "generic".to_owned()
}

fn default_min_approvals() -> u32 {
    1
}
fn default_timeout_s() -> u64 {
    600
}

impl Default for ApprovalSpec {
    fn default() -> Self {
        Self {
            reviewers: Vec::new(),
            min_approvals: default_min_approvals(),
            timeout_s: default_timeout_s(),
            mode: ApprovalMode::Sync,
            facts: BTreeMap::new(),
        }
    }
}

/// A validated decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Allow, deny or require approval.
    pub verdict: Verdict,
    /// Stable reason ids, e.g. `sql.ddl_on_prod`.
    #[serde(default)]
    pub reasons: Vec<String>,
    /// Text shown to the agent on deny.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Review requirements when the verdict is `require_approval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalSpec>,
    /// Detector names (`credit_card`, `email`, ...) and JSON pointers to mask.
    #[serde(default)]
    pub mask: Vec<String>,
}

impl Decision {
    /// A deny produced by the proxy itself (policy error, missing bundle, ...).
    pub fn deny(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            verdict: Verdict::Deny,
            reasons: vec![reason.into()],
            message: Some(message.into()),
            approval: None,
            mask: Vec::new(),
        }
    }

    /// An allow with no reasons.
    pub fn allow() -> Self {
        Self {
            verdict: Verdict::Allow,
            reasons: Vec::new(),
            message: None,
            approval: None,
            mask: Vec::new(),
        }
    }
}
