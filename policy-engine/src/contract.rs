//! The policy input contract written down: the JSON Schema of `input`
//! (`schema/input.schema.json`, printed by `airlock policy input --schema`) and an
//! example document per kind of message (`--example tools/call`). A data-plane test
//! validates the inputs the proxy builds against this schema.

use crate::{
    ConcurrencyInput, Direction, IdentityInput, LimitsInput, MessageInput, PolicyInput, RateInput,
    ServerInput, SessionInput, TimeInput, ToolInput,
};
use serde_json::{json, Map, Value};

/// The JSON Schema (draft 2020-12) of the policy input.
pub const INPUT_SCHEMA: &str = include_str!("../schema/input.schema.json");

/// The kinds [`example`] knows, with what each shows.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "tools/call",
        "an agent calls a tool (the input most rules look at)",
    ),
    (
        "tools/list",
        "the check the proxy makes per listed tool to filter tools/list (listing: true)",
    ),
    ("initialize", "a client opens a session (no tool)"),
    (
        "notifications/initialized",
        "a notification (no id), decided like a request",
    ),
    (
        "sampling/createMessage",
        "a request the server sends the agent (direction server_to_client)",
    ),
];

/// An example input document for one kind of message, or `None` for an unknown kind.
pub fn example(kind: &str) -> Option<Value> {
    let identity = IdentityInput {
        subject: "ci-bot".into(),
        groups: vec!["automation".into()],
        kind: "agent".into(),
        claims: Map::new(),
    };
    let server = ServerInput {
        name: "demo".into(),
        labels: [
            ("env".to_owned(), "prod".to_owned()),
            ("sql_dialect".to_owned(), "sqlite".to_owned()),
        ]
        .into(),
    };
    let base = |method: &str, id: Option<Value>, params: Value| PolicyInput {
        identity: identity.clone(),
        server: server.clone(),
        direction: Direction::ClientToServer,
        message: MessageInput {
            method: Some(method.to_owned()),
            id,
            params,
        },
        tool: None,
        session: SessionInput {
            id: "3f1c9a0e5b7d4c21.a1b2c3d4".into(),
            calls: 12,
        },
        time: TimeInput {
            unix_ms: 1_764_000_000_000,
        },
        listing: false,
        limits: Some(LimitsInput {
            concurrent: ConcurrencyInput {
                limit: 64,
                in_use: 1,
            },
            rate: Some(RateInput {
                per_minute: 600,
                burst: 60,
                remaining: 59,
            }),
            tool: None,
        }),
        review: None,
    };
    let input = match kind {
        "tools/call" => {
            let arguments = json!({"sql": "UPDATE orders SET status = 'shipped' WHERE id = 7"});
            let mut input = base(
                "tools/call",
                Some(json!(7)),
                json!({"name": "execute", "arguments": arguments.clone()}),
            );
            input.tool = Some(ToolInput {
                name: "execute".into(),
                arguments,
                pin: Some(example_pin()),
            });
            if let Some(limits) = &mut input.limits {
                limits.tool = Some(RateInput {
                    per_minute: 30,
                    burst: 5,
                    remaining: 4,
                });
            }
            input
        }
        "tools/list" => {
            let mut input = base(
                "tools/call",
                None,
                json!({"name": "execute", "arguments": {}}),
            );
            input.tool = Some(ToolInput {
                name: "execute".into(),
                arguments: json!({}),
                pin: Some(example_pin()),
            });
            input.session.calls = 0;
            input.listing = true;
            input.limits = None;
            input
        }
        "initialize" => {
            let mut input = base(
                "initialize",
                Some(json!(1)),
                json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "agent", "version": "1.0"}}),
            );
            input.session.id = String::new();
            input.session.calls = 0;
            input
        }
        "notifications/initialized" => base("notifications/initialized", None, Value::Null),
        "sampling/createMessage" => {
            let mut input = base(
                "sampling/createMessage",
                Some(json!("srv-1")),
                json!({"messages": [{"role": "user", "content": {"type": "text", "text": "Summarise the table"}}], "maxTokens": 200}),
            );
            input.direction = Direction::ServerToClient;
            input.session.calls = 0;
            input
        }
        _ => return None,
    };
    serde_json::to_value(input).ok()
}

/// The pin of the examples' `execute` tool: reviewed and unchanged.
fn example_pin() -> crate::PinInput {
    let digest =
        "sha256:4c1f0b8ad35e0e1ab3f6d2a3a2a57a0ad6c1e9b1b8f5d0e2b7c6a9d8e7f6a5b4".to_owned();
    crate::PinInput {
        status: crate::PinStatus::Pinned,
        pinned_digest: digest.clone(),
        digest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_is_json_and_every_example_exists() {
        let schema: Value = serde_json::from_str(INPUT_SCHEMA).unwrap();
        assert_eq!(schema["type"], "object");
        for (kind, _) in EXAMPLES {
            let doc = example(kind).unwrap();
            assert!(doc["identity"]["subject"].is_string(), "{kind}");
        }
        assert!(example("nope").is_none());
    }

    #[test]
    fn every_example_validates_against_the_schema() {
        let schema: Value = serde_json::from_str(INPUT_SCHEMA).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        for (kind, _) in EXAMPLES {
            let doc = example(kind).unwrap();
            let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{kind}: {errors:?}");
        }
        // And the schema refuses what the proxy never builds.
        let mut bad = example("tools/call").unwrap();
        bad["direction"] = json!("sideways");
        bad["surprise"] = json!(1);
        assert!(!validator.is_valid(&bad));
    }
}
