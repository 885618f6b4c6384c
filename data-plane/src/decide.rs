//! Stage 4, decide: build the policy input for one message, evaluate it, and turn a
//! refusal into the JSON-RPC error the sender sees. The policy store already turns
//! a missing bundle, an evaluation error or an undefined result into a deny.

use crate::ctx::RequestCtx;
use crate::decode::Message;
use crate::error::codes;
use airlock_policy::{
    Decision, Direction, Evaluation, IdentityInput, LimitsInput, MessageInput, PinStatus,
    PolicyInput, RateInput, ServerInput, SessionInput, TimeInput, ToolInput, Verdict,
};
use serde_json::{json, Map, Value};
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::field::Empty;

/// Decides one message travelling in `direction`, with the request's budgets as
/// `input.limits`.
pub(crate) fn decide(ctx: &RequestCtx, message: &Message, direction: Direction) -> Evaluation {
    decide_with(ctx, message, direction, None).0
}

/// Decides one message; `tool_budget` is its tool's rate budget when it is a
/// `tools/call` of a limited tool (`input.limits.tool`).
///
/// In a `decide` span (debug, child of the request's `mcp` span) with the verdict,
/// the bundle revision and the number of reasons.
pub(crate) fn decide_with(
    ctx: &RequestCtx,
    message: &Message,
    direction: Direction,
    tool_budget: Option<RateInput>,
) -> (Evaluation, PolicyInput) {
    let span = tracing::debug_span!(
        parent: &ctx.span,
        "decide",
        server_to_client = direction == Direction::ServerToClient,
        verdict = Empty,
        revision = Empty,
        reasons = Empty,
    );
    let _entered = span.enter();
    let calls = match direction {
        Direction::ClientToServer => ctx.shared.calls.next(ctx.session_id()),
        Direction::ServerToClient => 0,
    };
    let mut input = message_input(
        ctx.identity_input.clone(),
        ctx.upstream.server_input.clone(),
        SessionInput {
            id: ctx.session_id().to_owned(),
            calls,
        },
        message,
        direction,
        Some(LimitsInput {
            tool: tool_budget,
            ..ctx.budgets.clone()
        }),
    );
    if let (Some(tool), Direction::ClientToServer) = (&mut input.tool, direction) {
        tool.pin = Some(ctx.shared.pins.for_call(
            &ctx.shared.store,
            &ctx.upstream.name,
            &tool.name,
        ));
    }
    let evaluation = ctx.shared.store.decide(&input);
    span.record("verdict", evaluation.decision.verdict.as_str());
    if let Some(revision) = &evaluation.revision {
        span.record("revision", revision.as_str());
    }
    span.record("reasons", evaluation.decision.reasons.len() as u64);
    (evaluation, input)
}

/// The second decision for a call the first one held: the same input with
/// `input.review` (what its reviewers will see). It can only be stricter: a deny, or
/// an approval that replaces the first; anything else keeps the first decision.
pub(crate) fn decide_review(
    ctx: &RequestCtx,
    mut input: PolicyInput,
    first: Evaluation,
    review: Value,
) -> Evaluation {
    input.review = Some(review);
    let second = ctx.shared.store.decide(&input);
    match second.decision.verdict {
        Verdict::Deny | Verdict::RequireApproval => second,
        Verdict::Allow => first,
    }
}

/// The policy input for one decoded message (the Rego contract,
/// policy-engine/schema/input.schema.json).
pub(crate) fn message_input(
    identity: IdentityInput,
    server: ServerInput,
    session: SessionInput,
    message: &Message,
    direction: Direction,
    limits: Option<LimitsInput>,
) -> PolicyInput {
    let params = message.params();
    let tool = match (message.method(), direction) {
        (Some("tools/call"), _) => Some(ToolInput {
            name: params
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            arguments: params.get("arguments").cloned().unwrap_or(Value::Null),
            pin: None,
        }),
        _ => None,
    };
    PolicyInput {
        identity,
        server,
        direction,
        message: MessageInput {
            method: message.method().map(str::to_owned),
            id: message.id().cloned(),
            params: params.clone(),
        },
        tool,
        session,
        time: now(),
        listing: false,
        limits,
        review: None,
    }
}

/// The input of the "may this identity ever call `tool`?" check that filters a
/// `tools/list` result.
pub(crate) fn listing_input(
    identity: IdentityInput,
    server: ServerInput,
    session_id: &str,
    tool: &str,
) -> PolicyInput {
    PolicyInput {
        identity,
        server,
        direction: Direction::ClientToServer,
        message: MessageInput {
            method: Some("tools/call".to_owned()),
            id: None,
            params: json!({"name": tool, "arguments": {}}),
        },
        tool: Some(ToolInput {
            name: tool.to_owned(),
            arguments: Value::Object(Map::new()),
            pin: None,
        }),
        session: SessionInput {
            id: session_id.to_owned(),
            calls: 0,
        },
        time: now(),
        listing: true,
        limits: None,
        review: None,
    }
}

