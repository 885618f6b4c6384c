//! What the approval end-to-end tests share: a real `airlock control-plane` (its own
//! sled directory, a fixed loopback port so it can be killed and restarted under the
//! proxy), `airlock demo-server`, and an `airlock proxy` with `[control_plane]`, all
//! child processes on 127.0.0.1 killed on drop; reviewers act over gRPC with their
//! own tokens.

#![allow(dead_code)]

use crate::sdk_common::{
    copy_dir, demo_process, fresh_key, node22, repo_root, run_json_client, wait_ready, Process,
};
use airlock_control_plane::api;
use api::approval_service_client::ApprovalServiceClient;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The proxy's node token.
pub const NODE: &str = "node-token-approvals";
/// Reviewers: two DBAs, one security reviewer, and a reviewer token for the agent's
/// own subject (`demo-agent`, to try self-approval).
pub const DANA: &str = "dana-token-dba";
pub const OMAR: &str = "omar-token-dba";
pub const SAM: &str = "sam-token-security";
pub const SELF: &str = "demo-agent-token-dba";
pub const ADMIN: &str = "admin-token";
/// Reads the audit log (sessions) and lists approvals; decides nothing.
pub const AUDITOR: &str = "auditor-token";

fn sha(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The three processes and how to reach them.
pub struct ApprovalStack {
    pub proxy: Process,
    pub control: Option<Process>,
    pub demo: Process,
    pub mcp_url: String,
    pub api_key: String,
    /// The control plane's gRPC URL.
    pub cp_url: String,
    /// The reviewer page, `http://127.0.0.1:PORT/ui`.
    pub ui_url: String,
    cp_config: PathBuf,
    pub dir: TempDir,
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

impl ApprovalStack {
    /// Starts everything; `approval` replaces the policy's approval settings for
    /// `sql.write_on_prod` (a write on the prod demo database).
    pub fn start(approval: Value) -> ApprovalStack {
        Self::start_with(approval, "")
    }

    /// Like [`ApprovalStack::start`], with `cp_extra` appended to the control plane's
    /// config (e.g. a `[webhooks]` table).
    pub fn start_with(approval: Value, cp_extra: &str) -> ApprovalStack {
        Self::start_full(approval, cp_extra, "keepalive_s = 1\n")
    }

    /// Like [`ApprovalStack::start_with`], with the proxy's `[approvals]` table body.
    pub fn start_full(approval: Value, cp_extra: &str, approvals: &str) -> ApprovalStack {
        let dir = tempfile::tempdir().expect("temp dir");
        let airlock = env!("CARGO_BIN_EXE_airlock");
        let (demo, demo_url) = demo_process();

        airlock_bundle::write_keypair(&dir.path().join("release")).expect("write a key pair");
        let cp_port = free_port();
        let cp_config = dir.path().join("control-plane.toml");
        std::fs::write(&cp_config, control_plane_config(cp_port) + cp_extra)
            .expect("write cp config");
        let (control, ui_url) = start_control_plane(&cp_config);
        let cp_url = format!("http://127.0.0.1:{cp_port}");

        let policy_dir = dir.path().join("policies");
        copy_dir(&repo_root().join("policies"), &policy_dir);
        let data_path = policy_dir.join("data.json");
        let mut data: Value =
            serde_json::from_str(&std::fs::read_to_string(&data_path).expect("read data.json"))
                .expect("data.json");
        data["airlock_config"]["approvals"]["sql.write_on_prod"] = approval;
        std::fs::write(&data_path, data.to_string()).expect("write data.json");
        // Its test pins the default approval settings this stack just changed.
        std::fs::remove_file(policy_dir.join("sql_test.rego")).expect("remove sql_test.rego");
        push_bundle(&policy_dir, &dir.path().join("release.key"), &cp_url);

        let api_key = fresh_key();
        let proxy_config = format!(
            r#"[server]
listen = "127.0.0.1:0"

[[api_keys]]
subject = "demo-agent"
sha256 = "{key}"
groups = ["agents"]

[[upstreams]]
name = "demo"
url = "{demo_url}"
labels = {{ env = "prod" }}

[control_plane]
url = "{cp_url}"
token = "${{AIRLOCK_TEST_NODE_TOKEN}}"
node_id = "proxy-test"
bundle_public_keys = ["release.pub"]

[approvals]
{approvals}"#,
            key = sha(&api_key),
        );
        let proxy_path = dir.path().join("proxy.toml");
        std::fs::write(&proxy_path, proxy_config).expect("write proxy config");
        let mut proxy_cmd = Command::new(airlock);
        proxy_cmd
            .arg("proxy")
            .arg("--config")
            .arg(&proxy_path)
            .env("AIRLOCK_TEST_NODE_TOKEN", NODE);
        let (mut proxy, base) =
            Process::start("airlock proxy", proxy_cmd, "airlock proxy listening on");
        let base = base.trim_end_matches('/').to_owned();
        wait_ready(&mut proxy, &base);
        ApprovalStack {
            mcp_url: format!("{base}/mcp/demo"),
            proxy,
            control: Some(control),
            demo,
            api_key,
            cp_url,
            ui_url,
            cp_config,
            dir,
        }
    }

    /// SIGKILLs the control plane (its sled state stays on disk).
    pub fn kill_control_plane(&mut self) {
        self.control = None; // dropping a Process kills it with SIGKILL and reaps it
    }

    /// Starts the control plane again on the same port and data directory.
    pub fn restart_control_plane(&mut self) {
        let (control, ui_url) = start_control_plane(&self.cp_config);
        self.control = Some(control);
        self.ui_url = ui_url;
    }

    /// The audit records of the `execute` calls (requests and answers), in log
    /// order, waiting until `n` of them have arrived: `(direction, approval_id)`.
    pub fn executions(&self, n: usize) -> Vec<(String, String)> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let output = Command::new(env!("CARGO_BIN_EXE_airlock"))
                .args(["audit", "export", "--format", "jsonl", "--tool", "execute"])
                .env("AIRLOCK_CONTROL_PLANE", &self.cp_url)
                .env("AIRLOCK_TOKEN", ADMIN)
                .output()
                .expect("run airlock audit export");
            let text = String::from_utf8_lossy(&output.stdout);
            assert!(output.status.success(), "audit export failed: {text}");
            let found: Vec<(String, String)> = text
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).expect("a JSON line"))
                .map(|e| {
                    let field = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
                    (field("direction"), field("approval_id"))
                })
                .collect();
            if found.len() >= n || Instant::now() > deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The proxy's `/metrics` text.
    pub fn proxy_metrics(&self) -> String {
        let base = self.mcp_url.trim_end_matches("/mcp/demo");
        crate::sdk_common::get(base, "/metrics")
    }

    /// Runs the SDK script with `steps` in a background thread; join for the report.
    pub fn run_client(&self, steps: Value) -> std::thread::JoinHandle<Value> {
        let node = node22();
        let url = self.mcp_url.clone();
        let key = self.api_key.clone();
        std::thread::spawn(move || {
            let steps = steps.to_string();
            run_json_client(
                &node,
                &["tests/sdk/approval_flow.mjs", &url, &steps],
                &[("AIRLOCK_SDK_KEY", &key)],
            )
        })
    }

    /// A gRPC client of the approval service.
    pub async fn approvals(&self) -> ApprovalServiceClient<tonic::transport::Channel> {
        ApprovalServiceClient::connect(self.cp_url.clone())
            .await
            .expect("connect to the control plane")
    }

    /// Waits until `n` approvals are pending; returns them (newest first).
    pub async fn wait_pending(&self, n: usize) -> Vec<api::Approval> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let list = self
                .approvals()
                .await
                .list(request(
                    ADMIN,
                    api::ApprovalServiceListRequest {
                        pending_only: true,
                        limit: 0,
                    },
                ))
                .await
                .expect("list approvals")
                .into_inner()
                .approvals;
            if list.len() >= n {
                return list;
            }
            assert!(
                Instant::now() < deadline,
                "{n} pending approval(s) never appeared; have {list:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One approval by id; `None` while the control plane does not know it (yet).
    pub async fn try_get(&self, id: &str) -> Option<api::Approval> {
        let request = request(
            ADMIN,
            api::ApprovalServiceGetRequest {
                approval_id: id.into(),
            },
        );
        match self.approvals().await.get(request).await {
            Ok(response) => response.into_inner().approval,
            Err(status) if status.code() == tonic::Code::NotFound => None,
            Err(status) => panic!("get approval {id}: {status:?}"),
        }
    }

    /// One approval by id.
    pub async fn get(&self, id: &str) -> api::Approval {
        self.approvals()
            .await
            .get(request(
                ADMIN,
                api::ApprovalServiceGetRequest {
                    approval_id: id.into(),
                },
            ))
            .await
            .expect("get approval")
            .into_inner()
            .approval
            .expect("an approval")
    }

    /// A review by the holder of `token`.
    pub async fn decide(
        &self,
        token: &str,
        id: &str,
        verdict: api::ApprovalVerdict,
        reason: &str,
    ) -> Result<api::Approval, tonic::Status> {
        let request = request(
            token,
            api::ApprovalServiceDecideRequest {
                approval_id: id.into(),
                verdict: verdict as i32,
                reason: reason.into(),
            },
        );
        let response = self.approvals().await.decide(request).await?;
        Ok(response.into_inner().approval.expect("an approval"))
    }
}

/// `message` with `authorization: Bearer token`.
pub fn request<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    request
}

