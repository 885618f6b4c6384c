//! Stage 1, accept: the HTTP server, routing (`/mcp/{server}`, `/healthz`,
//! `/readyz`, `/metrics`), the `Origin` check and the bounded body read.
//!
//! What a client that has not authenticated can hold here is bounded twice: in
//! time, by `limits.header_timeout_s` (hyper closes a connection whose request head
//! is incomplete, or that sits idle, that long), and in number, by
//! `limits.max_unauthenticated_per_source` (a connection counts against its source
//! address until a request on it authenticates; see `limits`). The body is read
//! only after authentication (`mcp`), with an idle-gap and a total timeout.

use crate::ctx::Shared;
use crate::error::{Limit, ProxyError};
use crate::limits::{BodyTimeouts, PendingConnection};
use crate::mcp;
use crate::respond::{json_response, ProxyResponse};
use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::json;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::time::Instant;

/// Serves connections until `shutdown` resolves, then lets in-flight requests run
/// for at most `grace`. `header_timeout` bounds each request head and each idle
/// spell between requests.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
    header_timeout: Duration,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(pending) = shared.limiter.connection(peer.ip()) else {
            // Closed at once: nothing read, nothing answered, no task spawned.
            shared.metrics.refused(Limit::SourceConnections);
            tracing::debug!(%peer, "too many unauthenticated connections from this address; closed");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let pending = Arc::new(pending);
        let service_shared = Arc::clone(&shared);
        let service = service_fn(move |request| {
            let shared = Arc::clone(&service_shared);
            let pending = Arc::clone(&pending);
            async move { Ok::<_, Infallible>(route(request, shared, &pending).await) }
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let watched = graceful.watch(connection);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            if let Err(err) = watched.await {
                if err.is_timeout() {
                    shared.metrics.refused(Limit::HeaderTimeout);
                }
                tracing::debug!(error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: no new connections, waiting for in-flight requests");
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?grace,
            "in-flight requests still running after the grace period; closing them"
        );
    }
}

async fn route(
    request: Request<Incoming>,
    shared: Arc<Shared>,
    pending: &PendingConnection,
) -> ProxyResponse {
    let path = request.uri().path();
    if path == "/healthz" {
        return json_response(StatusCode::OK, &json!({"status": "ok"}));
    }
    if path == "/readyz" {
        return readyz(&shared);
    }
    if path == "/metrics" {
        let held = shared.approvals.as_ref().map_or(0, |a| a.held());
        let text =
            shared
                .metrics
                .render(shared.recorder.backlog(), shared.recorder.dropped(), held);
        let mut response = http::Response::new(crate::respond::full(text));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        return response;
    }
    match path.strip_prefix("/mcp/") {
        Some(server) if !server.is_empty() && !server.contains('/') => {
            let server = server.to_owned();
            mcp::handle(request, shared, server, pending).await
        }
        _ => ProxyError::NotFound.into_response(None),
    }
}

/// Ready means a bundle is loaded: with the control plane away the proxy keeps
/// deciding on its last good bundle, so that alone does not make it unready. The
/// body says what an operator needs next: the link, whether the control plane's
/// audit log is trusted (`audit_log.trust`: `refused` when it was rolled back or
/// forked; events then wait in the backlog) and the audit backlog.
fn readyz(shared: &Shared) -> ProxyResponse {
    let (status, mut body) = match shared.store.current() {
        Some(policy) => (
            StatusCode::OK,
            json!({
                "status": "ready",
                "revision": policy.revision(),
                "engine": policy.backend().as_str(),
                "engine_reason": policy.engine().reason,
            }),
        ),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "not ready", "reason": "no policy bundle is loaded yet"}),
        ),
    };
    if let Some(link) = &shared.control {
        body["control_plane"] = json!(link.status());
        body["audit_log"] = json!(link.audit_status());
    }
    body["audit_backlog"] = json!(shared.recorder.backlog());
    json_response(status, &body)
}

/// DNS-rebinding protection: a browser always sends `Origin`, so a present one must
/// be on the allow-list, or be the proxy's own loopback origin (a page served by
/// the proxy's host itself). Non-browser clients send none, which is fine.
///
/// Same-origin alone is not enough: after a DNS rebinding, `Origin` and `Host` both
/// say `evil.example:PORT`. A loopback host name in both is what a rebinding page
/// cannot produce.
pub(crate) fn check_origin(headers: &HeaderMap, allowed: &[String]) -> Result<(), ProxyError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("(not text)");
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) || is_loopback_self(headers, origin) {
        Ok(())
    } else {
        Err(ProxyError::OriginForbidden(
            origin.chars().take(100).collect(),
        ))
    }
}

/// True when `origin` is `http(s)://<loopback host>[:port]` and names exactly the
/// `Host` the request was sent to.
fn is_loopback_self(headers: &HeaderMap, origin: &str) -> bool {
    let Some(authority) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    if !authority.eq_ignore_ascii_case(host) {
        return false;
    }
    let name = match authority.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => authority,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Reads the body, refusing it as soon as it passes `limit` (never buffering more)
/// or stalls past `timeouts` (dropping it then closes the connection: hyper does
/// not reuse a connection whose body was left unread).
pub(crate) async fn read_body(
    mut body: Incoming,
    headers: &HeaderMap,
    limit: usize,
    timeouts: BodyTimeouts,
) -> Result<Bytes, ProxyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        drain(body).await;
        return Err(ProxyError::BodyTooLarge(limit));
    }
    let mut buffer = BytesMut::with_capacity(declared.map_or(8 * 1024, |l| l as usize));
    let deadline = Instant::now() + timeouts.total;
    while let Some(frame) = next_frame(&mut body, deadline, timeouts).await? {
        let frame = frame.map_err(|e| ProxyError::BodyRead(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if buffer.len() + data.len() > limit {
                drain(body).await;
                return Err(ProxyError::BodyTooLarge(limit));
            }
            buffer.extend_from_slice(&data);
        }
    }
    Ok(buffer.freeze())
}

