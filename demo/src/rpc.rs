//! JSON-RPC 2.0 messages and the MCP methods the demo answers.

use crate::database::Database;
use crate::session::{ALL_REVISIONS, STATELESS_REVISION};
use crate::tools;
use serde_json::{json, Value};
use std::sync::Arc;

/// Invalid JSON.
pub(crate) const PARSE_ERROR: i64 = -32700;
/// Not a valid JSON-RPC request, or not acceptable in this context.
pub(crate) const INVALID_REQUEST: i64 = -32600;
/// The method does not exist.
pub(crate) const METHOD_NOT_FOUND: i64 = -32601;
/// Bad parameters (including an unknown tool name).
pub(crate) const INVALID_PARAMS: i64 = -32602;
/// The server failed.
pub(crate) const INTERNAL_ERROR: i64 = -32603;

/// A JSON-RPC error object.
#[derive(Debug, Clone)]
pub(crate) struct RpcError {
    pub(crate) code: i64,
    pub(crate) message: String,
}

impl RpcError {
    pub(crate) fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// One decoded JSON-RPC message.
#[derive(Debug)]
pub(crate) enum Message {
    /// Expects a response.
    Request {
        id: Value,
        method: String,
        params: Value,
    },
    /// A notification or a response to a server request: acknowledged, never answered.
    NoReply { method: Option<String> },
}

impl Message {
    /// The method name, if any.
    pub(crate) fn method(&self) -> Option<&str> {
        match self {
            Message::Request { method, .. } => Some(method),
            Message::NoReply { method } => method.as_deref(),
        }
    }
}

/// Decodes one message; on failure, returns the error response to send.
pub(crate) fn decode(value: Value) -> Result<Message, Value> {
    let Value::Object(mut obj) = value else {
        return Err(failure(
            Value::Null,
            &invalid("a JSON-RPC message must be an object"),
        ));
    };
    let id = obj.remove("id");
    let reply_id = id.clone().unwrap_or(Value::Null);
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(failure(reply_id, &invalid("\"jsonrpc\" must be \"2.0\"")));
    }
    let method = match obj.remove("method") {
        None => None,
        Some(Value::String(m)) => Some(m),
        Some(_) => return Err(failure(reply_id, &invalid("\"method\" must be a string"))),
    };
    match (id, method) {
        (Some(id @ (Value::String(_) | Value::Number(_))), Some(method)) => Ok(Message::Request {
            id,
            method,
            params: obj.remove("params").unwrap_or(Value::Null),
        }),
        (Some(_), Some(_)) => Err(failure(
            reply_id,
            &invalid("\"id\" must be a string or a number (MCP forbids null ids)"),
        )),
        (None, method @ Some(_)) => Ok(Message::NoReply { method }),
        (Some(_), None) if obj.contains_key("result") || obj.contains_key("error") => {
            Ok(Message::NoReply { method: None })
        }
        _ => Err(failure(reply_id, &invalid("a request needs \"method\""))),
    }
}

fn invalid(message: &str) -> RpcError {
    RpcError::new(
        INVALID_REQUEST,
        format!("invalid JSON-RPC message: {message}"),
    )
}

/// A success response.
pub(crate) fn success(id: Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// An error response.
pub(crate) fn failure(id: Value, error: &RpcError) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": error.code, "message": error.message}})
}

fn server_info() -> Value {
    json!({
        "name": "airlock-demo",
        "title": "Airlock demo warehouse",
        "version": env!("CARGO_PKG_VERSION"),
    })
}

fn capabilities() -> Value {
    json!({"tools": {"listChanged": false}})
}

const INSTRUCTIONS: &str = "A demo customer warehouse (fake data). Use `query` for read-only SQL \
over the tables customers, orders, egress_log and files; `execute` for writes and DDL; \
`http_request` for (simulated) outbound HTTP; `read_file` for files of the app's virtual disk.";

/// The result of `initialize` for the negotiated revision.
pub(crate) fn initialize_result(revision: &str) -> Value {
    json!({
        "protocolVersion": revision,
        "capabilities": capabilities(),
        "serverInfo": server_info(),
        "instructions": INSTRUCTIONS,
    })
}