/// Whether the identity may ever call the listed tool `definition` (used to filter
/// `tools/list`), with its pin as `input.tool.pin`. A definition seen drifted for
/// the first time is recorded.
fn may_list(ctx: &RequestCtx, definition: &Value, name: &str) -> bool {
    let (pin, sighting) =
        ctx.shared
            .pins
            .observe(&ctx.shared.store, &ctx.upstream.name, definition);
    let mut input = listing_input(
        ctx.identity_input.clone(),
        ctx.upstream.server_input.clone(),
        ctx.session_id(),
        name,
    );
    if let Some(tool) = &mut input.tool {
        tool.pin = Some(pin.clone());
    }
    let listed = ctx.shared.store.decide(&input).decision.verdict != Verdict::Deny;
    if let (Some(sighting), PinStatus::Drifted) = (&sighting, pin.status) {
        crate::pins::record_drift(ctx, sighting, &pin, !listed);
    }
    listed
}

/// Removes from a `tools/list` result the tools whose listing verdict is `deny`;
/// returns how many were removed.
pub(crate) fn filter_tools(ctx: &RequestCtx, result: &mut Value) -> usize {
    let Some(tools) = result.get_mut("tools").and_then(Value::as_array_mut) else {
        return 0;
    };
    let before = tools.len();
    // A tool entry without a string name cannot be decided, so it is not listed.
    tools.retain(|tool| match tool.get("name").and_then(Value::as_str) {
        Some(name) => may_list(ctx, tool, name),
        None => false,
    });
    before - tools.len()
}

/// The JSON-RPC error object for a refused message; `None` when it is allowed.
/// `can_hold` says whether this node has a control plane to hold calls with (a held
/// call that reaches this function then could not be held: a notification or part
/// of a batch).
pub(crate) fn refusal(evaluation: &Evaluation, can_hold: bool) -> Option<Value> {
    let decision = &evaluation.decision;
    match decision.verdict {
        Verdict::Allow => None,
        Verdict::Deny => Some(json!({
            "code": codes::DENIED,
            "message": deny_message(decision),
            "data": {"reasons": decision.reasons, "revision": evaluation.revision},
        })),
        Verdict::RequireApproval => {
            let reviewers = decision
                .approval
                .as_ref()
                .map(|a| a.reviewers.clone())
                .unwrap_or_default();
            let why = decision
                .message
                .as_deref()
                .unwrap_or("the policy requires a human approval for this call");
            let hint = if can_hold {
                "only a single request can wait for approval, not a notification or a batch element; send it on its own"
            } else {
                "this proxy node has no [control_plane] configured, so it cannot hold calls for approval and the call was not forwarded; configure [control_plane] url and token"
            };
            Some(json!({
                "code": codes::APPROVAL_REQUIRED,
                "message": format!("approval required: {why}; {hint}"),
                "data": {"reasons": decision.reasons, "reviewers": reviewers, "revision": evaluation.revision},
            }))
        }
    }
}

fn deny_message(decision: &Decision) -> String {
    match &decision.message {
        Some(message) if !message.is_empty() => message.clone(),
        _ => format!("denied by policy ({})", decision.reasons.join(", ")),
    }
}

/// A JSON-RPC error response carrying `error` for request `id`.
pub(crate) fn error_response(id: &Value, error: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": error})
}

fn now() -> TimeInput {
    let unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    TimeInput { unix_ms }
}

#[cfg(test)]
#[path = "decide_contract_test.rs"]
mod contract_test;

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_policy::ApprovalSpec;
    use std::time::Duration;

    fn evaluation(decision: Decision) -> Evaluation {
        Evaluation {
            decision,
            revision: Some("rev-1".into()),
            elapsed: Duration::ZERO,
            explanation: None,
        }
    }

    #[test]
    fn an_allow_is_no_refusal() {
        assert!(refusal(&evaluation(Decision::allow()), false).is_none());
    }

    #[test]
    fn a_deny_carries_the_policy_message_reasons_and_revision() {
        let error = refusal(
            &evaluation(Decision::deny("sql.ddl", "DDL is not allowed")),
            false,
        )
        .unwrap();
        assert_eq!(error["code"], codes::DENIED);
        assert_eq!(error["message"], "DDL is not allowed");
        assert_eq!(error["data"]["reasons"][0], "sql.ddl");
        assert_eq!(error["data"]["revision"], "rev-1");
    }

    #[test]
    fn require_approval_without_a_control_plane_says_to_configure_one() {
        let mut decision = Decision::deny("sql.write_on_prod", "writes on prod need a DBA");
        decision.verdict = Verdict::RequireApproval;
        decision.approval = Some(ApprovalSpec {
            reviewers: vec!["dba".into()],
            ..ApprovalSpec::default()
        });
        let error = refusal(&evaluation(decision), false).unwrap();
        assert_eq!(error["code"], codes::APPROVAL_REQUIRED);
        assert!(error["message"]
            .as_str()
            .unwrap()
            .contains("configure [control_plane]"));
        assert_eq!(error["data"]["reviewers"][0], "dba");
    }
}
