//! What an upstream answered, whatever its transport: the one shape the respond
//! stage reads, so HTTP and stdio upstreams share one respond path.
//!
//! An HTTP upstream's answer is its hyper response (a JSON body or an SSE stream the
//! respond stage parses event by event). A stdio child's answer is made of the
//! JSON-RPC messages it wrote: one final answer becomes a JSON body, anything more
//! (progress, logging, a sampling request before the result) a stream of messages
//! the respond stage sends as SSE events.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use hyper::body::Incoming;
use tokio::sync::mpsc;

/// An upstream's answer to one forwarded request.
#[derive(Debug)]
pub(crate) struct Reply {
    /// The HTTP status to answer with.
    pub(crate) status: StatusCode,
    /// The upstream's headers (filtered by the respond stage), or the ones a stdio
    /// upstream sets (content type, the session id of a new session).
    pub(crate) headers: HeaderMap,
    /// The messages.
    pub(crate) body: ReplyBody,
}

/// The body of a [`Reply`].
#[derive(Debug)]
pub(crate) enum ReplyBody {
    /// An HTTP upstream's body, read by its `Content-Type` (JSON or SSE).
    Http(Incoming),
    /// One JSON-RPC message (or batch), complete.
    Json(Bytes),
    /// JSON-RPC messages as they come, each to become one SSE event.
    Messages(MessageStream),
    /// Nothing (202 Accepted, or a closed session).
    Empty,
}

/// JSON-RPC messages from a stdio child, in order.
#[derive(Debug)]
pub(crate) struct MessageStream {
    first: Option<Bytes>,
    rest: mpsc::Receiver<Bytes>,
}

impl MessageStream {
    /// `first` (already received), then whatever arrives on `rest` until it closes.
    pub(crate) fn new(first: Option<Bytes>, rest: mpsc::Receiver<Bytes>) -> MessageStream {
        MessageStream { first, rest }
    }

    /// The next message; `None` once the stream ended.
    pub(crate) async fn next(&mut self) -> Option<Bytes> {
        match self.first.take() {
            Some(first) => Some(first),
            None => self.rest.recv().await,
        }
    }
}

impl Reply {
    /// An HTTP upstream's response.
    pub(crate) fn from_http(response: Response<Incoming>) -> Reply {
        let (parts, body) = response.into_parts();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: ReplyBody::Http(body),
        }
    }

    /// One complete JSON answer (200).
    pub(crate) fn json(bytes: Bytes) -> Reply {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Reply {
            status: StatusCode::OK,
            headers,
            body: ReplyBody::Json(bytes),
        }
    }

    /// Messages to stream as SSE (200).
    pub(crate) fn messages(stream: MessageStream) -> Reply {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        Reply {
            status: StatusCode::OK,
            headers,
            body: ReplyBody::Messages(stream),
        }
    }

    /// No body, with `status` (202 for notifications and responses, 200 for DELETE).
    pub(crate) fn empty(status: StatusCode) -> Reply {
        Reply {
            status,
            headers: HeaderMap::new(),
            body: ReplyBody::Empty,
        }
    }

    /// The same reply carrying an `Mcp-Session-Id` (a session just opened).
    pub(crate) fn with_session(mut self, session: &str) -> Reply {
        if let Ok(value) = HeaderValue::from_str(session) {
            self.headers.insert(crate::protocol::SESSION_ID, value);
        }
        self
    }
}
