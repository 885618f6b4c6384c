//! The decode stage: strict JSON-RPC decoding of request and response bodies.
//!
//! Promise 1 says what is decided is what is forwarded. The proxy parses each body once,
//! here, decides on the parsed value, and forwards the original bytes; that is only sound
//! if every JSON parser upstream reads those bytes as the same value. So this stage
//! refuses whatever two parsers could read differently: invalid or BOM-prefixed UTF-8,
//! duplicate keys (after unescaping), keys equal but for case, integers beyond ±(2^53 − 1),
//! lone surrogates, trailing data, and method names that imitate an MCP method by case.
//! Size is checked before parsing and depth before each nested level, so no body can
//! exhaust memory or the stack.

mod error;
mod jsonrpc;
mod methods;
mod strict;

#[cfg(test)]
mod attacks_test;
#[cfg(test)]
mod proptest_test;

use serde_json::Value;

pub use error::{DecodeError, INVALID_REQUEST, PARSE_ERROR};
pub use methods::KNOWN_METHODS;

/// Limits for one body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest body accepted, in bytes (default 4 MiB). Checked before parsing.
    pub max_body_bytes: usize,
    /// Deepest nesting of arrays and objects accepted; the outermost container is level 1
    /// (default 64). Values above 127 act as 127, serde_json's own guard.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 4 * 1024 * 1024,
            max_depth: 64,
        }
    }
}

/// One decoded JSON-RPC message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The whole message object, as parsed.
    pub value: Value,
    /// What kind of message it is, with its id and method.
    pub kind: MessageKind,
}

/// The four shapes of a JSON-RPC 2.0 message.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageKind {
    /// Has `method` and an `id` (a string or an integer).
    Request {
        /// The request id.
        id: Value,
        /// The method, exactly as sent.
        method: String,
    },
    /// Has `method` and no `id`: no response is expected.
    Notification {
        /// The method, exactly as sent.
        method: String,
    },
    /// Has `result`.
    Response {
        /// The id of the request answered.
        id: Value,
    },
    /// Has `error`; the id is null when the request's id could not be read.
    ErrorResponse {
        /// The id of the request answered, or null.
        id: Value,
    },
}

/// `params` of a message that has none.
static NO_PARAMS: Value = Value::Null;

impl Message {
    /// The method of a request or a notification.
    pub fn method(&self) -> Option<&str> {
        match &self.kind {
            MessageKind::Request { method, .. } | MessageKind::Notification { method } => {
                Some(method)
            }
            MessageKind::Response { .. } | MessageKind::ErrorResponse { .. } => None,
        }
    }

    /// The id of a request or a response (`Some(Null)` for an error response without one).
    pub fn id(&self) -> Option<&Value> {
        match &self.kind {
            MessageKind::Request { id, .. }
            | MessageKind::Response { id }
            | MessageKind::ErrorResponse { id } => Some(id),
            MessageKind::Notification { .. } => None,
        }
    }

    /// The `params` member, or `Value::Null` when absent.
    pub fn params(&self) -> &Value {
        self.value.get("params").unwrap_or(&NO_PARAMS)
    }

    /// What the `Mcp-Name` header must equal: `params.name` for `tools/call` and
    /// `prompts/get`, `params.uri` for `resources/read`, `resources/subscribe` and
    /// `resources/unsubscribe`; `None` for other messages.
    pub fn target_name(&self) -> Option<&str> {
        let field = jsonrpc::target_field(self.method()?)?;
        self.params().get(field)?.as_str()
    }
}

/// A body: one message, or a batch (a non-empty JSON array of messages).
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// A single message.
    Single(Message),
    /// A batch, in order; ids are distinct among its requests and among its responses.
    Batch(Vec<Message>),
}

impl Payload {
    /// The messages of the body, in order (one for a single message).
    pub fn messages(&self) -> &[Message] {
        match self {
            Self::Single(message) => std::slice::from_ref(message),
            Self::Batch(messages) => messages,
        }
    }

    /// The messages, owned.
    pub fn into_messages(self) -> Vec<Message> {
        match self {
            Self::Single(message) => vec![message],
            Self::Batch(messages) => messages,
        }
    }

