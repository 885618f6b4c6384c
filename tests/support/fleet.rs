//! Fleet test support: `airlock control-plane` as a child process (SIGKILL-able and
//! restartable on the same data dir and port), signing keys, bundle directories,
//! proxies that follow the control plane, the `airlock` CLI, and `/readyz` polling.

use super::{spawn_airlock, ChildGuard, ProxyBuilder, RunningProxy};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The operator's token (admin) and the proxies' token (node).
pub const ADMIN_TOKEN: &str = "fleet-admin-token-0123456789";
pub const NODE_TOKEN: &str = "fleet-node-token-0123456789";

/// A policy that refuses every `tools/call` (and allows the MCP handshake).
pub const LOCKDOWN: &str = "package airlock\n\nimport rego.v1\n\n\
default decision := {\"verdict\": \"deny\", \"reasons\": [\"fleet.lockdown\"], \"message\": \"tool calls are locked down\"}\n\n\
decision := {\"verdict\": \"allow\"} if input.message.method != \"tools/call\"\n";

/// A scratch directory for keys, bundles and control-plane data.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Workspace {
        Workspace {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `airlock bundle keygen -o NAME`; returns (NAME.key, NAME.pub).
    pub fn keygen(&self, name: &str) -> (PathBuf, PathBuf) {
        let prefix = self.path(name);
        let out = airlock(&["bundle", "keygen", "-o", prefix.to_str().unwrap()], &[]);
        assert!(out.status.success(), "keygen: {}", text(&out));
        (prefix.with_extension("key"), prefix.with_extension("pub"))
    }

    /// A policy directory NAME holding `files` (name, content).
    pub fn policy_dir(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        for (file, content) in files {
            std::fs::write(dir.join(file), content).unwrap();
        }
        dir
    }

    /// A copy of the repository's default policies as NAME.
    pub fn default_policies(&self, name: &str) -> PathBuf {
        let dir = self.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(super::policies_dir()).unwrap() {
            let entry = entry.unwrap();
            if entry.path().is_file() {
                std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
            }
        }
        dir
    }
}

/// `airlock control-plane` trusting `keys`, on `port` (0: any), data in `data_dir`.
pub struct ControlPlaneProcess {
    pub child: ChildGuard,
    pub port: u16,
}

impl ControlPlaneProcess {
    pub fn start(ws: &Workspace, data_dir: &Path, port: u16, keys: &[&Path]) -> Self {
        let keys: Vec<String> = keys
            .iter()
            .map(|k| format!("{:?}", k.display().to_string()))
            .collect();
        let config = format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = {data:?}\ntrusted_keys = [{keys}]\n\n\
             [[tokens]]\nsubject = \"ops\"\nsha256 = \"{admin}\"\nroles = [\"admin\"]\n\n\
             [[tokens]]\nsubject = \"fleet\"\nsha256 = \"{node}\"\nroles = [\"node\"]\n",
            data = data_dir.display().to_string(),
            keys = keys.join(", "),
            admin = hex::encode(Sha256::digest(ADMIN_TOKEN)),
            node = hex::encode(Sha256::digest(NODE_TOKEN)),
        );
        let path = ws.path(&format!("control-plane-{}.toml", rand::random::<u32>()));
        std::fs::write(&path, config).unwrap();
        let child = spawn_airlock(
            &["control-plane", "--config", path.to_str().unwrap()],
            &[],
            "airlock control-plane listening on ",
        );
        let port = child
            .url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port in the listening line");
        ControlPlaneProcess { child, port }
    }

    pub fn url(&self) -> &str {
        &self.child.url
    }

    /// SIGKILL: no graceful shutdown, no flush beyond what was acknowledged.
    pub fn kill(self) {
        drop(self.child);
    }

    /// `airlock ARGS` against this control plane as the admin.
    pub fn cli(&self, args: &[&str]) -> Output {
        airlock(
            args,
            &[
                ("AIRLOCK_CONTROL_PLANE", self.url()),
                ("AIRLOCK_TOKEN", ADMIN_TOKEN),
            ],
        )
    }

    /// `airlock bundle push PATH [ARGS]`, asserting success.
    pub fn push(&self, path: &Path, args: &[&str]) -> String {
        let mut all = vec!["bundle", "push", path.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = self.cli(&all);
        assert!(out.status.success(), "push failed: {}", text(&out));
        text(&out)
    }

    /// `airlock nodes list --output json`.
    pub fn nodes(&self) -> Vec<Value> {
        let out = self.cli(&["nodes", "list", "--output", "json"]);
        assert!(out.status.success(), "nodes list: {}", text(&out));
        serde_json::from_slice(&out.stdout).expect("nodes json")
    }
}

