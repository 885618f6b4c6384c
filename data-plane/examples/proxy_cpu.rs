//! Instructions per proxied `tools/call`, for `valgrind --tool=callgrind`: the demo
//! server and an in-process proxy (allow-all policy) on one single-threaded runtime,
//! then `N` sequential `tools/call`s either straight to the demo server (`direct`) or
//! through the proxy (`proxied`). Run both modes at two values of `N` and subtract:
//! the start-up cancels out and what is left is instructions per call.
//!
//! ```text
//! cargo build --release -p airlock-data-plane --example proxy_cpu
//! valgrind --tool=callgrind target/release/examples/proxy_cpu proxied 400
//! ```
//! data-plane/README.md ("Benchmarks") has the recipe and the figures.

use airlock_data_plane::{Proxy, ProxyConfig};
use airlock_demo::{DemoOptions, DemoServer, DEFAULT_SEED};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::error::Error;

type RunResult<T> = Result<T, Box<dyn Error + Send + Sync>>;
type HttpClient = Client<HttpConnector, Full<Bytes>>;

const KEY: &str = "bench-key-0123456789";
const ALLOW_ALL: &str = "package airlock\n\nimport rego.v1\n\ndecision := {\"verdict\": \"allow\", \"reasons\": [\"bench.allow_all\"]}\n";

fn main() -> RunResult<()> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "proxied".to_owned());
    let calls: usize = args.next().map_or(Ok(400), |n| n.parse())?;
    if mode != "direct" && mode != "proxied" {
        return Err("usage: proxy_cpu (direct|proxied) [calls]".into());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(mode == "proxied", calls))
}

async fn run(proxied: bool, calls: usize) -> RunResult<()> {
    let demo = DemoServer::bind(
        "127.0.0.1:0".parse()?,
        DemoOptions {
            required_bearer: None,
            seed: DEFAULT_SEED,
        },
    )
    .await?;
    let demo_url = demo.url();
    tokio::spawn(demo.run(std::future::pending()));
    let dir = tempfile::tempdir()?;
    std::fs::create_dir(dir.path().join("policies"))?;
    std::fs::write(dir.path().join("policies/allow.rego"), ALLOW_ALL)?;
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nsession_secret = \"bench-session-secret-0123456789\"\n\
         [policy]\ndir = \"policies\"\n\
         [[api_keys]]\nsubject = \"bench\"\nsha256 = \"{}\"\n\
         [[upstreams]]\nname = \"demo\"\nurl = \"{demo_url}\"\n",
        hex::encode(Sha256::digest(KEY.as_bytes()))
    );
    let config = ProxyConfig::from_toml_str(&config, &dir.path().join("airlock.toml"))?;
    // Started in both modes so start-up costs the same and cancels out.
    let proxy = Proxy::start(config).await?;
    let proxy_url = format!("http://{}/mcp/demo", proxy.local_addr());
    tokio::spawn(proxy.run(std::future::pending()));

    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new()).build(connector);
    let (url, key) = if proxied {
        (proxy_url, Some(KEY))
    } else {
        (demo_url, None)
    };
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}});
    let response = client
        .request(request(&url, key, None, init.to_string())?)
        .await?;
    let session = response
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().map(str::to_owned))
        .transpose()?;
    response.into_body().collect().await?;
    for i in 0..calls {
        let body = json!({"jsonrpc": "2.0", "id": i + 1, "method": "tools/call",
            "params": {"name": "query", "arguments": {"sql": "SELECT 1"}}});
        let response = client
            .request(request(&url, key, session.as_deref(), body.to_string())?)
            .await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        if !status.is_success() || bytes.windows(8).any(|w| w == b"\"error\":") {
            return Err(
                format!("call failed: {status} {}", String::from_utf8_lossy(&bytes)).into(),
            );
        }
    }
    println!(
        "proxy_cpu: {calls} tools/call {}",
        if proxied { "proxied" } else { "direct" }
    );
    Ok(())
}

fn request(
    url: &str,
    key: Option<&str>,
    session: Option<&str>,
    body: String,
) -> RunResult<hyper::Request<Full<Bytes>>> {
    let mut builder = hyper::Request::post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .header("mcp-protocol-version", "2025-06-18");
    if let Some(key) = key {
        builder = builder.header("authorization", format!("Bearer {key}"));
    }
    if let Some(session) = session {
        builder = builder.header("mcp-session-id", session);
    }
    Ok(builder.body(Full::new(Bytes::from(body)))?)
}
