//! What the proxy adds to a `tools/call`: the demo MCP server called directly and
//! through an in-process proxy (allow-all policy, so the full decide path runs), in
//! the same run, at concurrency 1 and 32. Prints p50/p99 of each, the added latency
//! and the ratio. Target: under 0.5 ms added at p50.
//!
//! Also prints the process CPU time (user + system, every thread, from
//! `/proc/self/stat`) per call on each path: at concurrency 32 on a small machine
//! the added latency is mostly queueing for that CPU. Instructions per call (no
//! kernel, deterministic): `examples/proxy_cpu.rs` under callgrind.
//!
//! Last, the cost of a JWT identity: the same proxied call at concurrency 1 with an
//! API key and with an EdDSA JWT (`[[jwt]]`, JWKS file), interleaved, as a ratio.
//!
//! Run: `cargo bench -p airlock-data-plane --bench proxy_overhead`

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
use std::sync::Arc;
use std::time::{Duration, Instant};

type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;
type HttpClient = Client<HttpConnector, Full<Bytes>>;

const KEY: &str = "bench-key-0123456789";
const ALLOW_ALL: &str = "package airlock\n\nimport rego.v1\n\ndecision := {\"verdict\": \"allow\", \"reasons\": [\"bench.allow_all\"]}\n";
/// Requests per case (direct or proxied, per concurrency), split over rounds.
const REQUESTS: usize = 4000;
const ROUNDS: usize = 4;
const WARMUP: usize = 200;

/// One endpoint to call: URL, headers, and its MCP session.
struct Target {
    url: String,
    key: Option<String>,
    session: Option<String>,
}

fn main() -> BenchResult<()> {
    // By default the demo server, the proxy and the load generator each get their
    // own runtime, so the proxy's workers schedule only proxy work (as in a real
    // deployment); `PROXY_BENCH_LAYOUT=shared` puts all three on one runtime.
    let shared = std::env::var("PROXY_BENCH_LAYOUT").is_ok_and(|v| v == "shared");
    let client = runtime()?;
    let (demo, proxy) = if shared {
        (client.handle().clone(), client.handle().clone())
    } else {
        let (demo, proxy) = (runtime()?, runtime()?);
        let handles = (demo.handle().clone(), proxy.handle().clone());
        // Leaked: they serve until the process exits.
        std::mem::forget(demo);
        std::mem::forget(proxy);
        handles
    };
    println!(
        "layout: {}",
        if shared {
            "client, demo server and proxy on one 2-worker runtime"
        } else {
            "client, demo server and proxy on separate 2-worker runtimes"
        }
    );
    client.block_on(run(demo, proxy))
}

fn runtime() -> BenchResult<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