/// The `[control_plane]` table of a proxy following `url`.
pub fn follower_table(url: &str, node_id: &str, keys: &[&Path], cache: Option<&Path>) -> String {
    let keys: Vec<String> = keys
        .iter()
        .map(|k| format!("{:?}", k.display().to_string()))
        .collect();
    let cache = cache
        .map(|c| format!("bundle_cache_dir = {:?}\n", c.display().to_string()))
        .unwrap_or_default();
    format!(
        "[control_plane]\nurl = \"{url}\"\ntoken = \"{NODE_TOKEN}\"\nnode_id = \"{node_id}\"\n\
         bundle_public_keys = [{keys}]\nheartbeat_s = 1\n{cache}",
        keys = keys.join(", "),
    )
}

/// A proxy in front of `demo_url` that takes its policy from `url`.
pub fn follower(
    demo_url: &str,
    url: &str,
    node_id: &str,
    keys: &[&Path],
    cache: Option<&Path>,
) -> RunningProxy {
    ProxyBuilder::new()
        .upstream("demo", demo_url, "prod")
        .control_plane(&follower_table(url, node_id, keys, cache))
        .start()
}

/// Runs `airlock ARGS` with extra environment variables.
pub fn airlock(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_airlock"));
    command
        .args(args)
        .env_remove("AIRLOCK_TOKEN")
        .env_remove("AIRLOCK_CONTROL_PLANE");
    for (k, v) in envs {
        command.env(k, v);
    }
    command.output().expect("run airlock")
}

/// stdout and stderr of a finished command, for assertions and messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `GET /readyz`: (status, body).
pub async fn readyz(proxy: &RunningProxy) -> (u16, Value) {
    use http_body_util::{BodyExt, Empty};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<bytes::Bytes>>();
    let uri: hyper::Uri = format!("{}/readyz", proxy.url()).parse().unwrap();
    let response = client.get(uri).await.expect("readyz");
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Waits (up to `within`) until the proxy serves `revision`.
pub async fn wait_for_revision(proxy: &RunningProxy, revision: &str, within: Duration) {
    let started = Instant::now();
    loop {
        let (status, body) = readyz(proxy).await;
        if status == 200 && body["revision"] == revision {
            return;
        }
        assert!(
            started.elapsed() < within,
            "proxy {} still serves {body} after {within:?}, expected {revision}",
            proxy.url()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (up to `within`) until `check` holds for `airlock nodes list`.
pub async fn wait_for_nodes(
    plane: &ControlPlaneProcess,
    within: Duration,
    check: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let nodes = plane.nodes();
        if check(&nodes) {
            return nodes;
        }
        assert!(started.elapsed() < within, "nodes never matched: {nodes:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The JSON-RPC error of a `tools/call` reply, as (code, first reason).
pub fn refusal(reply: &super::Reply) -> Option<(i64, String)> {
    let error = reply.last().get("error")?;
    Some((
        error["code"].as_i64()?,
        error["data"]["reasons"][0]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    ))
}

/// Builds a signed archive of `dir` in process (no compile, no tests: the control
/// plane must catch those) and writes it next to the directory.
pub fn archive(dir: &Path, revision: &str, key: &Path) -> PathBuf {
    let key = airlock_bundle::SigningKey::from_file(key).unwrap();
    let built = airlock_bundle::build_from_dir(dir, Some(revision), &key).unwrap();
    let path = dir.with_extension("tar.gz");
    std::fs::write(&path, built.bytes).unwrap();
    path
}

/// A `[[api_keys]]`-authenticated, initialized client of a proxy's demo upstream.
pub async fn agent(proxy: &RunningProxy) -> super::McpClient {
    let mut client = proxy.client("demo", Some(super::AGENT_KEY));
    client.initialize().await;
    client
}

/// `query SELECT 1` through `proxy`: `None` when allowed, else (code, reason).
pub async fn query_refusal(proxy: &RunningProxy) -> Option<(i64, String)> {
    let mut client = agent(proxy).await;
    let reply = client
        .call_tool(
            "query",
            serde_json::json!({"sql": "SELECT count(*) FROM customers"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    refusal(&reply)
}

/// The value printed after `prefix` on one of `airlock dev`'s `lines`.
pub fn value_after<'a>(lines: &'a [String], prefix: &str) -> &'a str {
    lines
        .iter()
        .find_map(|l| l.trim().strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line in {lines:#?}"))
        .trim()
}

/// `airlock dev` on free ports with `data_dir`; returns it and its printed lines.
pub fn spawn_dev(data_dir: &Path) -> (ChildGuard, Vec<String>) {
    spawn_dev_with(data_dir, &[])
}

/// [`spawn_dev`] with more arguments.
pub fn spawn_dev_with(data_dir: &Path, extra: &[&str]) -> (ChildGuard, Vec<String>) {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args([
            "dev",
            "--port",
            "0",
            "--control-plane-port",
            "0",
            "--data-dir",
        ])
        .arg(data_dir)
        .args(extra)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn airlock dev");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let guard = ChildGuard {
        child,
        url: String::new(),
    };
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) {
        let done = line.starts_with("Press Ctrl-C");
        lines.push(line);
        if done {
            return (guard, lines);
        }
    }
    panic!("airlock dev did not print its instructions: {lines:?}");
}
