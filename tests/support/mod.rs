//! Test support for the proxy's end-to-end tests: start `airlock demo-server` and
//! `airlock proxy` as real child processes on 127.0.0.1 (killed on drop), a small
//! recording upstream, and an MCP client over hyper that keeps its session.

#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

pub mod fleet;
pub mod recording;
pub mod tls;

/// API keys the proxies under test know.
pub const AGENT_KEY: &str = "agent-key-0123456789";
pub const READONLY_KEY: &str = "readonly-key-0123456789";
pub const OTHER_KEY: &str = "other-key-0123456789";
/// The token the demo server requires; the proxy injects it.
pub const UPSTREAM_TOKEN: &str = "upstream-token-abcdef";

/// A child process killed (and reaped) on drop.
pub struct ChildGuard {
    child: Child,
    pub url: String,
}

impl ChildGuard {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits up to `within` for the process to exit by itself;
    /// `None` if it was still running (it is then killed on drop).
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid} failed");
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `airlock ARGS` and waits for its stdout line `PREFIX http://...`.
fn spawn_airlock(args: &[&str], envs: &[(&str, &str)], prefix: &str) -> ChildGuard {
    let mut command = Command::new(env!("CARGO_BIN_EXE_airlock"));
    command
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in envs {
        command.env(k, v);
    }
    command.env("RUST_LOG", "warn");
    let mut child = command.spawn().expect("spawn airlock");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        // Keep draining so the child never blocks on a full pipe.
        for _ in lines {}
    });
    let mut guard = ChildGuard {
        child,
        url: String::new(),
    };
    let line = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(line) => line,
        Err(_) => panic!(
            "`airlock {}` did not print its listening line",
            args.join(" ")
        ),
    };
    guard.url = line
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .trim()
        .to_owned();
    guard
}

/// `airlock demo-server` requiring `UPSTREAM_TOKEN`; its `url` is the MCP endpoint.
pub fn demo_server() -> ChildGuard {
    spawn_airlock(
        &[
            "demo-server",
            "--listen",
            "127.0.0.1:0",
            "--require-token",
            UPSTREAM_TOKEN,
        ],
        &[],
        "airlock demo-server listening on ",
    )
}

/// The workspace's default policies.
pub fn policies_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

fn sha256_hex(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Builds a proxy config (temp dir, copy of policies/) and starts `airlock proxy`.
pub struct ProxyBuilder {
    upstreams: Vec<String>,
    policy: Option<String>,
    extra_server: String,
    envs: Vec<(String, String)>,
    control_plane: Option<String>,
    tables: String,
}

impl Default for ProxyBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ProxyBuilder {
    pub fn new() -> Self {
        Self {
            upstreams: Vec::new(),
            policy: None,
            extra_server: String::new(),
            envs: vec![("AIRLOCK_TEST_UPSTREAM_TOKEN".into(), UPSTREAM_TOKEN.into())],
            control_plane: None,
            tables: String::new(),
        }
    }

    /// An extra top-level table, e.g. "[telemetry]\notlp_endpoint = ...".
    pub fn table(mut self, table: &str) -> Self {
        self.tables.push_str(table);
        self.tables.push('\n');
        self
    }

    /// Takes the policy from a control plane: `table` is the `[control_plane]`
    /// table (absolute paths), replacing `[policy] dir`.
    pub fn control_plane(mut self, table: &str) -> Self {
        self.control_plane = Some(table.to_owned());
        self
    }

    /// Adds an upstream; the demo's token is injected as `Authorization`.
    pub fn upstream(mut self, name: &str, url: &str, env: &str) -> Self {
        self.upstreams.push(format!(
            "[[upstreams]]\nname = \"{name}\"\nurl = \"{url}\"\nlabels = {{ env = \"{env}\" }}\n\
             headers = {{ Authorization = \"Bearer ${{AIRLOCK_TEST_UPSTREAM_TOKEN}}\", X-Injected = \"by-airlock\" }}\n"
        ));
        self
    }

    /// Extra lines for the `[server]` table.
    pub fn server_line(mut self, line: &str) -> Self {
        self.extra_server.push_str(line);
        self.extra_server.push('\n');
        self
    }

    /// Uses this one Rego module instead of a copy of the default policies.
    pub fn policy(mut self, rego: &str) -> Self {
        self.policy = Some(rego.to_owned());
        self
    }

    pub fn start(self) -> RunningProxy {
        let (dir, path) = self.write_config();
        let envs: Vec<(&str, &str)> = self
            .envs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let child = spawn_airlock(
            &["proxy", "--config", path.to_str().expect("utf-8 path")],
            &envs,
            "airlock proxy listening on ",
        );
        RunningProxy { child, _dir: dir }
    }

    /// Runs `airlock proxy` on a config it must refuse; returns its stderr.
    pub fn start_refused(self) -> String {
        let (_dir, path) = self.write_config();
        let output = Command::new(env!("CARGO_BIN_EXE_airlock"))
            .args(["proxy", "--config", path.to_str().expect("utf-8 path")])
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("run airlock proxy");
        assert!(!output.status.success(), "the proxy accepted the config");
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    /// Writes the config (and a copy of the policies) into a new temp dir.
    fn write_config(&self) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let policies = dir.path().join("policies");
        std::fs::create_dir(&policies).expect("mkdir");
        if let Some(rego) = &self.policy {
            std::fs::write(policies.join("test.rego"), rego).expect("write policy");
        }
        for entry in std::fs::read_dir(policies_dir()).expect("policies/") {
            let entry = entry.expect("entry");
            if entry.path().is_file() && self.policy.is_none() {
                std::fs::copy(entry.path(), policies.join(entry.file_name())).expect("copy policy");
            }
        }
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nallowed_origins = [\"http://localhost:6274\"]\n\
             session_secret = \"test-session-secret-0123456789abcdef\"\n{extra}\n\
             [policy]\n{policy}eval_timeout_ms = 1000\n{control_plane}\n{tables}\n\
             [[api_keys]]\nsubject = \"demo-agent\"\nsha256 = \"{agent}\"\ngroups = [\"agents\"]\nkind = \"agent\"\n\n\
             [[api_keys]]\nsubject = \"reader\"\nsha256 = \"{readonly}\"\ngroups = [\"readonly\"]\nkind = \"agent\"\n\n\
             [[api_keys]]\nsubject = \"other-agent\"\nsha256 = \"{other}\"\ngroups = [\"agents\"]\nkind = \"agent\"\n\n{upstreams}",
            extra = self.extra_server,
            policy = if self.control_plane.is_some() { "" } else { "dir = \"policies\"\n" },
            control_plane = self.control_plane.as_deref().unwrap_or_default(),
            tables = self.tables,
            agent = sha256_hex(AGENT_KEY),
            readonly = sha256_hex(READONLY_KEY),
            other = sha256_hex(OTHER_KEY),
            upstreams = self.upstreams.join("\n"),
        );
        let path = dir.path().join("airlock.toml");
        std::fs::write(&path, config).expect("write config");
        // It holds the session secret: readable by its owner only (else the proxy
        // warns at start-up).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .expect("chmod config");
        }
        (dir, path)
    }
}

