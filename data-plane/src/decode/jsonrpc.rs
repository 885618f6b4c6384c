//! JSON-RPC 2.0 shape: which kind of message an object is, and whether it is valid.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::error::DecodeError;
use super::methods::case_variant_of;
use super::{Message, MessageKind, Payload};

/// Methods whose target the `Mcp-Name` header names, and the `params` member holding it.
pub(crate) const TARGETS: &[(&str, &str)] = &[
    ("tools/call", "name"),
    ("prompts/get", "name"),
    ("resources/read", "uri"),
    ("resources/subscribe", "uri"),
    ("resources/unsubscribe", "uri"),
];

/// The `params` member that names the target of `method`, if it has one.
pub(crate) fn target_field(method: &str) -> Option<&'static str> {
    TARGETS
        .iter()
        .find(|(known, _)| *known == method)
        .map(|(_, field)| *field)
}

/// A whole body: one message, or a non-empty batch of messages with distinct ids.
pub(crate) fn payload(value: Value) -> Result<Payload, DecodeError> {
    let Value::Array(items) = value else {
        return message(value).map(Payload::Single);
    };
    if items.is_empty() {
        return Err(DecodeError::EmptyBatch);
    }
    let mut messages = Vec::with_capacity(items.len());
    let mut ids = HashSet::new();
    for (index, item) in items.into_iter().enumerate() {
        let message = message(item).map_err(|err| in_batch(err, index))?;
        if let Some(id) = batch_id(&message.kind) {
            if !ids.insert(id) {
                return Err(DecodeError::not_jsonrpc(format!(
                    "batch element {index} repeats the id of an earlier {}; give each message of a batch its own id",
                    if matches!(message.kind, MessageKind::Request { .. }) { "request" } else { "response" }
                )));
            }
        }
        messages.push(message);
    }
    Ok(Payload::Batch(messages))
}

/// Requests and responses are matched by id, so two of a kind with one id are ambiguous.
fn batch_id(kind: &MessageKind) -> Option<(bool, String)> {
    let (is_request, id) = match kind {
        MessageKind::Request { id, .. } => (true, id),
        MessageKind::Response { id } | MessageKind::ErrorResponse { id } if !id.is_null() => {
            (false, id)
        }
        _ => return None,
    };
    // Serialized, so that 1 and "1" stay distinct.
    Some((is_request, id.to_string()))
}

fn in_batch(err: DecodeError, index: usize) -> DecodeError {
    match err {
        DecodeError::NotJsonRpc { reason } => {
            DecodeError::not_jsonrpc(format!("batch element {index}: {reason}"))
        }
        other => other,
    }
}

/// One message: a JSON object with `"jsonrpc": "2.0"` and a coherent set of members.
pub(crate) fn message(value: Value) -> Result<Message, DecodeError> {
    let kind = {
        let Value::Object(object) = &value else {
            return Err(DecodeError::not_jsonrpc(format!(
                "a message must be a JSON object, found {}",
                type_name(&value)
            )));
        };
        if object.get("jsonrpc") != Some(&Value::String("2.0".into())) {
            return Err(DecodeError::not_jsonrpc(
                "the \"jsonrpc\" member must be the string \"2.0\"",
            ));
        }
        match object.get("method") {
            Some(method) => call_kind(object, method)?,
            None => reply_kind(object)?,
        }
    };
    Ok(Message { value, kind })
}

/// A request or a notification.
fn call_kind(object: &Map<String, Value>, method: &Value) -> Result<MessageKind, DecodeError> {
    let Value::String(method) = method else {
        return Err(DecodeError::not_jsonrpc("\"method\" must be a string"));
    };
    if object.contains_key("result") || object.contains_key("error") {
        return Err(DecodeError::not_jsonrpc(
            "a message with \"method\" cannot also carry \"result\" or \"error\"",
        ));
    }
    check_method_name(method)?;
    check_params(object.get("params"), method)?;
    let method = method.clone();
    match object.get("id") {
        None => Ok(MessageKind::Notification { method }),
        Some(Value::Null) => Err(DecodeError::not_jsonrpc(
            "a request id cannot be null; use a string or an integer, or omit \"id\" for a notification",
        )),
        Some(id) => Ok(MessageKind::Request {
            id: checked_id(id)?.clone(),
            method,
        }),
    }
}

fn check_method_name(method: &str) -> Result<(), DecodeError> {
    if method.is_empty() {
        return Err(DecodeError::not_jsonrpc("\"method\" is empty"));
    }
    // Some servers trim, some C-string readers stop at NUL: either would read another method.
    if method.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(DecodeError::not_jsonrpc(format!(
            "method {method:?} contains whitespace or control characters"
        )));
    }
    match case_variant_of(method) {
        Some(canonical) => Err(DecodeError::MethodCase {
            method: method.to_owned(),
            canonical: canonical.to_owned(),
        }),
        None => Ok(()),
    }
}

fn check_params(params: Option<&Value>, method: &str) -> Result<(), DecodeError> {
    match params {
        None | Some(Value::Object(_)) | Some(Value::Array(_)) => {}
        Some(other) => {
            return Err(DecodeError::not_jsonrpc(format!(
                "\"params\" must be an object or an array, found {}",
                type_name(other)
            )))
        }
    }
    // The policy keys its decision on the target: a call without one must not reach it.
    let Some(field) = target_field(method) else {
        return Ok(());
    };
    match params.and_then(|params| params.get(field)) {
        Some(Value::String(_)) => Ok(()),
        _ => Err(DecodeError::not_jsonrpc(format!(
            "{method} needs \"params\" to be an object with a string \"{field}\""
        ))),
    }
}

/// A response or an error response.
fn reply_kind(object: &Map<String, Value>) -> Result<MessageKind, DecodeError> {
    let id = object.get("id").ok_or_else(|| {
        DecodeError::not_jsonrpc(
            "the message has neither \"method\" nor \"id\"; a request needs both, a response needs \"id\"",
        )
    })?;
    match (object.get("result"), object.get("error")) {
        (Some(_), Some(_)) => Err(DecodeError::not_jsonrpc(
            "a response cannot carry both \"result\" and \"error\"",
        )),
        (Some(_), None) => Ok(MessageKind::Response {
            id: checked_id(id)?.clone(),
        }),
        (None, Some(error)) => {
            check_error_object(error)?;
            // Null is allowed here: the error answers a request whose id was unreadable.
            let id = if id.is_null() { id } else { checked_id(id)? };
            Ok(MessageKind::ErrorResponse { id: id.clone() })
        }
        (None, None) => Err(DecodeError::not_jsonrpc(
            "the message has neither \"method\", \"result\" nor \"error\"",
        )),
    }
}

fn check_error_object(error: &Value) -> Result<(), DecodeError> {
    let well_formed = error.get("code").is_some_and(is_integer)
        && error.get("message").is_some_and(Value::is_string);
    if well_formed {
        Ok(())
    } else {
        Err(DecodeError::not_jsonrpc(
            "\"error\" must be an object with an integer \"code\" and a string \"message\"",
        ))
    }
}

/// Ids must be strings or integers: a float or a boolean is read differently by
/// different languages, and would make responses match the wrong request.
fn checked_id(id: &Value) -> Result<&Value, DecodeError> {
    if id.is_string() || is_integer(id) {
        Ok(id)
    } else {
        Err(DecodeError::not_jsonrpc(format!(
            "\"id\" must be a string or an integer, found {}",
            type_name(id)
        )))
    }
}

fn is_integer(value: &Value) -> bool {
    value.is_i64() || value.is_u64()
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a floating-point number",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