/// The next frame, unless the client pauses longer than `timeouts.idle` or the
/// body's `deadline` passes first.
async fn next_frame(
    body: &mut Incoming,
    deadline: Instant,
    timeouts: BodyTimeouts,
) -> Result<Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>, ProxyError> {
    let idle_until = Instant::now() + timeouts.idle;
    let frame = tokio::time::timeout_at(idle_until.min(deadline), body.frame()).await;
    frame.map_err(|_| {
        ProxyError::BodyTimeout(if idle_until < deadline {
            format!(
                "nothing arrived for {:?} (limits.body_idle_timeout_s)",
                timeouts.idle
            )
        } else {
            format!(
                "incomplete after {:?} (limits.body_timeout_s)",
                timeouts.total
            )
        })
    })
}

/// Reads and discards what is left of a refused body (bounded in bytes and time), so
/// the client can read our 413 instead of failing on a reset connection.
async fn drain(mut body: Incoming) {
    let mut left = DRAIN_LIMIT;
    let discard = async {
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if data.len() >= left {
                return;
            }
            left -= data.len();
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, discard).await;
}

/// At most this much of a refused body is read and thrown away.
const DRAIN_LIMIT: usize = 16 * 1024 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use tokio::io::AsyncWriteExt;

    /// Serves one connection whose handler reads the body with `timeouts`, feeds it
    /// `pieces` (a pause before each), and returns what `read_body` said.
    async fn read_with(
        timeouts: BodyTimeouts,
        pieces: &[(u64, &'static str)],
    ) -> Result<Bytes, ProxyError> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tx = std::sync::Mutex::new(Some(tx));
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let service = service_fn(move |request: Request<Incoming>| {
                let tx = tx.lock().unwrap().take();
                async move {
                    let (parts, body) = request.into_parts();
                    let read = read_body(body, &parts.headers, 1 << 20, timeouts).await;
                    let _ = tx.map(|tx| tx.send(read));
                    Ok::<_, Infallible>(json_response(StatusCode::OK, &json!({})))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let length: usize = pieces.iter().map(|(_, p)| p.len()).sum();
        let head = format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n");
        client.write_all(head.as_bytes()).await.unwrap();
        let pieces = pieces.to_vec();
        let feeding = tokio::spawn(async move {
            for (pause_ms, piece) in pieces {
                tokio::time::sleep(Duration::from_millis(pause_ms)).await;
                if client.write_all(piece.as_bytes()).await.is_err() {
                    return;
                }
            }
            // Keep the connection open (a stall, not a hang-up).
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let read = rx.await.unwrap();
        feeding.abort();
        read
    }

    const TIMEOUTS: BodyTimeouts = BodyTimeouts {
        idle: Duration::from_millis(300),
        total: Duration::from_millis(900),
    };

    #[tokio::test]
    async fn a_body_within_both_timeouts_is_read_whole() {
        let read = read_with(TIMEOUTS, &[(0, "{\"a\":"), (100, "1"), (100, "}")]).await;
        assert_eq!(read.unwrap(), Bytes::from_static(b"{\"a\":1}"));
    }

    #[tokio::test]
    async fn a_pause_past_the_idle_timeout_is_refused() {
        let read = read_with(TIMEOUTS, &[(0, "{\"a\":"), (600, "1}")]).await;
        let err = read.unwrap_err();
        assert_eq!(err.status(), StatusCode::REQUEST_TIMEOUT);
        assert!(err.to_string().contains("body_idle_timeout_s"), "{err}");
    }

    #[tokio::test]
    async fn a_trickle_that_never_pauses_long_is_refused_at_the_total() {
        let trickle: Vec<(u64, &str)> = std::iter::repeat_n((150, " "), 20).collect();
        let started = std::time::Instant::now();
        let err = read_with(TIMEOUTS, &trickle).await.unwrap_err();
        assert!(err.to_string().contains("body_timeout_s"), "{err}");
        assert!(
            started.elapsed() < Duration::from_millis(2000),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn origin_is_checked_only_when_present() {
        let allowed = vec!["http://localhost:6274".to_owned()];
        assert!(check_origin(&HeaderMap::new(), &allowed).is_ok());
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://localhost:6274"),
        );
        assert!(check_origin(&headers, &allowed).is_ok());
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        let err = check_origin(&headers, &allowed).unwrap_err();
        assert_eq!(err.status(), StatusCode::FORBIDDEN);
        headers.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(check_origin(&headers, &allowed).is_err());
    }

    #[test]
    fn the_proxys_own_loopback_origin_is_allowed_but_a_rebound_name_is_not() {
        let allowed = vec![];
        let case = |origin: &'static str, host: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ORIGIN, HeaderValue::from_static(origin));
            headers.insert(header::HOST, HeaderValue::from_static(host));
            check_origin(&headers, &allowed).is_ok()
        };
        assert!(case("http://127.0.0.1:7331", "127.0.0.1:7331"));
        assert!(case("http://localhost:7331", "localhost:7331"));
        assert!(case("http://[::1]:7331", "[::1]:7331"));
        // DNS rebinding: same origin, but not a loopback name.
        assert!(!case("http://evil.example:7331", "evil.example:7331"));
        // Loopback origin, but another host (or port) than the one addressed.
        assert!(!case("http://127.0.0.1:9999", "127.0.0.1:7331"));
        assert!(!case("http://localhost:7331", "evil.example:7331"));
        assert!(!case(
            "http://127.0.0.1.evil.example",
            "127.0.0.1.evil.example"
        ));
    }
}
