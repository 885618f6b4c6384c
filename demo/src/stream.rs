//! Server-Sent Events answers for `tools/call`: events are written to the socket as they
//! are produced (a channel-backed body), so a progress notification reaches the client
//! before the tool has finished.

use crate::database::Database;
use crate::rpc;
use crate::transport::Body;
use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// A response body fed by a channel; it ends when the sender is dropped.
struct EventStream {
    rx: mpsc::Receiver<Bytes>,
}

impl http_body::Body for EventStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}

/// One SSE event carrying one JSON-RPC message (compact JSON has no raw newlines).
fn event(message: &Value) -> Bytes {
    Bytes::from(format!("event: message\ndata: {message}\n\n"))
}

fn progress(token: &Value, progress: u32, message: &str) -> Value {
    json!({
        "jsonrpc": "2.0",
        "method": "notifications/progress",
        "params": {"progressToken": token, "progress": progress, "total": 1, "message": message},
    })
}

/// Answers a `tools/call` request as an SSE stream: progress (when the request carries
/// `params._meta.progressToken`), then the result. Without a token the result is the
/// only event, so it is produced first: the head, the event and the end of the body
/// then leave in one write instead of three.
pub(crate) async fn tool_call(
    db: Arc<Database>,
    id: Value,
    params: Value,
    revision: &'static str,
) -> Response<Body> {
    let token = params
        .get("_meta")
        .and_then(|meta| meta.get("progressToken"))
        .cloned();
    let Some(token) = token else {
        let reply = rpc::answer(&db, id, "tools/call", params, revision).await;
        return event_stream(Full::new(event(&reply)).boxed());
    };
    let (tx, rx) = mpsc::channel(4);
    let tool = params
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("tool")
        .to_owned();
    tokio::spawn(async move {
        let started = progress(&token, 0, &format!("running {tool}"));
        // A send fails only when the client went away: nothing left to do.
        if tx.send(event(&started)).await.is_err() {
            return;
        }
        let reply = rpc::answer(&db, id, "tools/call", params, revision).await;
        let done = progress(&token, 1, &format!("{tool} finished"));
        if tx.send(event(&done)).await.is_err() {
            return;
        }
        let _ = tx.send(event(&reply)).await;
    });
    event_stream(EventStream { rx }.boxed())
}

fn event_stream(body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    response
}
