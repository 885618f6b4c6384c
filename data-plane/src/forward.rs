//! Stage 6, forward: the decided bytes to the upstream.
//!
//! Promise 4: the client's `Authorization` and `Cookie` never leave the proxy; the
//! upstream's own headers from the config are injected instead. Hop-by-hop headers
//! stop here too. The session header carries the upstream's id, unwrapped from the
//! sealed id the client holds.
//!
//! A stdio upstream gets the same decided bytes on its child's stdin (`upstream::stdio`);
//! no header, and so no client credential, reaches it at all.
//!
//! Trace context: with the OTLP export on, the client's `traceparent`/`tracestate`
//! are replaced by the `forward` span's, so the upstream's spans join the trace
//! under the proxy's; with it off the proxy is not in the trace and they pass as is.

use crate::ctx::RequestCtx;
use crate::error::ProxyError;
use crate::protocol::{Revision, PROTOCOL_VERSION, SESSION_ID};
use crate::upstream::reply::Reply;
use crate::upstream::stdio::StdioRequest;
use crate::upstream::Transport;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use tracing::field::Empty;
use tracing::Instrument;

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Whether a header must not cross the proxy in either direction.
pub(crate) fn is_hop_by_hop(name: &HeaderName, headers: &HeaderMap) -> bool {
    if HOP_BY_HOP.contains(name) {
        return true;
    }
    // Headers the sender listed in `Connection` are hop-by-hop too.
    headers.get_all(header::CONNECTION).iter().any(|value| {
        value
            .to_str()
            .unwrap_or_default()
            .split(',')
            .any(|token| token.trim().eq_ignore_ascii_case(name.as_str()))
    })
}

/// Client headers that are never forwarded upstream.
fn is_withheld(name: &HeaderName) -> bool {
    name == header::AUTHORIZATION
        || name == header::COOKIE
        || name == header::HOST
        || name == header::CONTENT_LENGTH
        || name == header::ORIGIN
        || name == SESSION_ID
}

/// Sends the client's request (its decided body bytes) to the upstream, in a
/// `forward` span (debug) that records the upstream's status.
pub(crate) async fn forward(
    ctx: &RequestCtx,
    method: Method,
    client_headers: &HeaderMap,
    body: Bytes,
) -> Result<Reply, ProxyError> {
    let span = tracing::debug_span!(
        parent: &ctx.span,
        "forward",
        otel.kind = "client",
        upstream = ctx.upstream.name.as_str(),
        status = Empty,
    );
    let url = match &ctx.upstream.transport {
        Transport::Http { url, .. } => url.clone(),
        Transport::Stdio(stdio) => {
            let request = StdioRequest {
                method: &method,
                session: ctx.upstream_session.as_deref(),
                body,
                stateless: ctx.revision == Revision::V2026_07_28,
            };
            let reply = stdio.forward(request).instrument(span.clone()).await;
            if let Ok(reply) = &reply {
                span.record("status", reply.status.as_u16());
            }
            return reply;
        }
    };
    let mut request = Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(body))
        .map_err(|e| ProxyError::Internal(format!("cannot build the upstream request: {e}")))?;
    let headers = request.headers_mut();
    let tracing = ctx.shared.trace_context;
    for (name, value) in client_headers {
        let replaced = ctx.upstream.injects(name)
            || (tracing && airlock_telemetry::propagate::is_trace_context(name));
        if !replaced && !is_withheld(name) && !is_hop_by_hop(name, client_headers) {
            headers.append(name.clone(), value.clone());
        }
    }
    set_upstream_headers(ctx, headers);
    if tracing {
        airlock_telemetry::propagate::inject(&span, headers);
    }
    let response = ctx
        .shared
        .client
        .send(&ctx.upstream.name, request)
        .instrument(span.clone())
        .await;
    if let Ok(response) = &response {
        span.record("status", response.status().as_u16());
    }
    response.map(Reply::from_http)
}

/// The session id, protocol version and configured credentials.
fn set_upstream_headers(ctx: &RequestCtx, headers: &mut HeaderMap) {
    if let Some(id) = ctx
        .upstream_session
        .as_deref()
        .and_then(|id| HeaderValue::from_str(id).ok())
    {
        headers.insert(SESSION_ID, id);
    }
    if let Transport::Http {
        headers: injected, ..
    } = &ctx.upstream.transport
    {
        for (name, value) in injected {
            headers.insert(name.clone(), value.clone());
        }
    }
}

/// Answers a server-to-client request the proxy refused, so the upstream does not
/// wait forever: a JSON-RPC error POSTed on the same session. Runs in the background.
pub(crate) fn answer_upstream(ctx: std::sync::Arc<RequestCtx>, response: Value) {
    tokio::spawn(async move {
        let body = match serde_json::to_vec(&response) {
            Ok(body) => Bytes::from(body),
            Err(_) => return,
        };
        let url = match &ctx.upstream.transport {
            Transport::Http { url, .. } => url.clone(),
            Transport::Stdio(stdio) => {
                stdio.deliver(ctx.upstream_session.as_deref(), body).await;
                return;
            }
        };
        let Ok(mut request) = Request::builder()
            .method(Method::POST)
            .uri(url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream")
            .body(Full::new(body))
        else {
            return;
        };
        if let Some(version) = &ctx.protocol_header {
            request
                .headers_mut()
                .insert(PROTOCOL_VERSION, version.clone());
        }
        set_upstream_headers(&ctx, request.headers_mut());
        match ctx.shared.client.send(&ctx.upstream.name, request).await {
            Ok(response) => {
                // Drain so the pooled connection can be reused.
                let _ = response.into_body().collect().await;
            }
            Err(err) => {
                tracing::warn!(parent: &ctx.span, error = %err, "could not answer a refused server request")
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_includes_headers_named_in_connection() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Secret-Hop"),
        );
        assert!(is_hop_by_hop(&header::TRANSFER_ENCODING, &headers));
        assert!(is_hop_by_hop(
            &HeaderName::from_static("x-secret-hop"),
            &headers
        ));
        assert!(!is_hop_by_hop(&header::ACCEPT, &headers));
    }

    #[test]
    fn client_credentials_are_withheld() {
        assert!(is_withheld(&header::AUTHORIZATION));
        assert!(is_withheld(&header::COOKIE));
        assert!(!is_withheld(&PROTOCOL_VERSION));
    }
}
