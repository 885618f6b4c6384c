//! Approvals under load, in one process: an upstream that timestamps what it
//! receives, a real control plane (sled in a temp dir) and a proxy with
//! `[control_plane]`, over loopback.
//!
//! 1. Latency from a reviewer's `Decide` to the upstream receiving the held call,
//!    sequentially, p50/p99; baseline from the same run: an allowed call's latency
//!    from the client's send to the upstream's receipt (the proxy's own path), and
//!    the ratio. Target: p99 under 10 ms.
//! 2. 1,000 held calls at once on one proxy, twice: all released correctly (each
//!    answer carries its own result), with the process RSS before, while held and
//!    after each round (the second round shows whether memory plateaus).
//!
//! Run: `cargo bench -p airlock-data-plane --bench approval_release`

use airlock_control_plane::api::approval_service_client::ApprovalServiceClient;
use airlock_control_plane::{api, ControlPlane, ControlPlaneConfig, Role, TokenEntry};
use airlock_data_plane::{Proxy, ProxyConfig};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::error::Error;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;
type HttpClient = Client<HttpConnector, Full<Bytes>>;

const KEY: &str = "bench-agent-key-0123456789";
const NODE: &str = "bench-node-token";
const REVIEWER: &str = "bench-reviewer-token";
const POLICY: &str = r#"package airlock

import rego.v1

default decision := {"verdict": "allow", "reasons": ["bench.allow"]}

decision := {"verdict": "require_approval", "reasons": ["bench.hold"], "approval": {"reviewers": ["dba"], "min_approvals": 1, "timeout_s": 600}} if {
	input.tool.name == "execute"
}
"#;
const LATENCY_SAMPLES: usize = 200;
const CONCURRENT: usize = 1000;

fn main() -> BenchResult<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

