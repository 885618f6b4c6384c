//! What the audit end-to-end tests share: a real `airlock control-plane` process
//! (restartable on the same port and data directory, killable with SIGKILL), a proxy
//! configured to ship its audit events there, and the `airlock audit ...` CLI.
#![allow(dead_code)]

use crate::sdk_common::{repo_root, Process};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;

pub const NODE_TOKEN: &str = "audit-test-node-token";
pub const ADMIN_TOKEN: &str = "audit-test-admin-token";
pub const AUDITOR_TOKEN: &str = "audit-test-auditor-token";
pub const AGENT_KEY: &str = "audit-test-agent-key-0123456789";

fn sha(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// A control plane's files: config, data directory, trusted bundle key.
pub struct PlaneFiles {
    pub dir: TempDir,
}

impl PlaneFiles {
    pub fn new() -> PlaneFiles {
        let dir = tempfile::tempdir().expect("temp dir");
        airlock_bundle::write_keypair(&dir.path().join("release")).expect("bundle key");
        PlaneFiles { dir }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Writes the config for `listen` and returns its path.
    fn config(&self, listen: &str, data_dir: &Path) -> PathBuf {
        let text = format!(
            "listen = \"{listen}\"\ndata_dir = \"{}\"\ntrusted_keys = [\"release.pub\"]\n\
             [audit]\nsigning_key = \"audit-signing.key\"\n\
             [[tokens]]\nsubject = \"proxy-1\"\nsha256 = \"{}\"\nroles = [\"node\"]\n\
             [[tokens]]\nsubject = \"auditor\"\nsha256 = \"{}\"\nroles = [\"auditor\"]\n\
             [[tokens]]\nsubject = \"ops\"\nsha256 = \"{}\"\nroles = [\"admin\"]\n",
            data_dir.display(),
            sha(NODE_TOKEN),
            sha(AUDITOR_TOKEN),
            sha(ADMIN_TOKEN),
        );
        let path = self.dir.path().join("control-plane.toml");
        std::fs::write(&path, text).expect("write control-plane config");
        path
    }

    /// Runs `airlock control-plane` over `data_dir`, expecting it to refuse to
    /// start: its exit code and everything it printed.
    /// One that starts instead is killed after 20 s and reported with exit code
    /// 0 (and what it printed).
    pub fn start_refused(&self, data_dir: &Path) -> (i32, String) {
        use std::io::Read as _;
        let config = self.config("127.0.0.1:0", data_dir);
        let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
            .args(["control-plane", "--config"])
            .arg(&config)
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run airlock control-plane");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let code = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status.code().unwrap_or(-1);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break 0;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let mut text = String::new();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read>),
        ]
        .into_iter()
        .flatten()
        {
            let mut stream = stream;
            let _ = stream.read_to_string(&mut text);
        }
        (code, text)
    }

    /// Starts `airlock control-plane` on `listen` (e.g. `127.0.0.1:0`) over `data_dir`.
    pub fn start(&self, listen: &str, data_dir: &Path) -> Plane {
        let config = self.config(listen, data_dir);
        let mut command = Command::new(env!("CARGO_BIN_EXE_airlock"));
        command
            .args(["control-plane", "--config"])
            .arg(&config)
            .env("RUST_LOG", "warn");
        let (process, rest) = Process::start(
            "airlock control-plane",
            command,
            "airlock control-plane listening on ",
        );
        let url = rest
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        Plane { process, url }
    }
}

impl PlaneFiles {
    /// The public key proxies verify bundles with.
    pub fn bundle_key(&self) -> PathBuf {
        self.dir.path().join("release.pub")
    }

    /// Signs a copy of the repository's default policies and pushes it (active).
    pub fn publish_default_policies(&self, plane: &Plane) {
        let key = airlock_bundle::SigningKey::from_file(&self.dir.path().join("release.key"))
            .expect("bundle key");
        let built = airlock_bundle::build_from_dir(
            &repo_root().join("policies"),
            Some("audit-rev-1"),
            &key,
        )
        .expect("build the default policies");
        let path = self.dir.path().join("policies.tar.gz");
        std::fs::write(&path, built.bytes).expect("write the archive");
        let output = Command::new(env!("CARGO_BIN_EXE_airlock"))
            .args(["bundle", "push"])
            .arg(&path)
            .env("AIRLOCK_CONTROL_PLANE", &plane.url)
            .env("AIRLOCK_TOKEN", ADMIN_TOKEN)
            .output()
            .expect("run airlock bundle push");
        assert!(output.status.success(), "bundle push: {output:?}");
    }
}

/// A running control plane; SIGKILLed on drop.
pub struct Plane {
    pub process: Process,
    pub url: String,
}

impl Plane {
    pub fn listen(&self) -> String {
        self.url.trim_start_matches("http://").to_owned()
    }

    /// `airlock audit ARGS` against this control plane as the auditor: exit code
    /// and stdout.
    pub fn cli(&self, args: &[&str]) -> (i32, String) {
        cli(&self.url, args)
    }

    /// Every record, in order, as `airlock audit export` prints them.
    pub fn export(&self) -> Vec<Value> {
        let (code, out) = self.cli(&["audit", "export", "--format", "jsonl"]);
        assert_eq!(code, 0, "audit export failed: {out}");
        out.lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }
}

/// `airlock ARGS` with the auditor token against `url`: exit code and stdout+stderr.
pub fn cli(url: &str, args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(args)
        .env("AIRLOCK_CONTROL_PLANE", url)
        .env("AIRLOCK_TOKEN", AUDITOR_TOKEN)
        .current_dir(repo_root())
        .output()
        .expect("run the airlock CLI");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

/// A proxy in front of `upstream` shipping audit events to `control_plane_url`.
pub struct AuditedProxy {
    pub process: Process,
    pub base: String,
    _dir: TempDir,
}

impl AuditedProxy {
    /// A proxy that takes its policy from the control plane at `control_plane_url`
    /// (bundles signed by `bundle_key`) and ships its audit events there; `audit` is
    /// the body of the `[audit]` table. Waits until it serves a bundle.
    pub fn start(
        upstream: &str,
        control_plane_url: &str,
        bundle_key: &Path,
        audit: &str,
    ) -> AuditedProxy {
        Self::start_in(
            tempfile::tempdir().expect("temp dir"),
            upstream,
            control_plane_url,
            bundle_key,
            audit,
        )
    }

    /// As [`AuditedProxy::start`], with its files (config, `cache/` with the
    /// bundle and the audit checkpoint) in `dir`.
    pub fn start_in(
        dir: TempDir,
        upstream: &str,
        control_plane_url: &str,
        bundle_key: &Path,
        audit: &str,
    ) -> AuditedProxy {
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nsession_secret = \"audit-test-session-secret-0123456789\"\n\
             [[api_keys]]\nsubject = \"demo-agent\"\nsha256 = \"{}\"\ngroups = [\"agents\"]\n\
             [[upstreams]]\nname = \"demo\"\nurl = \"{upstream}\"\nlabels = {{ env = \"prod\" }}\n\
             [control_plane]\nurl = \"{control_plane_url}\"\ntoken = \"{NODE_TOKEN}\"\nnode_id = \"proxy-1\"\n\
             bundle_public_keys = [{:?}]\nbundle_cache_dir = \"cache\"\n\
             [audit]\n{audit}\n",
            sha(AGENT_KEY),
            bundle_key.display().to_string(),
        );
        let path = dir.path().join("airlock.toml");
        std::fs::write(&path, config).expect("write proxy config");
        let mut command = Command::new(env!("CARGO_BIN_EXE_airlock"));
        command
            .args(["proxy", "--config"])
            .arg(&path)
            .env("RUST_LOG", "warn");
        let (process, base) =
            Process::start("airlock proxy", command, "airlock proxy listening on");
        let proxy = AuditedProxy {
            process,
            base: base.trim_end_matches('/').to_owned(),
            _dir: dir,
        };
        assert!(
            eventually(30, || get(&proxy.base, "/readyz")
                .starts_with("HTTP/1.1 200")),
            "the proxy never got its bundle from the control plane"
        );
        proxy
    }

    pub fn mcp_url(&self) -> String {
        format!("{}/mcp/demo", self.base)
    }

    /// The newest audit checkpoint this proxy holds, as written to its file.
    pub fn checkpoint_file(&self) -> PathBuf {
        self._dir.path().join("cache").join("audit-checkpoint")
    }

    /// `/readyz`'s `audit_log` object.
    pub fn audit_log(&self) -> Value {
        let response = get(&self.base, "/readyz");
        let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
        serde_json::from_str::<Value>(body).unwrap_or_default()["audit_log"].clone()
    }
}

pub use crate::sdk_common::get;

/// Polls `check` every 100 ms for up to `secs` seconds.
pub fn eventually(secs: u64, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}

/// Appends `count` events named `{prefix}-{n}` straight to `AuditService.Append`
/// as a node would, one batch; returns the log's last sequence number.
pub async fn append_direct(url: &str, prefix: &str, count: u64) -> u64 {
    use airlock_control_plane::api;
    let events = (1..=count)
        .map(|n| api::AuditEvent {
            event_id: format!("{prefix}-{n}"),
            node_id: "proxy-2".into(),
            unix_ms: 1_700_000_000_000 + n,
            direction: "client_to_server".into(),
            method: "tools/call".into(),
            payload_json: format!("{{\"n\":{n}}}"),
            verdict: "allow".into(),
            ..Default::default()
        })
        .collect();
    let mut client = api::audit_service_client::AuditServiceClient::connect(url.to_owned())
        .await
        .expect("connect");
    let batch = api::AuditServiceAppendRequest {
        batch: 1,
        events,
        checkpoint: String::new(),
    };
    let mut request = tonic::Request::new(tokio_stream::iter(vec![batch]));
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {NODE_TOKEN}").parse().expect("header"),
    );
    let mut acks = client.append(request).await.expect("append").into_inner();
    let ack = acks.message().await.expect("ack").expect("an ack");
    ack.last_seq
}

impl Plane {
    /// The newest checkpoint, as `airlock audit verify --output json` reports it.
    pub fn newest_checkpoint(&self) -> String {
        let (code, out) = self.cli(&["audit", "verify", "--output", "json"]);
        assert_eq!(code, 0, "{out}");
        let report: Value = serde_json::from_str(out.trim()).expect("verify json");
        report["checkpoint"].as_str().unwrap_or_default().to_owned()
    }
}
