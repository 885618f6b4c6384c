//! Turns what `data.airlock.decision` evaluated to into a [`Decision`], or a deny that
//! says what is wrong with it. The policy's output is untrusted: only a well-formed
//! decision can allow.

use crate::{ApprovalSpec, Decision, Verdict};
use serde_json::{Map, Value};

/// Reason id when the decision rule is undefined for the input.
pub const UNDEFINED: &str = "policy.undefined";
/// Reason id when the decision is not a well-formed decision object.
pub const MALFORMED: &str = "policy.malformed_decision";

/// Checks one decision document (already converted to JSON).
pub fn check(value: &Value) -> Decision {
    match parse(value) {
        Ok(decision) => decision,
        Err(problem) => Decision::deny(
            MALFORMED,
            format!(
                "the policy returned a malformed decision ({problem}); \
                 fix `data.airlock.decision` so it is an object with `verdict` \
                 (allow | deny | require_approval) and optional `reasons`, `message`, \
                 `approval`, `mask`"
            ),
        ),
    }
}

/// The deny for an undefined decision.
pub fn undefined() -> Decision {
    Decision::deny(
        UNDEFINED,
        "the policy gave no decision for this message (data.airlock.decision is undefined: \
         no definition of it held, or an expression it needs failed, e.g. a built-in given \
         the wrong type); run `airlock policy eval --explain` with this input to see which \
         rules held, and add `default decision := {...}` to package airlock if none should",
    )
}

fn parse(value: &Value) -> Result<Decision, String> {
    let Value::Object(doc) = value else {
        return Err(format!("expected an object, got {}", kind(value)));
    };
    if let Some(key) = doc.keys().find(|k| {
        !matches!(
            k.as_str(),
            "verdict" | "reasons" | "message" | "approval" | "mask"
        )
    }) {
        return Err(format!("unknown field `{key}`"));
    }
    let verdict = match doc.get("verdict") {
        Some(Value::String(s)) => match s.as_str() {
            "allow" => Verdict::Allow,
            "deny" => Verdict::Deny,
            "require_approval" => Verdict::RequireApproval,
            other => return Err(format!("unknown verdict `{other}`")),
        },
        Some(other) => return Err(format!("`verdict` must be a string, got {}", kind(other))),
        None => return Err("missing `verdict`".to_owned()),
    };
    let reasons = strings(doc, "reasons")?;
    let message = match doc.get("message") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(format!("`message` must be a string, got {}", kind(other))),
    };
    let approval = match doc.get("approval") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            serde_json::from_value::<ApprovalSpec>(v.clone())
                .map_err(|err| format!("`approval` is invalid: {err}"))?,
        ),
    };
    let mask = strings(doc, "mask")?;
    Ok(finish(verdict, reasons, message, approval, mask))
}

/// Fills what a deny or a hold needs and the policy left out.
fn finish(
    verdict: Verdict,
    reasons: Vec<String>,
    message: Option<String>,
    approval: Option<ApprovalSpec>,
    mask: Vec<String>,
) -> Decision {
    let message = match (verdict, message) {
        (Verdict::Deny, None) => Some(format!(
            "denied by policy (reasons: {})",
            if reasons.is_empty() {
                "none given".to_owned()
            } else {
                reasons.join(", ")
            }
        )),
        (_, m) => m,
    };
    let approval = match verdict {
        Verdict::RequireApproval => Some(approval.unwrap_or_default()),
        _ => approval,
    };
    Decision {
        verdict,
        reasons,
        message,
        approval,
        mask,
    }
}

fn strings(doc: &Map<String, Value>, key: &str) -> Result<Vec<String>, String> {
    match doc.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(format!("`{key}` must hold strings, found {}", kind(other))),
            })
            .collect(),
        Some(other) => Err(format!(
            "`{key}` must be an array of strings, got {}",
            kind(other)
        )),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn reason(d: &Decision) -> &str {
        d.reasons.first().map(String::as_str).unwrap_or("")
    }

    #[test]
    fn well_formed_decisions_pass_through() {
        let d = check(
            &json!({"verdict": "require_approval", "reasons": ["sql.write_on_prod"],
            "approval": {"reviewers": ["dba"], "min_approvals": 2, "timeout_s": 60}}),
        );
        assert_eq!(d.verdict, Verdict::RequireApproval);
        assert_eq!(d.approval.as_ref().map(|a| a.min_approvals), Some(2));
        let d = check(&json!({"verdict": "allow", "mask": ["email"]}));
        assert_eq!(
            d,
            Decision {
                mask: vec!["email".into()],
                ..Decision::allow()
            }
        );
    }

    #[test]
    fn a_deny_without_message_gets_one() {
        let d = check(&json!({"verdict": "deny", "reasons": ["x.y"]}));
        assert_eq!(
            d.message.as_deref(),
            Some("denied by policy (reasons: x.y)")
        );
    }

    #[test]
    fn malformed_decisions_deny_and_say_why() {
        for (doc, needle) in [
            (json!("allow"), "expected an object"),
            (json!({}), "missing `verdict`"),
            (json!({"verdict": "maybe"}), "unknown verdict `maybe`"),
            (json!({"verdict": true}), "`verdict` must be a string"),
            (
                json!({"verdict": "allow", "reasons": "x"}),
                "`reasons` must be an array",
            ),
            (
                json!({"verdict": "allow", "reasons": [1]}),
                "`reasons` must hold strings",
            ),
            (
                json!({"verdict": "allow", "message": 3}),
                "`message` must be a string",
            ),
            (
                json!({"verdict": "allow", "mask": {}}),
                "`mask` must be an array",
            ),
            (
                json!({"verdict": "allow", "reason": []}),
                "unknown field `reason`",
            ),
            (
                json!({"verdict": "require_approval", "approval": {"min_approvals": "x"}}),
                "`approval` is invalid",
            ),
        ] {
            let d = check(&doc);
            assert_eq!(d.verdict, Verdict::Deny, "{doc}");
            assert_eq!(reason(&d), MALFORMED, "{doc}");
            let message = d.message.unwrap_or_default();
            assert!(message.contains(needle), "{doc}: {message}");
        }
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            prop_oneof![
                Just("allow".to_owned()),
                Just("deny".to_owned()),
                Just("require_approval".to_owned()),
                "[a-z_]{0,8}"
            ]
            .prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("verdict".to_owned()),
                        Just("reasons".to_owned()),
                        Just("message".to_owned()),
                        Just("approval".to_owned()),
                        Just("mask".to_owned()),
                        "[a-z]{1,6}"
                    ],
                    inner,
                    0..5
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        // Whatever a policy returns, only a document whose verdict is literally
        // "allow" can allow, and nothing panics.
        #[test]
        fn only_a_literal_allow_allows(doc in json_value()) {
            let d = check(&doc);
            if d.verdict == Verdict::Allow {
                prop_assert_eq!(doc.get("verdict"), Some(&Value::String("allow".into())));
            }
            if d.verdict == Verdict::Deny {
                prop_assert!(d.message.is_some());
            }
        }
    }
}
