//! A real, tiny MCP-ish upstream that records the headers of every request it gets,
//! (and every body), to check what crosses the proxy. It answers each JSON-RPC
//! request with an empty result and opens a session on `initialize`; when the client
//! accepts SSE, `tools/call` is answered with a stream that first asks the client for
//! `sampling/createMessage` (id "s1") and `elicitation/create` (id "s2"), and
//! `tools/list` with a stream listing `query` and `execute`; a GET opens a stream
//! with the same two server requests. `arguments.hold_ms` holds an SSE answer's result
//! back; `arguments.delay_ms` delays the whole answer. It runs on the test's
//! runtime and stops with it.

use super::Recorded;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

/// A running recording upstream.
pub struct RecordingUpstream {
    pub url: String,
    pub recorded: Recorded,
}

impl RecordingUpstream {
    pub async fn start() -> RecordingUpstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/mcp", listener.local_addr().expect("addr"));
        let recorded: Recorded = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::clone(&recorded);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let recorded = Arc::clone(&shared);
                let service = service_fn(move |request| answer(request, Arc::clone(&recorded)));
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        RecordingUpstream { url, recorded }
    }
}

type Body = BoxBody<Bytes, Infallible>;

async fn answer(
    request: Request<Incoming>,
    recorded: Recorded,
) -> Result<Response<Body>, Infallible> {
    Ok(reply(request, recorded).await)
}

async fn reply(request: Request<Incoming>, recorded: Recorded) -> Response<Body> {
    let headers = request.headers().clone();
    if request.method() == hyper::Method::GET {
        // The server's own stream: the same server requests, then a message "g".
        recorded.lock().expect("lock").push((headers, Value::Null));
        return sse(&json!({"method": "tools/call"}), &json!("g")).map(BodyExt::boxed);
    }
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let message: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    recorded
        .lock()
        .expect("lock")
        .push((headers.clone(), message.clone()));
    let wants_sse = headers
        .get("accept")
        .is_some_and(|v| v.to_str().unwrap_or_default().contains("text/event-stream"));
    let Some(id) = message
        .get("id")
        .filter(|_| message.get("method").is_some())
    else {
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::ACCEPTED;
        return response.map(BodyExt::boxed);
    };
    if let Some(delay_ms) = message["params"]["arguments"]["delay_ms"].as_u64() {
        // A slow server: nothing, not even headers, before the delay.
        tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
    }
    if let Some(hold_ms) = message["params"]["arguments"]["hold_ms"].as_u64() {
        return held(id.clone(), hold_ms);
    }
    if wants_sse && (message["method"] == "tools/call" || message["method"] == "tools/list") {
        return sse(&message, id).map(BodyExt::boxed);
    }
    let result = if message["method"] == "tools/list" {
        tools()
    } else {
        json!({})
    };
    let reply = json!({"jsonrpc": "2.0", "id": id, "result": result});
    let mut response = Response::new(Full::new(Bytes::from(reply.to_string())));
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().expect("value"));
    if message["method"] == "initialize" {
        response
            .headers_mut()
            .insert("mcp-session-id", "rec-session-1".parse().expect("value"));
        response
            .headers_mut()
            .insert("set-cookie", "upstream=secret".parse().expect("value"));
    }
    response.map(BodyExt::boxed)
}

/// An SSE answer whose result comes `hold_ms` after its first event, to prove the
/// proxy forwards events as they arrive.
fn held(id: Value, hold_ms: u64) -> Response<Body> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        let first = json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": "h", "progress": 0}});
        let _ = tx.send(Bytes::from(format!("data: {first}\n\n"))).await;
        tokio::time::sleep(std::time::Duration::from_millis(hold_ms)).await;
        let done = json!({"jsonrpc": "2.0", "id": id, "result": {"content": []}});
        let _ = tx.send(Bytes::from(format!("data: {done}\n\n"))).await;
    });
    let body = ChannelBody(rx).boxed();
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert("content-type", "text/event-stream".parse().expect("value"));
    response
}

/// A body fed by a channel, one frame per message.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}

fn tools() -> Value {
    json!({"tools": [{"name": "query", "inputSchema": {"type": "object"}}, {"name": "execute", "inputSchema": {"type": "object"}}]})
}

/// The SSE answer; the final result's JSON is split over two `data` lines.
fn sse(message: &Value, id: &Value) -> Response<Full<Bytes>> {
    let mut text = String::new();
    if message["method"] == "tools/call" {
        let sampling = json!({"jsonrpc": "2.0", "id": "s1", "method": "sampling/createMessage", "params": {"messages": [], "maxTokens": 10}});
        let elicit = json!({"jsonrpc": "2.0", "id": "s2", "method": "elicitation/create", "params": {"message": "ok?", "requestedSchema": {"type": "object"}}});
        text.push_str(&format!("event: message\nid: 1\ndata: {sampling}\n\n"));
        text.push_str(&format!(
            "event: message\r\nid: 2\r\ndata: {elicit}\r\n\r\n"
        ));
        text.push_str(": keep-alive\n\n");
        text.push_str(&format!("id: 3\ndata: {{\"jsonrpc\":\"2.0\",\ndata: \"id\":{id},\"result\":{{\"content\":[]}}}}\n\n"));
    } else {
        let reply = json!({"jsonrpc": "2.0", "id": id, "result": tools()});
        text.push_str(&format!("event: message\ndata: {reply}\n\n"));
    }
    let mut response = Response::new(Full::new(Bytes::from(text)));
    response
        .headers_mut()
        .insert("content-type", "text/event-stream".parse().expect("value"));
    response
}