/// A running proxy; `url` is `http://127.0.0.1:PORT`.
pub struct RunningProxy {
    pub child: ChildGuard,
    _dir: tempfile::TempDir,
}

impl RunningProxy {
    /// The proxy's process id.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    pub fn url(&self) -> &str {
        &self.child.url
    }

    /// A client of `/mcp/{server}` with `key` (None: no Authorization header).
    pub fn client(&self, server: &str, key: Option<&str>) -> McpClient {
        McpClient::new(format!("{}/mcp/{server}", self.url()), key)
    }
}

/// The demo server and a proxy in front of it (upstream `demo`, labelled env=prod).
pub struct DemoStack {
    pub demo: ChildGuard,
    pub proxy: RunningProxy,
}

impl DemoStack {
    pub fn start() -> DemoStack {
        let demo = demo_server();
        let proxy = ProxyBuilder::new()
            .upstream("demo", &demo.url, "prod")
            .start();
        DemoStack { demo, proxy }
    }

    pub fn client(&self, key: &str) -> McpClient {
        self.proxy.client("demo", Some(key))
    }

    /// An initialized session straight to the demo server (bypassing the proxy), to
    /// check what really happened upstream.
    pub async fn direct(&self) -> McpClient {
        let mut client = McpClient::new(self.demo.url.clone(), Some(UPSTREAM_TOKEN));
        client.initialize().await;
        client
    }
}

/// One HTTP answer, with the JSON-RPC messages it carried (JSON or SSE).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The JSON body, or every SSE event's data, in order.
    pub messages: Vec<Value>,
    /// Whether the answer was an SSE stream.
    pub sse: bool,
}

impl Reply {
    /// The last message (the response, after any progress notifications).
    pub fn last(&self) -> &Value {
        self.messages
            .last()
            .unwrap_or_else(|| panic!("no message in reply: {self:?}"))
    }

    pub fn error_code(&self) -> Option<i64> {
        self.last().get("error").and_then(|e| e["code"].as_i64())
    }
}

/// A minimal MCP Streamable HTTP client.
pub struct McpClient {
    url: String,
    key: Option<String>,
    pub session: Option<String>,
    pub protocol: Option<String>,
    http: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    next_id: i64,
}

impl McpClient {
    pub fn new(url: String, key: Option<&str>) -> Self {
        Self {
            url,
            key: key.map(str::to_owned),
            session: None,
            protocol: None,
            http: Client::builder(TokioExecutor::new()).build_http(),
            next_id: 1,
        }
    }

    /// `initialize` (2025-06-18) + `notifications/initialized`; keeps the session id.
    pub async fn initialize(&mut self) -> Reply {
        self.initialize_as("2025-06-18").await
    }

