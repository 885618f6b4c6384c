//! Properties of the decoder: it never panics, it agrees with serde_json on every body it
//! accepts (it is strictly narrower, never different), and valid messages round-trip.

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Value};

use super::*;

const MAX_SAFE: i64 = (1 << 53) - 1;

/// Any strict JSON value: safe integers, short dyadic floats, any Unicode string,
/// lowercase keys (no duplicates, no case collisions).
///
/// Floats stay under 15 significant digits: without serde_json's `float_roundtrip`
/// feature longer ones may be read one ulp off (see `decode_reads_long_floats_exactly`).
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-MAX_SAFE..=MAX_SAFE).prop_map(Value::from),
        (-(1 << 20)..(1 << 20), 0u32..9)
            .prop_map(|(m, e)| Value::from(f64::from(m) / f64::from(1u32 << e))),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z0-9_/~é]{0,6}", inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn object() -> impl Strategy<Value = Value> {
    prop::collection::btree_map("[a-z_]{1,6}", json_value(), 0..4)
        .prop_map(|map| Value::Object(map.into_iter().collect()))
}

fn id() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-MAX_SAFE..=MAX_SAFE).prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ]
}

/// Methods without a target, known or custom (custom ones cannot imitate a known one).
fn plain_method() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["ping", "tools/list", "initialize", "logging/setLevel"])
            .prop_map(str::to_owned),
        "x-[a-z]{1,8}/[a-zA-Z_]{1,8}",
    ]
}

/// A valid message and the kind it must decode to.
fn message() -> impl Strategy<Value = (Value, MessageKind)> {
    prop_oneof![
        (id(), plain_method(), object()).prop_map(|(id, method, params)| (
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
            MessageKind::Request { id, method },
        )),
        (id(), any::<String>(), object()).prop_map(|(id, name, arguments)| (
            json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                   "params": {"name": name, "arguments": arguments}}),
            MessageKind::Request {
                id,
                method: "tools/call".into()
            },
        )),
        plain_method().prop_map(|method| (
            json!({"jsonrpc": "2.0", "method": method}),
            MessageKind::Notification { method },
        )),
        (id(), json_value()).prop_map(|(id, result)| (
            json!({"jsonrpc": "2.0", "id": id, "result": result}),
            MessageKind::Response { id },
        )),
        (id(), any::<i32>(), any::<String>()).prop_map(|(id, code, message)| (
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}),
            MessageKind::ErrorResponse { id },
        )),
    ]
}

/// Byte edits: replace, insert or remove one byte at a place.
fn mutate(mut bytes: Vec<u8>, edits: &[(Index, u8, u8)]) -> Vec<u8> {
    for (at, byte, op) in edits {
        let i = at.index(bytes.len() + 1);
        match op % 3 {
            0 if i < bytes.len() => bytes[i] = *byte,
            1 => bytes.insert(i, *byte),
            2 if i < bytes.len() => {
                bytes.remove(i);
            }
            _ => {}
        }
    }
    bytes
}

/// Whatever the strict parser accepts, serde_json reads as the same value.
fn check_narrower_than_serde_json(body: &[u8]) -> Result<(), TestCaseError> {
    let limits = Limits::default();
    let _ = decode(body, &limits);
    if let Ok(strict) = parse_strict(body, &limits) {
        let lax: Value = serde_json::from_slice(body).map_err(|err| {
            TestCaseError::fail(format!("strict accepted, serde_json refused: {err}"))
        })?;
        prop_assert_eq!(strict, lax);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        check_narrower_than_serde_json(&body)?;
    }

    #[test]
    fn decode_never_panics_on_json_like_text(body in r#"[\[\]{}":,0-9a-zA-Z\\. eE+-]{0,256}"#) {
        check_narrower_than_serde_json(body.as_bytes())?;
    }

    #[test]
    fn decode_never_panics_on_mutated_messages(
        (value, _) in message(),
        edits in prop::collection::vec((any::<Index>(), any::<u8>(), any::<u8>()), 1..6),
    ) {
        let body = serde_json::to_vec(&value).map_err(|e| TestCaseError::fail(e.to_string()))?;
        check_narrower_than_serde_json(&mutate(body, &edits))?;
    }

    #[test]
    fn decode_round_trips_valid_messages((value, kind) in message()) {
        let body = serde_json::to_vec(&value).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let payload = decode(&body, &Limits::default());
        prop_assert!(payload.is_ok(), "refused {}: {:?}", String::from_utf8_lossy(&body), payload);
        if let Ok(Payload::Single(message)) = payload {
            prop_assert_eq!(message.value, value);
            prop_assert_eq!(message.kind, kind);
        } else {
            prop_assert!(false, "not a single message");
        }
    }

    #[test]
    fn decode_round_trips_batches(messages in prop::collection::vec(message(), 1..5)) {
        // Distinct ids, as a batch requires.
        let values: Vec<Value> = messages.iter().enumerate().map(|(i, (value, _))| {
            let mut value = value.clone();
            if value.get("id").is_some() { value["id"] = json!(format!("{i}")); }
            value
        }).collect();
        let body = serde_json::to_vec(&values).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let payload = decode(&body, &Limits::default());
        prop_assert!(payload.is_ok(), "refused: {:?}", payload);
        if let Ok(payload) = payload {
            prop_assert!(payload.is_batch());
            let decoded: Vec<Value> = payload.into_messages().into_iter().map(|m| m.value).collect();
            prop_assert_eq!(decoded, values);
        }
    }

    #[test]
    fn decode_parse_strict_round_trips_any_strict_value(value in json_value()) {
        let body = serde_json::to_vec_pretty(&value).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(parse_strict(&body, &Limits::default()).ok(), Some(value));
    }
}

/// A float every correct parser reads as -950883.6650390625 (it is exact in binary).
/// serde_json's default fast path reads it one ulp off, so the policy would decide on
/// another number than a Python or JavaScript upstream reads: a parser differential.
#[test]
fn decode_reads_long_floats_exactly() {
    let body = br#"{"jsonrpc":"2.0","id":1,"result":{"x":-950883.6650390625}}"#;
    let value = parse_strict(body, &Limits::default()).map(|v| v["result"]["x"].as_f64());
    assert_eq!(value, Ok(Some(-950_883.665_039_062_5)));
}
