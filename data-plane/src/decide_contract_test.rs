//! The inputs the proxy builds match the written contract
//! (policy-engine/schema/input.schema.json): a field added to the input without the
//! schema, or a shape the schema does not allow, fails here.

use super::*;
use crate::decode::{decode, Limits, Payload};

fn messages(body: &str) -> Vec<Message> {
    match decode(body.as_bytes(), &Limits::default()).unwrap() {
        Payload::Single(message) => vec![message],
        Payload::Batch(messages) => messages,
    }
}

fn identity(claims: bool) -> IdentityInput {
    let mut input = IdentityInput {
        subject: "ci-bot".into(),
        groups: vec!["automation".into()],
        kind: "agent".into(),
        claims: Map::new(),
    };
    if claims {
        input
            .claims
            .insert("iss".into(), json!("https://id.example"));
        input.claims.insert("tenant".into(), json!({"id": 7}));
    }
    input
}

fn server() -> ServerInput {
    ServerInput {
        name: "demo".into(),
        labels: [("env".to_owned(), "prod".to_owned())].into(),
    }
}

#[test]
fn every_input_the_proxy_builds_validates_against_the_schema() {
    let schema: Value = serde_json::from_str(airlock_policy::contract::INPUT_SCHEMA).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let bodies = [
        (
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"execute","arguments":{"sql":"DROP TABLE x"}}}"#,
            Direction::ClientToServer,
        ),
        (
            r#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"x"}}"#,
            Direction::ClientToServer,
        ),
        (
            r#"{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"x","arguments":[1]}}"#,
            Direction::ClientToServer,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}"#,
            Direction::ClientToServer,
        ),
        (
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            Direction::ClientToServer,
        ),
        (
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
            Direction::ClientToServer,
        ),
        (
            r#"{"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage","params":{"messages":[],"maxTokens":5}}"#,
            Direction::ServerToClient,
        ),
        (
            r#"{"jsonrpc":"2.0","id":3,"result":{"content":[]}}"#,
            Direction::ServerToClient,
        ),
        (
            r#"[{"jsonrpc":"2.0","id":4,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":4}}]"#,
            Direction::ClientToServer,
        ),
    ];
    let mut checked = 0;
    for (body, direction) in bodies {
        for message in messages(body) {
            for claims in [false, true] {
                let session = SessionInput {
                    id: "abc.def".into(),
                    calls: 3,
                };
                let limits = claims.then_some(airlock_policy::LimitsInput {
                    concurrent: airlock_policy::ConcurrencyInput {
                        limit: 8,
                        in_use: 2,
                    },
                    rate: Some(airlock_policy::RateInput {
                        per_minute: 60,
                        burst: 10,
                        remaining: 9,
                    }),
                    tool: None,
                });
                let mut input = message_input(
                    identity(claims),
                    server(),
                    session,
                    &message,
                    direction,
                    limits,
                );
                if let (Some(tool), true) = (&mut input.tool, claims) {
                    tool.pin = Some(pin(airlock_policy::PinStatus::Drifted));
                }
                let doc = serde_json::to_value(&input).unwrap();
                let errors: Vec<String> = validator
                    .iter_errors(&doc)
                    .map(|e| format!("{e} at {}", e.instance_path))
                    .collect();
                assert!(errors.is_empty(), "{body}: {errors:?}\n{doc:#}");
                checked += 1;
            }
        }
    }
    for status in [PinStatus::New, PinStatus::Pinned, PinStatus::Drifted] {
        let mut listing = listing_input(identity(false), server(), "", "execute");
        if status != PinStatus::New {
            listing.tool.as_mut().unwrap().pin = Some(pin(status));
        }
        let doc = serde_json::to_value(&listing).unwrap();
        assert!(validator.is_valid(&doc), "{doc:#}");
    }
    let mut bad = listing_input(identity(false), server(), "", "execute");
    bad.tool.as_mut().unwrap().pin = Some(pin(PinStatus::New));
    let mut doc = serde_json::to_value(&bad).unwrap();
    doc["tool"]["pin"]["status"] = json!("unknown");
    assert!(
        !validator.is_valid(&doc),
        "the schema knows the pin statuses"
    );
    assert!(checked >= 18);
}

fn pin(status: PinStatus) -> airlock_policy::PinInput {
    airlock_policy::PinInput {
        status,
        digest: format!("sha256:{}", "a".repeat(64)),
        pinned_digest: if status == PinStatus::New {
            String::new()
        } else {
            format!("sha256:{}", "b".repeat(64))
        },
    }
}
