//! Stage 1, accept: the HTTP server, routing (`/mcp/{server}`, `/healthz`,
//! `/readyz`, `/metrics`), the `Origin` check and the bounded body read.

use crate::ctx::Shared;
use crate::error::ProxyError;
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

/// Serves connections until `shutdown` resolves, then lets in-flight requests run
/// for at most `grace`.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        let service = service_fn(move |request| {
            let shared = Arc::clone(&shared);
            async move { Ok::<_, Infallible>(route(request, shared).await) }
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = watched.await {
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

async fn route(request: Request<Incoming>, shared: Arc<Shared>) -> ProxyResponse {
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
            // Shed load before any work: a full proxy answers 503 at once.
            let Ok(_permit) = Arc::clone(&shared.in_flight).try_acquire_owned() else {
                return ProxyError::Overloaded.into_response(None);
            };
            let server = server.to_owned();
            mcp::handle(request, shared, server).await
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
    let (status, mut body) = match shared.store.revision() {
        Some(revision) => (
            StatusCode::OK,
            json!({"status": "ready", "revision": revision}),
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

/// Reads the body, refusing it as soon as it passes `limit` (never buffering more).
pub(crate) async fn read_body(
    mut body: Incoming,
    headers: &HeaderMap,
    limit: usize,
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
    while let Some(frame) = body.frame().await {
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
