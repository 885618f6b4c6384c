//! End-to-end: the proxy's limits (`[limits]`, `server.max_concurrent_requests`)
//! keep one caller from starving the others: stalled bodies and headers are cut off
//! in time, an identity is capped in what it holds and how fast it asks, a tool's
//! rate is counted per identity, and the policy sees the budgets.

mod support;

use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::recording::RecordingUpstream;
use support::{McpClient, ProxyBuilder, RunningProxy, AGENT_KEY, OTHER_KEY, READONLY_KEY};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Allows everything: these tests are about limits, not decisions.
const ALLOW_ALL: &str =
    "package airlock\n\nimport rego.v1\n\ndefault decision := {\"verdict\": \"allow\"}\n";

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Another loopback address (Linux routes all of 127/8 to `lo`): a second source.
const OTHER_SOURCE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

#[tokio::test]
async fn requests_past_the_concurrency_limit_get_503_and_may_retry() {
    let upstream = RecordingUpstream::start().await;
    let proxy = ProxyBuilder::new()
        .upstream("rec", &upstream.url, "dev")
        .server_line("max_concurrent_requests = 1")
        .start();
    let slow = proxy.client("rec", Some(AGENT_KEY));
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "query", "arguments": {"delay_ms": 3000}}});
    let in_flight = tokio::spawn(async move { slow.post(call).await });
    // Once the upstream has it, the slow call holds the proxy's only permit (a fixed
    // sleep was not enough on a loaded machine).
    let waiting = Instant::now();
    while upstream.recorded.lock().unwrap().is_empty() {
        assert!(
            waiting.elapsed() < Duration::from_secs(20),
            "the slow call never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Another identity: within its own cap, refused by the proxy's.
    let client = proxy.client("rec", Some(OTHER_KEY));
    let ping = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"});
    let reply = client.post(ping.clone()).await;
    assert_eq!(reply.status, 503, "{reply:?}");
    assert_eq!(reply.last()["error"]["code"], -32010);

    assert_eq!(in_flight.await.unwrap().status, 200);
    let reply = client.post(ping).await;
    assert_eq!(reply.status, 200, "the permit is released: {reply:?}");
}

/// The proxy's address.
fn addr(proxy: &RunningProxy) -> SocketAddr {
    proxy
        .url()
        .trim_start_matches("http://")
        .parse()
        .expect("proxy address")
}

/// A TCP connection to `to` from the loopback address `from`.
async fn connect(from: IpAddr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(from, 0)).expect("bind source");
    socket.connect(to).await.expect("connect")
}

/// Sends a POST's whole head (authenticated with `key`) announcing 1000 bytes of
/// body, and the first 11 of them; then nothing more.
async fn stall_body(to: SocketAddr, key: &str) -> TcpStream {
    let mut stream = connect(LOOPBACK, to).await;
    let head = format!(
        "POST /mcp/rec HTTP/1.1\r\nHost: {to}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         Content-Length: 1000\r\n\r\n{{\"jsonrpc\":"
    );
    stream.write_all(head.as_bytes()).await.expect("send head");
    stream
}

/// What the proxy did with a stalled connection: the status it answered (if any),
/// its `Retry-After`, and how long after `since` it closed the connection.
#[derive(Debug)]
struct Outcome {
    status: Option<u16>,
    retry_after: Option<String>,
    closed_after: Duration,
}

/// Reads until the proxy closes the connection; panics if it is still open
/// `within` after `since`.
async fn outcome(mut stream: TcpStream, since: Instant, within: Duration) -> Outcome {
    let mut seen = Vec::new();
    let read = tokio::time::timeout_at((since + within).into(), async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the proxy kept a stalled connection open for more than {within:?}"
    );
    let closed_after = since.elapsed();
    let text = String::from_utf8_lossy(&seen);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok());
    let retry_after = text.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("retry-after: ")
            .map(str::to_owned)
    });
    Outcome {
        status,
        retry_after,
        closed_after,
    }
}

/// The outcomes of all `streams`, watched at the same time.
async fn outcomes(streams: Vec<TcpStream>, since: Instant, within: Duration) -> Vec<Outcome> {
    let watching = streams
        .into_iter()
        .map(|stream| tokio::spawn(outcome(stream, since, within)));
    let mut all = Vec::new();
    for watched in watching.collect::<Vec<_>>() {
        all.push(watched.await.expect("watcher"));
    }
    all
}

/// `n` sequential `tools/call`s; every one must succeed. Returns the median time.
async fn median_call(client: &mut McpClient, n: usize, pause: Duration) -> Duration {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let reply = client.call_tool("query", json!({})).await;
        times.push(started.elapsed());
        assert_eq!(reply.status, 200, "{reply:?}");
        assert!(reply.last().get("result").is_some(), "{reply:?}");
        tokio::time::sleep(pause).await;
    }
    times.sort();
    times[n / 2]
}

