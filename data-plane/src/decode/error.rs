//! Why a body was refused, and the JSON-RPC code each reason maps to.

/// JSON-RPC 2.0 "Parse error": the body is not one well-formed, unambiguous JSON value.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC 2.0 "Invalid Request": well-formed JSON that is not a valid JSON-RPC message.
pub const INVALID_REQUEST: i64 = -32600;

/// Why the decoder refused a body.
///
/// Every variant names what was wrong and, in its message, what the sender should do.
/// Parse-level refusals map to JSON-RPC `-32700`, message-level ones to `-32600`
/// (see [`DecodeError::jsonrpc_code`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// The body is larger than [`super::Limits::max_body_bytes`].
    #[error("the body is larger than the {limit}-byte limit; send a smaller message")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body is not valid UTF-8 (this includes overlong encodings and encoded surrogates).
    #[error(
        "the body is not valid UTF-8 (first bad byte at offset {offset}); encode the JSON as UTF-8"
    )]
    InvalidUtf8 {
        /// Byte offset of the first invalid sequence.
        offset: usize,
    },
    /// The body starts with a UTF-8 byte-order mark, which RFC 8259 §8.1 forbids on the wire.
    #[error("the body starts with a UTF-8 byte-order mark; send the JSON without it")]
    ByteOrderMark,
    /// The body is not one well-formed JSON value (includes `NaN`, comments, trailing
    /// commas, lone surrogate escapes, trailing data, numbers that overflow a double).
    #[error("JSON syntax error at line {line}, column {column}: {detail}; send one well-formed JSON value")]
    Syntax {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error (0 when the body is empty).
        column: usize,
        /// What the parser found.
        detail: String,
    },
    /// An object has the same key twice (compared after unescaping).
    #[error("duplicate key {key:?} in the object at JSON pointer {path:?}; parsers disagree on which value wins, so send each key once")]
    DuplicateKey {
        /// The key, unescaped.
        key: String,
        /// JSON pointer (RFC 6901) of the object holding it; `""` is the root.
        path: String,
    },
    /// Two keys of one object differ only in letter case, which some parsers
    /// (Go's `encoding/json`, for one) read as the same key.
    #[error("keys {other:?} and {key:?} in the object at JSON pointer {path:?} differ only in letter case, and some parsers read them as one key; rename one of them")]
    KeyCaseCollision {
        /// The later key.
        key: String,
        /// The earlier key it collides with.
        other: String,
        /// JSON pointer of the object holding them.
        path: String,
    },
    /// Arrays and objects nest deeper than the limit.
    #[error(
        "the JSON nests deeper than {limit} levels of arrays and objects; flatten the message"
    )]
    TooDeep {
        /// The depth limit that applied.
        limit: usize,
    },
    /// An integer beyond ±(2^53 − 1), however written: parsers disagree on such
    /// numbers (exact big integers in some, rounded doubles in others).
    #[error("the number {number} at JSON pointer {path:?} is an integer beyond ±(2^53-1), which parsers read differently; send it as a string")]
    NumberOutOfRange {
        /// The number as read.
        number: String,
        /// JSON pointer of the number.
        path: String,
    },
    /// A batch (JSON array) with no element.
    #[error("empty batch: a JSON-RPC batch must hold at least one message")]
    EmptyBatch,
    /// Well-formed JSON that is not a JSON-RPC 2.0 message.
    #[error("not a valid JSON-RPC 2.0 message: {reason}")]
    NotJsonRpc {
        /// What is wrong, and where.
        reason: String,
    },
    /// A method equal to a known MCP method ignoring ASCII case, but not in its exact case.
    #[error("method {method:?} differs from the MCP method {canonical:?} only in letter case; use {canonical:?}")]
    MethodCase {
        /// The method as sent.
        method: String,
        /// The MCP method it imitates.
        canonical: String,
    },
}

impl DecodeError {
    /// The JSON-RPC error code to answer with: `-32700` (parse error) for size, encoding,
    /// syntax, duplicate keys, depth and numbers; `-32600` (invalid request) otherwise.
    pub fn jsonrpc_code(&self) -> i64 {
        match self {
            Self::TooLarge { .. }
            | Self::InvalidUtf8 { .. }
            | Self::ByteOrderMark
            | Self::Syntax { .. }
            | Self::DuplicateKey { .. }
            | Self::KeyCaseCollision { .. }
            | Self::TooDeep { .. }
            | Self::NumberOutOfRange { .. } => PARSE_ERROR,
            Self::EmptyBatch | Self::NotJsonRpc { .. } | Self::MethodCase { .. } => INVALID_REQUEST,
        }
    }

    /// Shorthand for [`DecodeError::NotJsonRpc`].
    pub(crate) fn not_jsonrpc(reason: impl Into<String>) -> Self {
        Self::NotJsonRpc {
            reason: reason.into(),
        }
    }
}