/// An upstream MCP server that answers every POST with a result and reports when
/// it received each (with the SQL it carried).
async fn upstream(receipts: mpsc::UnboundedSender<(Instant, String)>) -> BenchResult<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/mcp", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let receipts = receipts.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let receipts = receipts.clone();
                    async move {
                        let body = req.into_body().collect().await?.to_bytes();
                        let at = Instant::now();
                        let message: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        let sql = message["params"]["arguments"]["sql"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned();
                        let _ = receipts.send((at, sql.clone()));
                        let answer = json!({"jsonrpc": "2.0", "id": message["id"], "result": {"content": [{"type": "text", "text": sql}]}});
                        let mut response =
                            hyper::Response::new(Full::new(Bytes::from(answer.to_string())));
                        response
                            .headers_mut()
                            .insert("content-type", "application/json".parse().expect("header"));
                        Ok::<_, hyper::Error>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(url)
}

fn sha(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn request<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    request
}

async fn run() -> BenchResult<()> {
    let dir = tempfile::tempdir()?;
    let (receipts_tx, mut receipts) = mpsc::unbounded_channel();
    let upstream_url = upstream(receipts_tx).await?;

    let (private, public) = airlock_bundle::write_keypair(&dir.path().join("release"))?;
    let tokens = vec![
        TokenEntry::from_plain("bench-node", NODE, &[Role::Node]),
        TokenEntry::from_plain("dana", REVIEWER, &[Role::Reviewer]).with_groups(&["dba"]),
    ];
    let plane = ControlPlane::start(ControlPlaneConfig::new(
        "127.0.0.1:0".parse()?,
        dir.path().join("cp-data"),
        vec![airlock_bundle::PublicKey::from_file(&public)?],
        tokens,
    ))
    .await?;
    let cp_url = format!("http://{}", plane.local_addr());
    std::fs::create_dir(dir.path().join("policies"))?;
    std::fs::write(dir.path().join("policies/bench.rego"), POLICY)?;
    let key = airlock_bundle::SigningKey::from_file(&private)?;
    let bundle =
        airlock_bundle::build_from_dir(&dir.path().join("policies"), Some("bench-1"), &key)?;
    plane.publish(bundle.bytes, "bench").await?;
    tokio::spawn(plane.run(std::future::pending()));

    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nmax_concurrent_requests = 4096\n\
         [[api_keys]]\nsubject = \"bench-agent\"\nsha256 = \"{}\"\n\
         [[upstreams]]\nname = \"db\"\nurl = \"{upstream_url}\"\nlabels = {{ env = \"prod\" }}\n\
         [control_plane]\nurl = \"{cp_url}\"\ntoken = \"{NODE}\"\nnode_id = \"bench\"\nbundle_public_keys = [\"{}\"]\n\
         [approvals]\nmax_pending = 2000\n",
        sha(KEY),
        public.display(),
    );
    let proxy = Proxy::start(ProxyConfig::from_toml_str(
        &config,
        &dir.path().join("proxy.toml"),
    )?)
    .await?;
    let mcp = format!("http://{}/mcp/db", proxy.local_addr());
    tokio::spawn(proxy.run(std::future::pending()));

    let http: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    // The bundle arrives over the watch stream: wait until an allowed call passes.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !call(&http, &mcp, "query", "SELECT 0", 0)
        .await?
        .contains("SELECT 0")
    {
        assert!(
            Instant::now() < deadline,
            "the proxy never received the bundle"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    while receipts.try_recv().is_ok() {}
    let grpc = ApprovalServiceClient::connect(cp_url).await?;
    println!("approval_release: {LATENCY_SAMPLES} sequential held calls, then {CONCURRENT} at once (loopback, one process)");
    latency(&http, &mcp, grpc.clone(), &mut receipts).await?;
    // Twice: the second round shows whether memory keeps growing or plateaus.
    for round in 1..=2 {
        concurrent(&http, &mcp, grpc.clone(), &mut receipts, round).await?;
    }
    Ok(())
}

async fn call(
    http: &HttpClient,
    mcp: &str,
    tool: &str,
    sql: &str,
    id: usize,
) -> BenchResult<String> {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": {"sql": sql}}});
    let request = hyper::Request::post(mcp)
        .header("authorization", format!("Bearer {KEY}"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(Full::new(Bytes::from(body.to_string())))?;
    let response = http.request(request).await?;
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

async fn wait_pending(
    grpc: &mut ApprovalServiceClient<tonic::transport::Channel>,
    n: usize,
) -> BenchResult<Vec<api::Approval>> {
    loop {
        let list = grpc
            .list(request(
                REVIEWER,
                api::ApprovalServiceListRequest {
                    pending_only: true,
                    limit: 5000,
                },
            ))
            .await?
            .into_inner()
            .approvals;
        if list.len() >= n {
            return Ok(list);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

async fn latency(
    http: &HttpClient,
    mcp: &str,
    mut grpc: ApprovalServiceClient<tonic::transport::Channel>,
    receipts: &mut mpsc::UnboundedReceiver<(Instant, String)>,
) -> BenchResult<()> {
    let mut baseline = Vec::with_capacity(LATENCY_SAMPLES);
    let mut released = Vec::with_capacity(LATENCY_SAMPLES);
    for i in 0..LATENCY_SAMPLES {
        let sent = Instant::now();
        call(http, mcp, "query", &format!("SELECT {i}"), i).await?;
        let (at, _) = receipts.recv().await.ok_or("upstream gone")?;
        baseline.push(at - sent);

        let sql = format!("INSERT INTO t VALUES ({i})");
        let (h, m, s) = (http.clone(), mcp.to_owned(), sql.clone());
        let held = tokio::spawn(async move { call(&h, &m, "execute", &s, i).await });
        let id = wait_pending(&mut grpc, 1).await?[0].approval_id.clone();
        let decided = Instant::now();
        grpc.decide(request(
            REVIEWER,
            api::ApprovalServiceDecideRequest {
                approval_id: id,
                verdict: api::ApprovalVerdict::Approve as i32,
                reason: String::new(),
            },
        ))
        .await?;
        let (at, got) = receipts.recv().await.ok_or("upstream gone")?;
        assert_eq!(
            got, sql,
            "the approved payload is what reached the upstream"
        );
        released.push(at - decided);
        let answer = held.await??;
        assert!(
            answer.contains(&sql),
            "the released call got its answer: {answer}"
        );
    }
    baseline.sort();
    released.sort();
    let (b50, b99) = (percentile(&baseline, 0.5), percentile(&baseline, 0.99));
    let (r50, r99) = (percentile(&released, 0.5), percentile(&released, 0.99));
    println!("  baseline  allowed call, client send -> upstream receipt: p50 {b50:>9.3?}  p99 {b99:>9.3?}");
    println!(
        "  released  reviewer Decide        -> upstream receipt: p50 {r50:>9.3?}  p99 {r99:>9.3?}"
    );
    println!(
        "  ratio released/baseline: p50 {:.1}x  p99 {:.1}x  (target: released p99 < 10 ms: {})",
        r50.as_secs_f64() / b50.as_secs_f64(),
        r99.as_secs_f64() / b99.as_secs_f64(),
        if r99 < Duration::from_millis(10) {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}

async fn concurrent(
    http: &HttpClient,
    mcp: &str,
    mut grpc: ApprovalServiceClient<tonic::transport::Channel>,
    receipts: &mut mpsc::UnboundedReceiver<(Instant, String)>,
    round: usize,
) -> BenchResult<()> {
    let before = rss_kib();
    let started = Instant::now();
    let mut calls = Vec::with_capacity(CONCURRENT);
    for i in 0..CONCURRENT {
        let (h, m) = (http.clone(), mcp.to_owned());
        calls.push(tokio::spawn(async move {
            let sql = format!("INSERT INTO t VALUES ('held-{round}-{i}')");
            let answer = call(&h, &m, "execute", &sql, 100_000 + i).await?;
            BenchResult::Ok((sql, answer))
        }));
    }
    let pending = wait_pending(&mut grpc, CONCURRENT).await?;
    let held_after = started.elapsed();
    let during = rss_kib();
    let decided = Instant::now();
    let mut decisions = Vec::with_capacity(pending.len());
    for approval in pending {
        let mut grpc = grpc.clone();
        decisions.push(tokio::spawn(async move {
            grpc.decide(request(
                REVIEWER,
                api::ApprovalServiceDecideRequest {
                    approval_id: approval.approval_id,
                    verdict: api::ApprovalVerdict::Approve as i32,
                    reason: String::new(),
                },
            ))
            .await
        }));
    }
    for decision in decisions {
        decision.await??;
    }
    let mut released = 0;
    for call in calls {
        let (sql, answer) = call.await??;
        assert!(
            answer.contains(&sql),
            "a held call got someone else's answer: {answer}"
        );
        released += 1;
    }
    let release_time = decided.elapsed();
    let mut received = 0;
    while receipts.try_recv().is_ok() {
        received += 1;
    }
    assert_eq!(released, CONCURRENT);
    assert_eq!(
        received, CONCURRENT,
        "each approved call reached the upstream exactly once"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib();
    println!("  round {round}: {CONCURRENT} held at once: all pending after {held_after:.2?}; all released and answered {release_time:.2?} after the approvals began");
    println!(
        "  round {round}: RSS (whole process: upstream, control plane, proxy, clients): before {} MiB, while held {} MiB (+{} KiB per held call), after {} MiB",
        before / 1024,
        during / 1024,
        during.saturating_sub(before) / CONCURRENT as u64,
        after / 1024
    );
    Ok(())
}
