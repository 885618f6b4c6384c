//! End-to-end: `https://` upstreams. The proxy verifies the upstream's certificate
//! against the system roots plus `[outbound_tls] ca_certs`; an untrusted one is a
//! 502 naming the certificate problem, and no request reaches that upstream.

mod support;

use serde_json::{json, Value};
use support::tls::TlsServer;
use support::{ProxyBuilder, RunningProxy, AGENT_KEY};

fn proxy(upstream: &str, table: &str) -> RunningProxy {
    ProxyBuilder::new()
        .upstream("secure", upstream, "dev")
        .table(table)
        .start()
}

async fn initialize(proxy: &RunningProxy) -> (u16, Value) {
    let reply = proxy
        .client("secure", Some(AGENT_KEY))
        .try_initialize("2025-06-18")
        .await;
    (reply.status.as_u16(), reply.last().clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_https_upstream_is_served_and_an_untrusted_one_is_refused() {
    let server = TlsServer::start(json!({"keys": []})).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = server.write_cert(dir.path(), "upstream-ca.pem");
    let url = format!("{}/mcp", server.base);

    let untrusted = proxy(&url, "");
    let (status, body) = initialize(&untrusted).await;
    assert_eq!(status, 502, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.to_lowercase().contains("certificate"),
        "the refusal names the certificate problem: {message}"
    );
    assert_eq!(
        server.requests(),
        0,
        "nothing crossed an unverified connection"
    );

    let trusted = proxy(
        &url,
        &format!("[outbound_tls]\nca_certs = [\"{}\"]\n", ca.display()),
    );
    let (status, body) = initialize(&trusted).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["serverInfo"]["name"], "tls-upstream");
    assert_eq!(server.requests(), 1);
}