fn discover_result() -> Value {
    json!({
        "supportedVersions": ALL_REVISIONS,
        "capabilities": capabilities(),
        "instructions": INSTRUCTIONS,
        "_meta": {"io.modelcontextprotocol/serverInfo": server_info()},
    })
}

/// Adds what the stateless revision requires of every result: `resultType`, and the
/// caching hints (`ttlMs`, `cacheScope`) of the cacheable methods.
fn stateless_result(method: &str, mut result: Value) -> Value {
    if let Some(object) = result.as_object_mut() {
        object.insert("resultType".into(), json!("complete"));
        if matches!(method, "tools/list" | "server/discover") {
            object.insert("ttlMs".into(), json!(0));
            object.insert("cacheScope".into(), json!("public"));
        }
    }
    result
}

/// Answers one request (never `initialize`, which opens a session one level up) on
/// the given protocol revision.
pub(crate) async fn answer(
    db: &Arc<Database>,
    id: Value,
    method: &str,
    params: Value,
    revision: &str,
) -> Value {
    let result = match method {
        "ping" => Ok(json!({})),
        "tools/list" => Ok(tools::catalog()),
        "tools/call" => call_tool(db, params).await,
        "server/discover" => Ok(discover_result()),
        "initialize" => Err(RpcError::new(
            INVALID_REQUEST,
            "initialize must be sent alone (not in a batch) and opens a new session",
        )),
        other => Err(RpcError::new(
            METHOD_NOT_FOUND,
            format!("method not found: {other}; this server answers initialize, ping, tools/list, tools/call and server/discover"),
        )),
    };
    match result {
        Ok(result) if revision == STATELESS_REVISION || method == "server/discover" => {
            success(id, stateless_result(method, result))
        }
        Ok(result) => success(id, result),
        Err(error) => failure(id, &error),
    }
}

async fn call_tool(db: &Arc<Database>, params: Value) -> Result<Value, RpcError> {
    let Value::Object(mut params) = params else {
        return Err(RpcError::new(
            INVALID_PARAMS,
            "tools/call needs params {\"name\": ..., \"arguments\": {...}}",
        ));
    };
    let name = match params.remove("name") {
        Some(Value::String(name)) if tools::is_known(&name) => name,
        Some(Value::String(name)) => {
            return Err(RpcError::new(
                INVALID_PARAMS,
                format!("unknown tool: {name}; call tools/list for the available tools"),
            ))
        }
        _ => {
            return Err(RpcError::new(
                INVALID_PARAMS,
                "tools/call needs a string \"name\"",
            ))
        }
    };
    let arguments = match params.remove("arguments") {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(arguments)) => arguments,
        Some(_) => {
            return Err(RpcError::new(
                INVALID_PARAMS,
                "tools/call \"arguments\" must be an object",
            ))
        }
    };
    let db = Arc::clone(db);
    // SQLite is blocking: run the tool off the async workers.
    tokio::task::spawn_blocking(move || tools::run(&db, &name, &arguments))
        .await
        .map_err(|e| RpcError::new(INTERNAL_ERROR, format!("the tool failed to run: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_sorts_requests_notifications_and_garbage() {
        let req = decode(json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})).unwrap();
        assert!(matches!(req, Message::Request { ref method, .. } if method == "ping"));
        let note = decode(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        assert!(matches!(note, Ok(Message::NoReply { method: Some(_) })));
        let resp = decode(json!({"jsonrpc": "2.0", "id": 3, "result": {}}));
        assert!(matches!(resp, Ok(Message::NoReply { method: None })));
        for bad in [
            json!([1]),
            json!({"id": 1, "method": "ping"}),
            json!({"jsonrpc": "2.0", "id": null, "method": "ping"}),
            json!({"jsonrpc": "2.0", "id": 1, "method": 5}),
            json!({"jsonrpc": "2.0", "id": 1}),
        ] {
            let err = decode(bad.clone()).unwrap_err();
            assert_eq!(err["error"]["code"], INVALID_REQUEST, "{bad}");
        }
    }
}
