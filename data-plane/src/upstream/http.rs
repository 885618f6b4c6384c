//! The pooled HTTP/1.1 client to upstream MCP servers, with connect and response
//! timeouts that become `ProxyError`s naming the upstream.

use crate::error::ProxyError;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// A pooled client shared by every request of a proxy.
#[derive(Debug, Clone)]
pub(crate) struct HttpClient {
    client: Client<HttpConnector, Full<Bytes>>,
    request_timeout: Duration,
}

impl HttpClient {
    pub(crate) fn new(connect_timeout: Duration, request_timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(64)
            .build(connector);
        Self {
            client,
            request_timeout,
        }
    }

    /// Sends a request; waits at most the request timeout for the response head
    /// (the body, an SSE stream for instance, may then last longer).
    pub(crate) async fn send(
        &self,
        upstream: &str,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, ProxyError> {
        match tokio::time::timeout(self.request_timeout, self.client.request(request)).await {
            Err(_) => Err(ProxyError::UpstreamTimeout {
                upstream: upstream.to_owned(),
                after: self.request_timeout,
            }),
            Ok(Err(err)) => Err(ProxyError::UpstreamUnavailable {
                upstream: upstream.to_owned(),
                detail: describe(&err),
            }),
            Ok(Ok(response)) => Ok(response),
        }
    }
}

/// The error chain in one line ("client error (Connect): tcp connect error: ...").
fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}