/// The counter `airlock_limit_refusals_total{limit="NAME"}` on `/metrics`.
async fn refusals(proxy: &RunningProxy, limit: &str) -> u64 {
    let metrics = McpClient::new(format!("{}/metrics", proxy.url()), None)
        .send(hyper::Method::GET, bytes::Bytes::new(), &[])
        .await;
    let text = String::from_utf8_lossy(&metrics.body).into_owned();
    let line = format!("airlock_limit_refusals_total{{limit=\"{limit}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&line))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {line} in:\n{text}"))
}

const STALLED: usize = 300;
const PER_IDENTITY: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stalled_bodies_and_a_flooder_do_not_change_what_another_identity_sees() {
    let upstream = RecordingUpstream::start().await;
    let proxy = ProxyBuilder::new()
        .upstream("rec", &upstream.url, "dev")
        .policy(ALLOW_ALL)
        .server_line("max_concurrent_requests = 64")
        .table(&format!(
            "[limits]\nbody_idle_timeout_s = 2\nbody_timeout_s = 3\nmax_concurrent_per_identity = {PER_IDENTITY}\n\
             [limits.rate]\nper_minute = 600\nburst = 100\n"
        ))
        .start();
    let to = addr(&proxy);
    let mut victim = proxy.client("rec", Some(OTHER_KEY));
    victim.initialize().await;
    let baseline = median_call(&mut victim, 30, Duration::from_millis(5)).await;

    // Hundreds of bodies that never finish, all of one identity, at once.
    let since = Instant::now();
    let mut stalled = Vec::with_capacity(STALLED);
    for _ in 0..STALLED {
        stalled.push(stall_body(to, AGENT_KEY).await);
    }
    // And an identity asking as fast as it can.
    let flooding = Arc::new(AtomicBool::new(true));
    let flooders: Vec<_> = (0..4)
        .map(|_| {
            let client = proxy.client("rec", Some(READONLY_KEY));
            let flooding = Arc::clone(&flooding);
            tokio::spawn(async move {
                let mut refused = None;
                let mut sent = 0;
                while flooding.load(Ordering::Relaxed) {
                    let reply = client
                        .post(json!({"jsonrpc": "2.0", "id": sent, "method": "ping"}))
                        .await;
                    sent += 1;
                    if reply.status == 429 && refused.is_none() {
                        refused = Some(reply);
                    }
                }
                refused
            })
        })
        .collect();

    let under_attack = median_call(&mut victim, 30, Duration::from_millis(20)).await;
    flooding.store(false, Ordering::Relaxed);
    eprintln!("median call: {baseline:?} before, {under_attack:?} under attack");
    // Generous, for a loaded 2-core machine (measured: about twice the baseline);
    // a locked-out caller gets 503s (which median_call refuses) or waits for a
    // slot, seconds, far beyond this.
    assert!(
        under_attack <= baseline * 10,
        "another identity's calls slowed from {baseline:?} to {under_attack:?} under attack"
    );

    let mut flood_refusal = None;
    for flooder in flooders {
        flood_refusal = flood_refusal.or(flooder.await.expect("flooder"));
    }
    let refusal = flood_refusal.expect("the flooder was never refused");
    let retry_after: u64 = refusal.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds");
    assert!(retry_after >= 1, "{refusal:?}");
    let error = &refusal.last()["error"];
    assert_eq!(error["code"], -32016, "{refusal:?}");
    assert_eq!(error["data"]["limit"], "identity_rate", "{refusal:?}");

    // Every stalled connection is answered and closed: past the identity's cap at
    // once (429), the ones holding its slots after the idle timeout (408).
    let within = Duration::from_secs(3) + Duration::from_secs(2);
    let mut timed_out = 0;
    for outcome in outcomes(stalled, since, within).await {
        match outcome.status {
            Some(429) => assert_eq!(outcome.retry_after.as_deref(), Some("1"), "{outcome:?}"),
            Some(408) => {
                timed_out += 1;
                assert!(
                    outcome.closed_after >= Duration::from_millis(1900),
                    "408 before the idle timeout: {outcome:?}"
                );
            }
            _ => panic!("a stalled body got {outcome:?}"),
        }
    }
    assert!(
        (1..=PER_IDENTITY).contains(&timed_out),
        "{timed_out} stalled bodies held a slot; the cap is {PER_IDENTITY}"
    );
    assert!(refusals(&proxy, "identity_concurrency").await >= (STALLED - PER_IDENTITY) as u64);
    assert!(refusals(&proxy, "body_timeout").await >= timed_out as u64);
    assert!(refusals(&proxy, "identity_rate").await >= 1);
    // The victim was never refused.
    assert_eq!(refusals(&proxy, "proxy_concurrency").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_stalls_are_capped_per_address_and_closed_by_the_header_timeout() {
    let upstream = RecordingUpstream::start().await;
    let proxy = ProxyBuilder::new()
        .upstream("rec", &upstream.url, "dev")
        .policy(ALLOW_ALL)
        .table("[limits]\nheader_timeout_s = 2\nmax_unauthenticated_per_source = 16\n")
        .start();
    let to = addr(&proxy);
    let since = Instant::now();
    let mut held = Vec::new();
    for _ in 0..40 {
        let mut stream = connect(OTHER_SOURCE, to).await;
        // An unfinished request head, never completed.
        let _ = stream
            .write_all(b"POST /mcp/rec HTTP/1.1\r\nHost: x\r\n")
            .await;
        held.push(stream);
    }
    // The same address is still over its cap; another one is not.
    let victim = proxy.client("rec", Some(OTHER_KEY));
    let reply = victim
        .post(json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");

    let mut closed_at_once = 0;
    for outcome in outcomes(held, since, Duration::from_secs(2 + 2)).await {
        assert_eq!(outcome.status, None, "{outcome:?}");
        if outcome.closed_after < Duration::from_millis(1500) {
            closed_at_once += 1;
        }
    }
    assert_eq!(
        closed_at_once,
        40 - 16,
        "the 16 within the cap wait for the header timeout"
    );
    assert_eq!(refusals(&proxy, "source_connections").await, 24);
    assert!(refusals(&proxy, "header_timeout").await >= 16);
}

/// Denies `limits_echo` with `input.limits` as the message, so the test sees it.
const ECHO_LIMITS: &str = r#"package airlock

import rego.v1

default decision := {"verdict": "allow"}

decision := {"verdict": "deny", "reasons": ["test.echo"], "message": json.marshal(input.limits)} if {
	input.tool.name == "limits_echo"
}
"#;

#[tokio::test]
async fn a_tool_rate_counts_per_identity_and_the_policy_sees_the_budgets() {
    let upstream = RecordingUpstream::start().await;
    let proxy = ProxyBuilder::new()
        .upstream("rec", &upstream.url, "dev")
        .policy(ECHO_LIMITS)
        .table(
            "[limits]\nmax_concurrent_per_identity = 4\n[limits.rate]\nper_minute = 600\nburst = 50\n\
             [limits.tools.query]\nper_minute = 6\nburst = 2\n[limits.tools.limits_echo]\nper_minute = 60\nburst = 5\n",
        )
        .start();
    let mut agent = proxy.client("rec", Some(AGENT_KEY));
    agent.initialize().await;
    for _ in 0..2 {
        let reply = agent.call_tool("query", json!({})).await;
        assert!(reply.last().get("result").is_some(), "{reply:?}");
    }
    let reply = agent.call_tool("query", json!({})).await;
    assert_eq!(reply.status, 429, "{reply:?}");
    let id = agent.next_id() - 1;
    assert_eq!(reply.last()["id"], id, "the refusal answers the call's id");
    assert_eq!(reply.last()["error"]["code"], -32016);
    assert_eq!(reply.last()["error"]["data"]["limit"], "tool_rate");
    // 6 a minute: the next token in at most 10 s.
    let retry_after: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry_after), "{reply:?}");

    // Another tool, and another identity's `query`, are not affected.
    let reply = agent.call_tool("execute", json!({})).await;
    assert!(reply.last().get("result").is_some(), "{reply:?}");
    let mut other = proxy.client("rec", Some(OTHER_KEY));
    other.initialize().await;
    let reply = other.call_tool("query", json!({})).await;
    assert!(reply.last().get("result").is_some(), "{reply:?}");

    // What the policy saw for a limited tool: the identity's and the tool's budgets.
    let reply = agent.call_tool("limits_echo", json!({})).await;
    let message = reply.last()["error"]["message"].as_str().expect("denied");
    let seen: Value = serde_json::from_str(message).expect("input.limits as JSON");
    assert_eq!(seen["concurrent"], json!({"limit": 4, "in_use": 1}));
    assert_eq!(seen["rate"]["per_minute"], 600);
    assert_eq!(seen["rate"]["burst"], 50);
    let remaining = seen["rate"]["remaining"].as_u64().unwrap();
    assert!((40..50).contains(&remaining), "{seen}");
    assert_eq!(
        seen["tool"],
        json!({"per_minute": 60, "burst": 5, "remaining": 4})
    );
}

#[test]
fn a_bad_limits_table_stops_the_start_up_naming_the_key() {
    let stderr = ProxyBuilder::new()
        .upstream("rec", "http://127.0.0.1:9/mcp", "dev")
        .table("[limits.tools.query]\nper_minute = 0\n")
        .start_refused();
    assert!(stderr.contains("limits.tools.query.per_minute"), "{stderr}");
    let stderr = ProxyBuilder::new()
        .upstream("rec", "http://127.0.0.1:9/mcp", "dev")
        .table("[limits]\nbody_timeout_ms = 5\n")
        .start_refused();
    assert!(stderr.contains("body_timeout_ms"), "{stderr}");
}
