//! Test support: start the demo server on 127.0.0.1:0 and talk to it over real HTTP.

#![allow(dead_code)] // each test file uses a different part

use airlock_demo::{DemoOptions, DemoServer};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// A running demo server; stops when dropped.
pub struct Demo {
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
}

impl Demo {
    pub async fn start(options: DemoOptions) -> Demo {
        let server = DemoServer::bind("127.0.0.1:0".parse().unwrap(), options)
            .await
            .unwrap();
        let url = server.url();
        assert!(
            url.starts_with("http://127.0.0.1:") && url.ends_with("/mcp"),
            "{url}"
        );
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Demo {
            url,
            stop: Some(stop),
        }
    }

    pub async fn default() -> Demo {
        Demo::start(DemoOptions::default()).await
    }

    pub fn client(&self) -> McpClient {
        McpClient {
            http: Client::builder(TokioExecutor::new()).build_http(),
            url: self.url.clone(),
            token: None,
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A buffered HTTP answer.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    pub fn session_id(&self) -> Option<String> {
        self.headers
            .get("mcp-session-id")
            .map(|v| v.to_str().unwrap().to_owned())
    }
}

pub struct McpClient {
    http: Client<HttpConnector, Full<Bytes>>,
    pub url: String,
    pub token: Option<String>,
}

impl McpClient {
    pub fn request(
        &self,
        method: Method,
        body: Bytes,
        headers: &[(&str, &str)],
    ) -> Request<Full<Bytes>> {
        let mut builder = Request::builder()
            .method(method)
            .uri(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if let Some(token) = &self.token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let mut request = builder.body(Full::new(body)).unwrap();
        for (name, value) in headers {
            // `insert`, not append: a caller's header replaces the default one.
            let name = http::HeaderName::from_bytes(name.as_bytes()).unwrap();
            request.headers_mut().insert(name, value.parse().unwrap());
        }
        request
    }

    pub async fn stream(&self, request: Request<Full<Bytes>>) -> Response<Incoming> {
        self.http.request(request).await.unwrap()
    }

    pub async fn send(&self, method: Method, body: Bytes, headers: &[(&str, &str)]) -> Reply {
        let response = self.stream(self.request(method, body, headers)).await;
        let (parts, body) = response.into_parts();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes(),
        }
    }

    /// POSTs JSON asking for plain JSON answers (no SSE); `headers` may override that.
    pub async fn post(&self, body: &Value, headers: &[(&str, &str)]) -> Reply {
        let mut all = vec![("accept", "application/json")];
        all.extend_from_slice(headers);
        self.send(Method::POST, Bytes::from(body.to_string()), &all)
            .await
    }

    /// Opens a session at `version` and returns its id.
    pub async fn initialize(&self, version: &str) -> String {
        let reply = self.post(&initialize_request(version), &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        let session = reply
            .session_id()
            .expect("initialize returns Mcp-Session-Id");
        let ack = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let ack = self.post(&ack, &[("mcp-session-id", &session)]).await;
        assert_eq!(ack.status, StatusCode::ACCEPTED);
        session
    }

    /// `tools/call` in a session; returns the `result` object.
    pub async fn call_tool(&self, session: &str, name: &str, arguments: Value) -> Value {
        let request = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                             "params": {"name": name, "arguments": arguments}});
        let reply = self.post(&request, &[("mcp-session-id", session)]).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        let mut body = reply.json();
        assert_eq!(body["id"], 7);
        body["result"].take()
    }

    /// Runs `query` and returns its structured content (asserting it succeeded).
    pub async fn query(&self, session: &str, sql: &str) -> Value {
        let mut result = self.call_tool(session, "query", json!({"sql": sql})).await;
        assert_eq!(result["isError"], false, "{result}");
        result["structuredContent"].take()
    }
}

pub fn initialize_request(version: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": version,
        "capabilities": {},
        "clientInfo": {"name": "airlock-demo-tests", "version": "0"}
    }})
}

/// The text of a tool result's first content block.
pub fn text_of(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap()
}
