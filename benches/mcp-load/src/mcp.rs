//! One MCP client over Streamable HTTP, as an agent would be: a session opened with
//! `initialize` on 2025-06-18, or the stateless 2026-07-28 revision (routing headers
//! and `_meta` on every request, no session). Every answer is checked: a benchmark
//! that counts refusals as calls measures nothing.

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use std::fmt;
use std::sync::Arc;

/// The revision of session mode.
pub const SESSION_REVISION: &str = "2025-06-18";
/// The stateless revision.
pub const STATELESS_REVISION: &str = "2026-07-28";

const SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
const PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
const MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
const MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");
/// What the MCP spec asks a client to accept on every POST.
const ACCEPT_BOTH: HeaderValue = HeaderValue::from_static("application/json, text/event-stream");

/// How a worker speaks MCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// `initialize` once per worker (2025-06-18), then calls in that session.
    Session,
    /// 2026-07-28: no session; `Mcp-Method`, `Mcp-Name` and `_meta` on each call.
    Stateless,
}

/// The HTTP/1.1 client of one run: keep-alive, one pooled connection per worker.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A pooled client that keeps up to `connections` idle connections.
pub fn http_client(connections: usize) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(connections)
        .build(connector)
}

/// What every worker of a run sends.
#[derive(Debug)]
pub struct Workload {
    url: Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
    mode: Mode,
    tool: HeaderValue,
    /// The request after its id: `"method":"tools/call","params":{...}}`.
    call_tail: String,
}

impl Workload {
    /// A `tools/call` of `tool` with `arguments`, sent to `url` with `headers`.
    pub fn new(
        url: Uri,
        headers: Vec<(HeaderName, HeaderValue)>,
        mode: Mode,
        tool: &str,
        arguments: Value,
    ) -> Result<Workload, CallError> {
        let mut params = json!({"name": tool, "arguments": arguments});
        if mode == Mode::Stateless {
            params["_meta"] = json!({
                "io.modelcontextprotocol/protocolVersion": STATELESS_REVISION,
                "io.modelcontextprotocol/clientCapabilities": {},
            });
        }
        let tool = HeaderValue::from_str(tool)
            .map_err(|_| CallError(format!("tool name {tool:?} cannot be sent as Mcp-Name")))?;
        Ok(Workload {
            url,
            headers,
            mode,
            tool,
            call_tail: format!("\"method\":\"tools/call\",\"params\":{params}}}"),
        })
    }
}

/// Why a call (or the session set-up) did not succeed.
#[derive(Debug, Clone)]
pub struct CallError(pub String);

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CallError {}

/// One simulated agent: its session (if any) and its request ids.
pub struct Worker {
    http: HttpClient,
    workload: Arc<Workload>,
    session: Option<HeaderValue>,
    next_id: u64,
}

impl Worker {
    /// A worker ready to call: in session mode, after `initialize` and
    /// `notifications/initialized`.
    pub async fn open(http: HttpClient, workload: Arc<Workload>) -> Result<Worker, CallError> {
        let mut worker = Worker {
            http,
            workload,
            session: None,
            next_id: 1,
        };
        if worker.workload.mode == Mode::Session {
            worker.initialize().await?;
        }
        Ok(worker)
    }

    async fn initialize(&mut self) -> Result<(), CallError> {
        let body = json!({
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {
                "protocolVersion": SESSION_REVISION,
                "capabilities": {},
                "clientInfo": {"name": "airlock-mcp-load", "version": env!("CARGO_PKG_VERSION")},
            }
        });
        let answer = self
            .exchange(self.request(Method::POST, body.to_string().into(), None))
            .await?;
        let session = answer.session.clone().ok_or_else(|| {
            CallError("initialize answered without an Mcp-Session-Id header".to_owned())
        })?;
        answer.message_for(0)?;
        self.session = Some(session);
        let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        let answer = self
            .exchange(self.request(
                Method::POST,
                Bytes::from_static(initialized.as_bytes()),
                None,
            ))
            .await?;
        if answer.status != StatusCode::ACCEPTED && answer.status != StatusCode::OK {
            return Err(answer.unexpected("notifications/initialized"));
        }
        Ok(())
    }

