//! Attacks on the decoder, one per row: the body, and what it must decode to.
//!
//! Each row is a way two JSON parsers could read one body differently, or a way to
//! exhaust the proxy. A row passes when the outcome is the expected kind and its message
//! (or the decoded payload's debug form) mentions the expected text.

use super::*;

/// The outcome a row expects: a message kind, or an error variant.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    Request,
    Notification,
    Response,
    ErrorResponse,
    Batch(usize),
    TooLarge,
    InvalidUtf8,
    ByteOrderMark,
    Syntax,
    DuplicateKey,
    KeyCaseCollision,
    TooDeep,
    NumberOutOfRange,
    EmptyBatch,
    NotJsonRpc,
    MethodCase,
}
use Want::*;

fn observed(result: &Result<Payload, DecodeError>) -> Want {
    match result {
        Ok(Payload::Batch(messages)) => Batch(messages.len()),
        Ok(Payload::Single(message)) => match message.kind {
            MessageKind::Request { .. } => Request,
            MessageKind::Notification { .. } => Notification,
            MessageKind::Response { .. } => Response,
            MessageKind::ErrorResponse { .. } => ErrorResponse,
        },
        Err(err) => match err {
            DecodeError::TooLarge { .. } => TooLarge,
            DecodeError::InvalidUtf8 { .. } => InvalidUtf8,
            DecodeError::ByteOrderMark => ByteOrderMark,
            DecodeError::Syntax { .. } => Syntax,
            DecodeError::DuplicateKey { .. } => DuplicateKey,
            DecodeError::KeyCaseCollision { .. } => KeyCaseCollision,
            DecodeError::TooDeep { .. } => TooDeep,
            DecodeError::NumberOutOfRange { .. } => NumberOutOfRange,
            DecodeError::EmptyBatch => EmptyBatch,
            DecodeError::NotJsonRpc { .. } => NotJsonRpc,
            DecodeError::MethodCase { .. } => MethodCase,
        },
    }
}

const MIB: usize = 1024 * 1024;

/// A request whose params nest so that the whole message is `depth` levels deep.
fn nested_request(depth: usize) -> Vec<u8> {
    let arrays = depth - 1;
    let mut body = br#"{"jsonrpc":"2.0","id":1,"method":"x/deep","params":"#.to_vec();
    body.extend(std::iter::repeat_n(b'[', arrays));
    body.extend(std::iter::repeat_n(b']', arrays));
    body.push(b'}');
    body
}

/// A valid request padded with trailing whitespace to exactly `len` bytes.
fn padded_request(len: usize) -> Vec<u8> {
    let mut body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#.to_vec();
    body.resize(len, b' ');
    body
}

fn b(text: &str) -> Vec<u8> {
    text.as_bytes().to_vec()
}