async fn run(demo_rt: tokio::runtime::Handle, proxy_rt: tokio::runtime::Handle) -> BenchResult<()> {
    // Bound on its runtime so its listener's I/O is driven there.
    let options = DemoOptions {
        required_bearer: None,
        seed: DEFAULT_SEED,
    };
    let demo = demo_rt
        .spawn(DemoServer::bind("127.0.0.1:0".parse()?, options))
        .await??;
    let demo_url = demo.url();
    demo_rt.spawn(demo.run(std::future::pending()));

    let dir = tempfile::tempdir()?;
    std::fs::create_dir(dir.path().join("policies"))?;
    std::fs::write(dir.path().join("policies/allow.rego"), ALLOW_ALL)?;
    let (jwks, token) = jwt_identity()?;
    std::fs::write(dir.path().join("jwks.json"), jwks)?;
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nsession_secret = \"bench-session-secret-0123456789\"\n\
         [policy]\ndir = \"policies\"\n\
         [[api_keys]]\nsubject = \"bench\"\nsha256 = \"{}\"\n\
         [[jwt]]\nissuer = \"{JWT_ISSUER}\"\naudience = \"airlock\"\njwks_file = \"jwks.json\"\n\
         [[upstreams]]\nname = \"demo\"\nurl = \"{demo_url}\"\nlabels = {{ env = \"prod\" }}\n",
        hex::encode(Sha256::digest(KEY.as_bytes()))
    );
    let config = ProxyConfig::from_toml_str(&config, &dir.path().join("airlock.toml"))?;
    // Started on its own runtime so its listener and upstream client live there.
    let proxy = proxy_rt.spawn(Proxy::start(config)).await??;
    let proxy_url = format!("http://{}/mcp/demo", proxy.local_addr());
    let store = proxy.policy();
    proxy_rt.spawn(proxy.run(std::future::pending()));

    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(64)
        .build(connector);
    let mut direct = Target {
        url: demo_url,
        key: None,
        session: None,
    };
    let mut proxied = Target {
        url: proxy_url,
        key: Some(KEY.to_owned()),
        session: None,
    };
    let mut with_jwt = Target {
        url: proxied.url.clone(),
        key: Some(token),
        session: None,
    };
    initialize(&client, &mut direct).await?;
    initialize(&client, &mut proxied).await?;
    initialize(&client, &mut with_jwt).await?;
    let (direct, proxied, with_jwt) = (Arc::new(direct), Arc::new(proxied), Arc::new(with_jwt));

    println!("proxy_overhead: tools/call `query` (SELECT 1), JSON answers, loopback, {REQUESTS} calls per case");
    println!(
        "{:>11} {:>8} {:>10} {:>10}",
        "concurrency", "path", "p50 (us)", "p99 (us)"
    );
    for concurrency in [1usize, 32] {
        measure(&client, &direct, WARMUP, concurrency).await?;
        measure(&client, &proxied, WARMUP, concurrency).await?;
        let (mut d, mut p) = (Vec::new(), Vec::new());
        let (mut d_cpu, mut p_cpu) = (0.0, 0.0);
        // Interleave rounds so drift on a shared machine hits both paths alike.
        for _ in 0..ROUNDS {
            let before = cpu_seconds();
            d.extend(measure(&client, &direct, REQUESTS / ROUNDS, concurrency).await?);
            let middle = cpu_seconds();
            p.extend(measure(&client, &proxied, REQUESTS / ROUNDS, concurrency).await?);
            d_cpu += middle - before;
            p_cpu += cpu_seconds() - middle;
        }
        report(concurrency, &mut d, &mut p);
        let (d_cpu, p_cpu) = (d_cpu * 1e6 / d.len() as f64, p_cpu * 1e6 / p.len() as f64);
        println!(
            "{concurrency:>11} {:>8} direct {d_cpu:.0} us, proxied {p_cpu:.0} us, added {:.0} us per call (process CPU, all threads)",
            "cpu",
            p_cpu - d_cpu
        );
    }
    identities(&client, &proxied, &with_jwt).await?;
    decide_only(&store);
    Ok(())
}

/// The proxied call with an API key and with a JWT, concurrency 1, interleaved.
async fn identities(client: &HttpClient, key: &Arc<Target>, jwt: &Arc<Target>) -> BenchResult<()> {
    measure(client, jwt, WARMUP, 1).await?;
    let (mut k, mut j) = (Vec::new(), Vec::new());
    let (mut k_cpu, mut j_cpu) = (0.0, 0.0);
    for _ in 0..ROUNDS {
        let before = cpu_seconds();
        k.extend(measure(client, key, REQUESTS / ROUNDS, 1).await?);
        let middle = cpu_seconds();
        j.extend(measure(client, jwt, REQUESTS / ROUNDS, 1).await?);
        k_cpu += middle - before;
        j_cpu += cpu_seconds() - middle;
    }
    k.sort();
    j.sort();
    let (k50, j50) = (percentile(&k, 0.5), percentile(&j, 0.5));
    let (k_cpu, j_cpu) = (k_cpu * 1e6 / k.len() as f64, j_cpu * 1e6 / j.len() as f64);
    println!(
        "identity (proxied, concurrency 1): API key p50 {k50:.0} us, JWT (EdDSA) p50 {j50:.0} us, ratio {:.2}x; CPU per call {k_cpu:.0} us vs {j_cpu:.0} us",
        j50 / k50.max(1.0)
    );
    Ok(())
}

const JWT_ISSUER: &str = "https://bench.idp/";

/// A JWK Set with one Ed25519 key, and a token it signed (valid for a day).
fn jwt_identity() -> BenchResult<(String, String)> {
    use base64::Engine as _;
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
    let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "bench", "x": x}]});
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some("bench".into());
    let exp = jsonwebtoken::get_current_timestamp() + 86_400;
    let claims = json!({"iss": JWT_ISSUER, "aud": "airlock", "sub": "bench-agent", "exp": exp});
    let der = key.to_pkcs8_der()?;
    let token = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes()),
    )?;
    Ok((jwks.to_string(), token))
}