    /// One `tools/call`; succeeds only on a JSON-RPC result that is not an error.
    pub async fn call(&mut self) -> Result<(), CallError> {
        let id = self.next_id;
        self.next_id += 1;
        let body = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{id},{}",
            self.workload.call_tail
        );
        let answer = self
            .exchange(self.request(Method::POST, body.into(), Some("tools/call")))
            .await?;
        let message = answer.message_for(id)?;
        if let Some(error) = message.get("error") {
            return Err(CallError(format!("JSON-RPC error: {error}")));
        }
        match message.get("result") {
            Some(result) if result.get("isError") == Some(&Value::Bool(true)) => {
                Err(CallError(format!(
                    "the tool answered isError: {}",
                    snippet(&result.to_string())
                )))
            }
            Some(_) => Ok(()),
            None => Err(CallError(format!(
                "answer without result: {}",
                snippet(&message.to_string())
            ))),
        }
    }

    /// Ends the session (DELETE), so the upstream does not keep it until it expires.
    pub async fn close(self) {
        if self.session.is_some() {
            // The run is over: a failed DELETE changes no figure.
            let _ = self
                .exchange(self.request(Method::DELETE, Bytes::new(), None))
                .await;
        }
    }

    fn request(
        &self,
        method: Method,
        body: Bytes,
        mcp_method: Option<&str>,
    ) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = method;
        *request.uri_mut() = self.workload.url.clone();
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(ACCEPT, ACCEPT_BOTH);
        for (name, value) in &self.workload.headers {
            headers.insert(name.clone(), value.clone());
        }
        match (&self.session, self.workload.mode) {
            (Some(session), _) => {
                headers.insert(SESSION_ID, session.clone());
                headers.insert(PROTOCOL_VERSION, HeaderValue::from_static(SESSION_REVISION));
            }
            (None, Mode::Stateless) => {
                headers.insert(
                    PROTOCOL_VERSION,
                    HeaderValue::from_static(STATELESS_REVISION),
                );
                if let Some(method) = mcp_method {
                    if let Ok(value) = HeaderValue::from_str(method) {
                        headers.insert(MCP_METHOD, value);
                    }
                    headers.insert(MCP_NAME, self.workload.tool.clone());
                }
            }
            (None, Mode::Session) => {} // initialize itself
        }
        request
    }

    async fn exchange(&self, request: Request<Full<Bytes>>) -> Result<Answer, CallError> {
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| CallError(format!("HTTP request failed: {}", chain(&e))))?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| CallError(format!("reading the answer failed: {e}")))?
            .to_bytes();
        Ok(Answer {
            status: parts.status,
            event_stream: parts
                .headers
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/event-stream")),
            session: parts.headers.get(SESSION_ID).cloned(),
            body,
        })
    }
}

/// A buffered HTTP answer.
struct Answer {
    status: StatusCode,
    event_stream: bool,
    session: Option<HeaderValue>,
    body: Bytes,
}

impl Answer {
    /// The JSON-RPC message answering request `id`: the JSON body, or the SSE event
    /// carrying it (progress and other notifications before it are skipped).
    fn message_for(&self, id: u64) -> Result<Value, CallError> {
        if self.status != StatusCode::OK {
            return Err(self.unexpected("the request"));
        }
        let text = std::str::from_utf8(&self.body)
            .map_err(|_| CallError("the answer is not UTF-8".to_owned()))?;
        let messages = if self.event_stream {
            sse_messages(text)?
        } else {
            vec![parse(text)?]
        };
        messages
            .into_iter()
            .find(|m| m.get("id").and_then(Value::as_u64) == Some(id))
            .ok_or_else(|| CallError(format!("no answer with id {id} in: {}", snippet(text))))
    }

    fn unexpected(&self, what: &str) -> CallError {
        let body = String::from_utf8_lossy(&self.body);
        CallError(format!(
            "{what} was answered HTTP {}: {}",
            self.status,
            snippet(&body)
        ))
    }
}

/// The JSON messages of an SSE body (`data:` lines; events split by a blank line).
fn sse_messages(text: &str) -> Result<Vec<Value>, CallError> {
    let mut messages = Vec::new();
    let mut data = String::new();
    for line in text.lines().chain(std::iter::once("")) {
        if line.is_empty() {
            if !data.is_empty() {
                messages.push(parse(&data)?);
                data.clear();
            }
        } else if let Some(rest) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
        }
    }
    Ok(messages)
}

fn parse(text: &str) -> Result<Value, CallError> {
    serde_json::from_str(text)
        .map_err(|e| CallError(format!("the answer is not JSON ({e}): {}", snippet(text))))
}

fn snippet(text: &str) -> String {
    const MAX: usize = 240;
    match text.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(event_stream: bool, body: &str) -> Answer {
        Answer {
            status: StatusCode::OK,
            event_stream,
            session: None,
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn the_answer_is_found_among_notifications() {
        let body =
            "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n\
                    event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}\r\n\r\n";
        let message = answer(true, body).message_for(7).unwrap();
        assert_eq!(message["result"], json!({}));
        assert!(answer(true, body).message_for(8).is_err());
    }

    #[test]
    fn json_answers_and_refusals() {
        let ok = answer(false, r#"{"jsonrpc":"2.0","id":3,"result":{"content":[]}}"#);
        assert!(ok.message_for(3).is_ok());
        let mut refused = answer(false, r#"{"error":"no"}"#);
        refused.status = StatusCode::FORBIDDEN;
        let err = refused.message_for(3).unwrap_err();
        assert!(err.0.contains("403"), "{err}");
    }

    #[test]
    fn multi_line_data_is_joined() {
        let messages = sse_messages("data: {\"a\":\ndata: 1}\n\n").unwrap();
        assert_eq!(messages, vec![json!({"a": 1})]);
    }

    #[test]
    fn stateless_calls_carry_the_revision_in_meta() {
        let w = Workload::new(
            "http://127.0.0.1:1/mcp".parse().unwrap(),
            vec![],
            Mode::Stateless,
            "query",
            json!({"sql": "SELECT 1"}),
        )
        .unwrap();
        let request: Value =
            serde_json::from_str(&format!("{{\"jsonrpc\":\"2.0\",\"id\":1,{}", w.call_tail))
                .unwrap();
        assert_eq!(
            request["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"],
            STATELESS_REVISION
        );
        assert_eq!(request["params"]["name"], "query");
    }
}