/// `(name, body, expected outcome, text the outcome must mention)`.
#[rustfmt::skip] // One row per line: a table reads better than rustfmt's layout.
fn cases() -> Vec<(&'static str, Vec<u8>, Want, &'static str)> {
    let req = |rest: &str| b(&format!(r#"{{"jsonrpc":"2.0","id":1,{rest}}}"#));
    let call = |params: &str| req(&format!(r#""method":"tools/call","params":{params}"#));
    vec![
        // Valid shapes, so the table can fail the other way too.
        ("plain request", req(r#""method":"tools/list""#), Request, "tools/list"),
        ("tools/call", call(r#"{"name":"run_sql","arguments":{"sql":"select 1"}}"#), Request, "run_sql"),
        ("notification", b(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#), Notification, ""),
        ("notification carrying tools/call", b(r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"rm"}}"#), Notification, "tools/call"),
        ("response", b(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#), Response, ""),
        ("error response with null id", b(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}"#), ErrorResponse, ""),
        ("escaped slash in method reads as the same method", req(r#""method":"tools\/list""#), Request, "\"tools/list\""),
        ("unknown method in exact form", req(r#""method":"acme/Custom""#), Request, "acme/Custom"),
        ("largest safe integer id", b(r#"{"jsonrpc":"2.0","id":9007199254740991,"method":"ping"}"#), Request, "9007199254740991"),
        ("unicode key, same as escaped", call(r#"{"name":"a","arguments":{"é":1,"\u00e9":2}}"#), DuplicateKey, "/params/arguments"),
        // Duplicate keys: which one wins differs between parsers.
        ("duplicate method", req(r#""method":"tools/list","method":"tools/call""#), DuplicateKey, "\"method\""),
        ("duplicate name inside params", call(r#"{"name":"read","name":"drop_db"}"#), DuplicateKey, "\"/params\""),
        ("duplicate id", b(r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#), DuplicateKey, "\"id\""),
        ("duplicate jsonrpc", req(r#""jsonrpc":"2.0","method":"ping""#), DuplicateKey, "\"jsonrpc\""),
        ("duplicate method under escaping", req(r#""method":"ping","\u006dethod":"tools/call""#), DuplicateKey, "\"method\""),
        ("duplicate name under escaping", call(r#"{"name":"a","n\u0061me":"b"}"#), DuplicateKey, "\"name\""),
        ("duplicate key under surrogate-pair escaping", call("{\"name\":\"a\",\"arguments\":{\"\u{1F600}\":1,\"\\ud83d\\ude00\":2}}"), DuplicateKey, "/params/arguments"),
        ("duplicate key deep in arrays", call(r#"{"name":"a","arguments":{"l":[0,{"k":1,"k":2}]}}"#), DuplicateKey, "\"/params/arguments/l/1\""),
        ("pointer escapes / and ~ in keys", call(r#"{"name":"a","arguments":{"a/b~c":{"k":1,"k":2}}}"#), DuplicateKey, "/a~1b~0c"),
        // Keys equal ignoring case: Go's encoding/json matches them to one field.
        ("method and Method", req(r#""method":"ping","Method":"tools/call""#), KeyCaseCollision, "\"Method\""),
        ("Name before name in params", call(r#"{"Name":"drop_db","name":"read"}"#), KeyCaseCollision, "\"/params\""),
        ("long s folds to s", call("{\"name\":\"a\",\"arguments\":{\"sql\":1,\"\u{17F}ql\":2}}"), KeyCaseCollision, "sql"),
        ("kelvin sign folds to k", call(r#"{"name":"a","arguments":{"\u212a":1,"k":2}}"#), KeyCaseCollision, "\"k\""),
        // Depth and size: bounded before work is done.
        ("depth 64", nested_request(64), Request, ""),
        ("depth 65", nested_request(65), TooDeep, "64"),
        ("100k open brackets", vec![b'['; 100_000], TooDeep, "64"),
        ("100k nested objects", b(&"{\"a\":".repeat(100_000)), TooDeep, "64"),
        ("exactly 4 MiB", padded_request(4 * MIB), Request, ""),
        ("4 MiB + 1", padded_request(4 * MIB + 1), TooLarge, "4194304"),
        // Encoding.
        ("invalid UTF-8 byte", [ &br#"{"jsonrpc":"2.0","id":1,"method":"p"#[..], b"\xff", b"\"}", ] .concat(), InvalidUtf8, "offset 35"),
        ("overlong UTF-8 slash", [ &br#"{"jsonrpc":"2.0","id":1,"method":"tools"#[..], b"\xc0\xaf", b"call\"}", ] .concat(), InvalidUtf8, "offset 39"),
        ("UTF-8 encoded surrogate", [ &br#"{"jsonrpc":"2.0","id":1,"method":""#[..], b"\xed\xa0\x80", b"\"}", ] .concat(), InvalidUtf8, ""),
        ("UTF-16 body", b"\xff\xfe{\x00}\x00".to_vec(), InvalidUtf8, "offset 0"),
        ("byte-order mark", [ &b"\xef\xbb\xbf"[..], br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#, ] .concat(), ByteOrderMark, ""),
        ("lone leading surrogate", req(r#""method":"x","params":{"s":"\ud800"}"#), Syntax, "hex escape"),
        ("lone trailing surrogate", req(r#""method":"x","params":{"s":"\udc00"}"#), Syntax, ""),
        ("leading surrogate then a non-surrogate escape", req(r#""method":"x","params":{"s":"\ud800\u0041"}"#), Syntax, "surrogate"),
        ("leading surrogate then a plain character", req(r#""method":"x","params":{"s":"\ud800x"}"#), Syntax, ""),
        ("lone surrogate in a key", req(r#""method":"x","params":{"\ud800":1}"#), Syntax, "hex escape"),
        ("raw control character in a string", req("\"method\":\"x\",\"params\":{\"s\":\"a\u{1}b\"}"), Syntax, "control character"),
        // Syntax other parsers may accept.
        ("NaN", req(r#""method":"x","params":[NaN]"#), Syntax, ""),
        ("Infinity", req(r#""method":"x","params":[Infinity]"#), Syntax, ""),
        ("-Infinity", req(r#""method":"x","params":[-Infinity]"#), Syntax, ""),
        ("number overflowing a double", req(r#""method":"x","params":[1e400]"#), Syntax, "out of range"),
        ("trailing garbage", b(r#"{"jsonrpc":"2.0","id":1,"method":"ping"} x"#), Syntax, "trailing"),
        ("two messages back to back", b( r#"{"jsonrpc":"2.0","id":1,"method":"ping"}{"jsonrpc":"2.0","id":2,"method":"tools/call"}"#),
            Syntax,
            "trailing",
        ),
        ("comment", b(r#"{"jsonrpc":"2.0",/**/"id":1,"method":"ping"}"#), Syntax, ""),
        ("trailing comma", b(r#"{"jsonrpc":"2.0","id":1,"method":"ping",}"#), Syntax, ""),
        ("single quotes", b(r#"{'jsonrpc':'2.0','id':1,'method':'ping'}"#), Syntax, ""),
        ("unquoted key", b(r#"{jsonrpc:"2.0","id":1,"method":"ping"}"#), Syntax, ""),
        ("leading zero", req(r#""method":"x","params":[01]"#), Syntax, ""),
        ("empty body", b(""), Syntax, "EOF"),
        ("whitespace only", b(" \n"), Syntax, "EOF"),
        ("truncated", b(r#"{"jsonrpc":"2.0","id":1,"method":"pi"#), Syntax, "EOF"),
        // Big numbers: exact in some parsers, rounded in others.
        ("id 2^53 + 1", b(r#"{"jsonrpc":"2.0","id":9007199254740993,"method":"ping"}"#), NumberOutOfRange, "\"/id\""),
        ("id -(2^53 + 1)", b(r#"{"jsonrpc":"2.0","id":-9007199254740993,"method":"ping"}"#), NumberOutOfRange, ""),
        ("id past u64", b(r#"{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"ping"}"#), NumberOutOfRange, ""),
        ("id 1e20", b(r#"{"jsonrpc":"2.0","id":1e20,"method":"ping"}"#), NumberOutOfRange, ""),
        ("big number in arguments", call(r#"{"name":"pay","arguments":{"cents":18446744073709551615}}"#), NumberOutOfRange, "/params/arguments/cents"),
        // Ids.
        ("id null in a request", b(r#"{"jsonrpc":"2.0","id":null,"method":"tools/list"}"#), NotJsonRpc, "null"),
        ("id float", b(r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#), NotJsonRpc, "id"),
        ("id 1.0", b(r#"{"jsonrpc":"2.0","id":1.0,"method":"ping"}"#), NotJsonRpc, "id"),
        ("id bool", b(r#"{"jsonrpc":"2.0","id":true,"method":"ping"}"#), NotJsonRpc, "boolean"),
        ("id object", b(r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#), NotJsonRpc, "object"),
        ("id array", b(r#"{"jsonrpc":"2.0","id":[1],"method":"ping"}"#), NotJsonRpc, "array"),
        ("response with null id", b(r#"{"jsonrpc":"2.0","id":null,"result":{}}"#), NotJsonRpc, "id"),
        ("response without id", b(r#"{"jsonrpc":"2.0","result":{}}"#), NotJsonRpc, "id"),
        // Methods.
        ("Tools/Call", req(r#""method":"Tools/Call","params":{"name":"x"}"#), MethodCase, "\"tools/call\""),
        ("TOOLS/CALL", req(r#""method":"TOOLS/CALL","params":{"name":"x"}"#), MethodCase, ""),
        ("tools/Call notification", b(r#"{"jsonrpc":"2.0","method":"tools/Call"}"#), MethodCase, ""),
        ("Initialize", req(r#""method":"Initialize""#), MethodCase, "\"initialize\""),
        ("logging/setlevel", req(r#""method":"logging/setlevel""#), MethodCase, "logging/setLevel"),
        ("server/Discover", req(r#""method":"server/Discover""#), MethodCase, ""),
        ("method with trailing space", req(r#""method":"tools/call ","params":{"name":"x"}"#), NotJsonRpc, "whitespace"),
        ("method with NUL", req(r#""method":"tools/call\u0000x""#), NotJsonRpc, "control"),
        ("empty method", req(r#""method":"""#), NotJsonRpc, "empty"),
        ("method not a string", req(r#""method":7"#), NotJsonRpc, "string"),
        ("tools/call without params", req(r#""method":"tools/call""#), NotJsonRpc, "\"name\""),
        ("tools/call with a numeric name", call(r#"{"name":7}"#), NotJsonRpc, "\"name\""),
        ("tools/call with params as an array", call(r#"["run_sql"]"#), NotJsonRpc, "\"name\""),
        ("resources/read without uri", req(r#""method":"resources/read","params":{"name":"x"}"#), NotJsonRpc, "\"uri\""),
        // Envelope.
        ("jsonrpc 1.0", b(r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#), NotJsonRpc, "2.0"),
        ("jsonrpc missing", b(r#"{"id":1,"method":"ping"}"#), NotJsonRpc, "jsonrpc"),
        ("jsonrpc as a number", b(r#"{"jsonrpc":2.0,"id":1,"method":"ping"}"#), NotJsonRpc, "jsonrpc"),
        ("params a string", req(r#""method":"ping","params":"x""#), NotJsonRpc, "params"),
        ("params null", req(r#""method":"ping","params":null"#), NotJsonRpc, "params"),
        ("both result and error", b(r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"m"}}"#), NotJsonRpc, "both"),
        ("method and result", req(r#""method":"ping","result":{}"#), NotJsonRpc, "result"),
        ("neither method, result nor error", b(r#"{"jsonrpc":"2.0","id":1}"#), NotJsonRpc, "neither"),
        ("error without code", b(r#"{"jsonrpc":"2.0","id":1,"error":{"message":"m"}}"#), NotJsonRpc, "code"),
        ("error with a float code", b(r#"{"jsonrpc":"2.0","id":1,"error":{"code":1.5,"message":"m"}}"#), NotJsonRpc, "code"),
        ("top-level string", b(r#""tools/call""#), NotJsonRpc, "string"),
        ("top-level null", b("null"), NotJsonRpc, "null"),
        // Batches.
        ("empty batch", b("[]"), EmptyBatch, ""),
        ("batch with a non-object", b(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},1]"#), NotJsonRpc, "batch element 1"),
        ("nested batch", b(r#"[[{"jsonrpc":"2.0","id":1,"method":"ping"}]]"#), NotJsonRpc, "batch element 0"),
        ("batch of two", b( r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"}]"#),
            Batch(2),
            "",
        ),
        ("batch repeating a request id", b( r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":1,"method":"tools/list"}]"#),
            NotJsonRpc,
            "repeats",
        ),
        ("batch: id 1 and \"1\" are distinct", b( r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":"1","method":"ping"}]"#),
            Batch(2),
            "",
        ),
        ("batch: a request and a response may share an id", b(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":1,"result":{}}]"#), Batch(2), ""),
        ("batch with a mixed-case method", b( r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"Tools/list"}]"#),
            MethodCase,
            "",
        ),
        ("batch with a duplicate key", b( r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"id":3,"method":"ping"}]"#),
            DuplicateKey,
            "\"/1\"",
        ),
    ]
}

#[test]
fn decode_attack_table() {
    let limits = Limits::default();
    let mut failures = Vec::new();
    let cases = cases();
    for (name, body, want, mentions) in &cases {
        let result = decode(body, &limits);
        let got = observed(&result);
        let text = match &result {
            Ok(payload) => format!("{payload:?}"),
            Err(err) => err.to_string(),
        };
        if got != *want || !text.contains(mentions) {
            failures.push(format!(
                "{name}: want {want:?} mentioning {mentions:?}, got {got:?}: {text}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn decode_errors_map_to_the_jsonrpc_code_of_their_level() {
    let limits = Limits::default();
    for (name, body, want, _) in cases() {
        let Err(err) = decode(&body, &limits) else {
            continue;
        };
        let parse_level = !matches!(want, EmptyBatch | NotJsonRpc | MethodCase);
        let code = if parse_level {
            PARSE_ERROR
        } else {
            INVALID_REQUEST
        };
        assert_eq!(err.jsonrpc_code(), code, "{name}: {err}");
    }
}