/// The policy evaluation alone (one thread), to attribute the added latency.
fn decide_only(store: &airlock_policy::PolicyStore) {
    use airlock_policy::{
        Direction, MessageInput, PolicyInput, ServerInput, SessionInput, TimeInput, ToolInput,
    };
    let arguments = json!({"sql": "SELECT 1"});
    let input = PolicyInput {
        identity: airlock_policy::IdentityInput {
            subject: "bench".into(),
            kind: "agent".into(),
            ..Default::default()
        },
        server: ServerInput {
            name: "demo".into(),
            ..Default::default()
        },
        direction: Direction::ClientToServer,
        message: MessageInput {
            method: Some("tools/call".into()),
            id: Some(json!(1)),
            params: json!({"name": "query", "arguments": arguments}),
        },
        tool: Some(ToolInput {
            name: "query".into(),
            arguments,
            pin: None,
        }),
        session: SessionInput::default(),
        time: TimeInput::default(),
        listing: false,
        limits: None,
        review: None,
    };
    let mut latencies: Vec<Duration> = (0..REQUESTS)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(store.decide(&input));
            started.elapsed()
        })
        .collect();
    latencies.sort();
    println!(
        "policy decide alone (allow-all, 1 thread): p50 {:.0} us, p99 {:.0} us",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
}

async fn initialize(client: &HttpClient, target: &mut Target) -> BenchResult<()> {
    let body = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}});
    let response = client.request(request(target, body.to_string())?).await?;
    target.session = response
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().map(str::to_owned))
        .transpose()?;
    response.into_body().collect().await?;
    let done = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let response = client.request(request(target, done.to_string())?).await?;
    response.into_body().collect().await?;
    Ok(())
}

fn request(target: &Target, body: String) -> BenchResult<hyper::Request<Full<Bytes>>> {
    let mut builder = hyper::Request::post(&target.url)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .header("mcp-protocol-version", "2025-06-18");
    if let Some(key) = &target.key {
        builder = builder.header("authorization", format!("Bearer {key}"));
    }
    if let Some(session) = &target.session {
        builder = builder.header("mcp-session-id", session);
    }
    Ok(builder.body(Full::new(Bytes::from(body)))?)
}

/// `count` calls spread over `concurrency` workers; each call's latency.
async fn measure(
    client: &HttpClient,
    target: &Arc<Target>,
    count: usize,
    concurrency: usize,
) -> BenchResult<Vec<Duration>> {
    let mut workers = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let (client, target) = (client.clone(), Arc::clone(target));
        let share = count / concurrency + usize::from(worker < count % concurrency);
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(share);
            for i in 0..share {
                let body = json!({"jsonrpc": "2.0", "id": i + 1, "method": "tools/call",
                    "params": {"name": "query", "arguments": {"sql": "SELECT 1"}}});
                let started = Instant::now();
                let response = client.request(request(&target, body.to_string())?).await?;
                let status = response.status();
                let bytes = response.into_body().collect().await?.to_bytes();
                latencies.push(started.elapsed());
                if !status.is_success()
                    || !bytes.starts_with(b"{\"jsonrpc\"")
                    || bytes.windows(8).any(|w| w == b"\"error\":")
                {
                    return Err(format!(
                        "call failed: {status} {}",
                        String::from_utf8_lossy(&bytes)
                    )
                    .into());
                }
            }
            BenchResult::Ok(latencies)
        }));
    }
    let mut all = Vec::with_capacity(count);
    for worker in workers {
        all.extend(worker.await??);
    }
    Ok(all)
}

/// User + system CPU of the whole process so far, in seconds (0 when unknown).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the `(comm)` one; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    // USER_HZ is 100 on Linux.
    ticks as f64 / 100.0
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).map_or(0.0, |d| d.as_secs_f64() * 1e6)
}

fn report(concurrency: usize, direct: &mut [Duration], proxied: &mut [Duration]) {
    direct.sort();
    proxied.sort();
    let (d50, d99) = (percentile(direct, 0.5), percentile(direct, 0.99));
    let (p50, p99) = (percentile(proxied, 0.5), percentile(proxied, 0.99));
    println!("{concurrency:>11} {:>8} {d50:>10.0} {d99:>10.0}", "direct");
    println!("{concurrency:>11} {:>8} {p50:>10.0} {p99:>10.0}", "proxied");
    let verdict = if p50 - d50 < 500.0 { "within" } else { "OVER" };
    println!(
        "{concurrency:>11} {:>8} {:>10.0} {:>10.0}   ratio p50 {:.2}x, p99 {:.2}x; p50 added {verdict} the 500 us target",
        "added",
        p50 - d50,
        p99 - d99,
        p50 / d50.max(1.0),
        p99 / d99.max(1.0)
    );
}