    /// `initialize` asking for `revision`.
    /// Sends `initialize` for `revision` and returns the reply as it is, whatever
    /// the status (for tests of refusals); keeps no session.
    pub async fn try_initialize(&self, revision: &str) -> Reply {
        self.post(
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": revision, "capabilities": {},
            "clientInfo": {"name": "airlock-e2e", "version": "0"}}}),
        )
        .await
    }

    pub async fn initialize_as(&mut self, revision: &str) -> Reply {
        let reply = self.try_initialize(revision).await;
        assert_eq!(reply.status, StatusCode::OK, "initialize failed: {reply:?}");
        self.session = reply
            .headers
            .get("mcp-session-id")
            .map(|v| v.to_str().expect("ascii").to_owned());
        self.protocol = Some(revision.to_owned());
        let done = self
            .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        assert_eq!(
            done.status,
            StatusCode::ACCEPTED,
            "initialized failed: {done:?}"
        );
        reply
    }

    pub fn next_id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    /// `tools/call NAME ARGS` as JSON (no SSE).
    pub async fn call_tool(&mut self, name: &str, arguments: Value) -> Reply {
        let id = self.next_id();
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": arguments}});
        self.post(body).await
    }

    pub async fn post(&self, body: Value) -> Reply {
        self.send(
            Method::POST,
            Bytes::from(body.to_string()),
            &[("accept", "application/json")],
        )
        .await
    }

    /// A raw POST body with extra headers.
    pub async fn post_raw(&self, body: impl Into<Bytes>, headers: &[(&str, &str)]) -> Reply {
        self.send(Method::POST, body.into(), headers).await
    }

    /// Sends a request and returns the response with its body unread.
    pub async fn open(
        &self,
        method: Method,
        body: Bytes,
        headers: &[(&str, &str)],
    ) -> hyper::Response<hyper::body::Incoming> {
        let mut request = Request::builder()
            .method(method)
            .uri(&self.url)
            .header("content-type", "application/json")
            .body(Full::new(body))
            .expect("request");
        let map = request.headers_mut();
        if let Some(key) = &self.key {
            map.insert(
                "authorization",
                HeaderValue::from_str(&format!("Bearer {key}")).expect("key"),
            );
        }
        if let Some(session) = &self.session {
            map.insert(
                "mcp-session-id",
                HeaderValue::from_str(session).expect("session"),
            );
        }
        if let Some(protocol) = &self.protocol {
            map.insert(
                "mcp-protocol-version",
                HeaderValue::from_str(protocol).expect("protocol"),
            );
        }
        if !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("accept"))
        {
            map.insert(
                "accept",
                HeaderValue::from_static("application/json, text/event-stream"),
            );
        }
        for (name, value) in headers {
            map.insert(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        let response = tokio::time::timeout(Duration::from_secs(30), self.http.request(request))
            .await
            .expect("timed out waiting for the proxy")
            .expect("request failed");
        response
    }

    pub async fn send(&self, method: Method, body: Bytes, headers: &[(&str, &str)]) -> Reply {
        let response = self.open(method, body, headers).await;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        let sse = parts.headers.get("content-type").is_some_and(|v| {
            v.to_str()
                .unwrap_or_default()
                .starts_with("text/event-stream")
        });
        let messages = if sse {
            sse_messages(&body)
        } else {
            serde_json::from_slice(&body).into_iter().collect()
        };
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
            messages,
            sse,
        }
    }
}

/// The data of each SSE event, parsed as JSON (events without data skipped).
pub fn sse_messages(body: &[u8]) -> Vec<Value> {
    let text = String::from_utf8_lossy(body).replace("\r\n", "\n");
    text.split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|line| {
                    line.strip_prefix("data:")
                        .map(|d| d.strip_prefix(' ').unwrap_or(d))
                })
                .collect();
            if data.is_empty() {
                None
            } else {
                serde_json::from_str(&data.join("\n")).ok()
            }
        })
        .collect()
}

/// Counts rows of `customers` straight on the demo server.
pub async fn count_customers(stack: &DemoStack) -> i64 {
    let mut direct = stack.direct().await;
    let reply = direct
        .call_tool("query", json!({"sql": "SELECT count(*) FROM customers"}))
        .await;
    let rows = &reply.last()["result"]["structuredContent"]["rows"];
    rows[0][0]
        .as_i64()
        .unwrap_or_else(|| panic!("no count in {reply:?}"))
}

/// Whether `customers` still exists, asked straight on the demo server.
pub async fn customers_table_exists(stack: &DemoStack) -> bool {
    let mut direct = stack.direct().await;
    let reply = direct
        .call_tool("query", json!({"sql": "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='customers'"}))
        .await;
    reply.last()["result"]["structuredContent"]["rows"][0][0].as_i64() == Some(1)
}

/// Shared recorded requests: headers and JSON body (see `recording`).
pub type Recorded = Arc<Mutex<Vec<(HeaderMap, Value)>>>;