fn control_plane_config(port: u16) -> String {
    let token = |subject: &str, token: &str, role: &str, groups: &str| {
        format!(
            "[[tokens]]\nsubject = \"{subject}\"\nsha256 = \"{}\"\nroles = [\"{role}\"]\ngroups = [{groups}]\n",
            sha(token)
        )
    };
    [
        format!("listen = \"127.0.0.1:{port}\"\ndata_dir = \"cp-data\"\ntrusted_keys = [\"release.pub\"]\n[ui]\nlisten = \"127.0.0.1:0\"\n"),
        token("proxy-test-node", NODE, "node", ""),
        token("dana", DANA, "reviewer", "\"dba\""),
        token("omar", OMAR, "reviewer", "\"dba\""),
        token("sam", SAM, "reviewer", "\"security\""),
        token("demo-agent", SELF, "reviewer", "\"dba\""),
        token("ada", ADMIN, "admin", ""),
        token("aud", AUDITOR, "auditor", ""),
    ]
    .concat()
}

fn start_control_plane(config: &std::path::Path) -> (Process, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_airlock"));
    cmd.arg("control-plane")
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn");
    let (mut process, _) = Process::start(
        "airlock control-plane",
        cmd,
        "airlock control-plane listening on",
    );
    let ui = process.wait_for_line("airlock reviewer page on ");
    (process, ui)
}

/// Builds, signs and publishes `dir` as the active bundle (as the admin).
fn push_bundle(dir: &std::path::Path, key: &std::path::Path, cp_url: &str) {
    let output = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args([
            "--control-plane",
            cp_url,
            "--token",
            ADMIN,
            "bundle",
            "push",
        ])
        .arg(dir)
        .arg("--signing-key")
        .arg(key)
        .output()
        .expect("run airlock bundle push");
    assert!(
        output.status.success(),
        "airlock bundle push failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The number of customers, as the result text of a `SELECT COUNT(*) AS n` step.
pub fn count(report: &Value, step: &str) -> i64 {
    let result = crate::sdk_common::ok_step(report, step);
    let text = crate::sdk_common::result_text(result);
    text.chars()
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("no count in step {step}: {text}"))
}

/// The JSON-RPC error code of a failed step.
pub fn error_code(report: &Value, step: &str) -> i64 {
    let outcome = &report[step];
    assert_eq!(
        outcome["ok"],
        Value::Bool(false),
        "step {step} should have failed: {report:#}"
    );
    outcome["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("no code in {step}: {report:#}"))
}