    /// Whether the body was a JSON array.
    pub fn is_batch(&self) -> bool {
        matches!(self, Self::Batch(_))
    }
}

/// Strictly decodes a request or response body into JSON-RPC messages.
///
/// Everything [`parse_strict`] refuses is refused, and then the JSON-RPC shape is
/// checked: `"jsonrpc": "2.0"`, string or integer ids (never null in a request), a string
/// `method` in its exact MCP case, `params` an object or an array, never both `result`
/// and `error`, a string target for `tools/call`, `prompts/get` and `resources/*`.
pub fn decode(body: &[u8], limits: &Limits) -> Result<Payload, DecodeError> {
    jsonrpc::payload(parse_strict(body, limits)?)
}

/// Strictly parses any single JSON value (also each SSE `data:` of upstream streams).
pub fn parse_strict(body: &[u8], limits: &Limits) -> Result<Value, DecodeError> {
    if body.len() > limits.max_body_bytes {
        return Err(DecodeError::TooLarge {
            limit: limits.max_body_bytes,
        });
    }
    let text = std::str::from_utf8(body).map_err(|err| DecodeError::InvalidUtf8 {
        offset: err.valid_up_to(),
    })?;
    if text.starts_with('\u{feff}') {
        return Err(DecodeError::ByteOrderMark);
    }
    strict::parse(text, limits.max_depth)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(body: &str) -> Message {
        match decode(body.as_bytes(), &Limits::default()) {
            Ok(Payload::Single(message)) => message,
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn decode_accessors_of_a_tool_call() {
        let message = single(
            r#"{"jsonrpc":"2.0","id":"7","method":"tools/call","params":{"name":"run_sql"}}"#,
        );
        assert_eq!(message.method(), Some("tools/call"));
        assert_eq!(message.id(), Some(&Value::from("7")));
        assert_eq!(message.params()["name"], "run_sql");
        assert_eq!(message.target_name(), Some("run_sql"));
    }

    #[test]
    fn decode_target_names_by_method() {
        let uri = r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"db://x","name":"n"}}"#;
        assert_eq!(single(uri).target_name(), Some("db://x"));
        let prompt = r#"{"jsonrpc":"2.0","method":"prompts/get","params":{"name":"p"}}"#;
        assert_eq!(single(prompt).target_name(), Some("p"));
        let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"name":"n"}}"#;
        assert_eq!(single(list).target_name(), None);
    }

    #[test]
    fn decode_accessors_of_notifications_and_responses() {
        let note = single(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        assert_eq!((note.id(), note.params()), (None, &Value::Null));
        let error = single(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-1,"message":"m"}}"#);
        assert_eq!((error.method(), error.id()), (None, Some(&Value::Null)));
        assert_eq!(error.kind, MessageKind::ErrorResponse { id: Value::Null });
    }

    #[test]
    fn decode_payload_views() {
        let limits = Limits::default();
        let one = br#"{"jsonrpc":"2.0","id":1,"result":{}}"#;
        let batch =
            br#"[{"jsonrpc":"2.0","id":1,"result":{}},{"jsonrpc":"2.0","id":2,"result":{}}]"#;
        let (Ok(one), Ok(batch)) = (decode(one, &limits), decode(batch, &limits)) else {
            panic!("valid bodies refused");
        };
        assert_eq!((one.is_batch(), one.messages().len()), (false, 1));
        assert_eq!((batch.is_batch(), batch.messages().len()), (true, 2));
        assert_eq!(batch.into_messages()[1].id(), Some(&Value::from(2)));
    }

    #[test]
    fn decode_limits_default_to_4_mib_and_64_levels() {
        let limits = Limits::default();
        assert_eq!((limits.max_body_bytes, limits.max_depth), (4 << 20, 64));
        let small = Limits {
            max_body_bytes: 2,
            ..limits
        };
        assert_eq!(
            parse_strict(b"[1]", &small),
            Err(DecodeError::TooLarge { limit: 2 })
        );
    }
}
