//! The pooled HTTP/1.1 client to upstream MCP servers (and JWKS endpoints), over
//! plain HTTP or TLS (rustls, ring), with connect and response timeouts that become
//! `ProxyError`s naming the upstream.
//!
//! TLS trusts the system's root certificates plus the PEM files of
//! `[outbound_tls] ca_certs`, verifies the host name, and speaks TLS 1.2 or 1.3
//! only; there is no switch to skip verification.

use crate::error::ProxyError;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use std::sync::Arc;
use std::time::Duration;

/// A pooled client shared by every request of a proxy.
#[derive(Debug, Clone)]
pub(crate) struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    request_timeout: Duration,
}

impl HttpClient {
    /// A client trusting the system's roots and `ca_certs` (validated by the config).
    pub(crate) fn with_ca_certs(
        connect_timeout: Duration,
        request_timeout: Duration,
        ca_certs: &[CertificateDer<'static>],
    ) -> Self {
        let mut roots = system_roots();
        roots.add_parsable_certificates(ca_certs.iter().cloned());
        Self::build(connect_timeout, request_timeout, roots)
    }

    fn build(
        connect_timeout: Duration,
        request_timeout: Duration,
        roots: rustls::RootCertStore,
    ) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(false);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|b| b.with_root_certificates(roots).with_no_client_auth());
        let tls = match tls {
            Ok(tls) => tls,
            // The ring provider supports the safe defaults: this cannot happen.
            Err(e) => unreachable!("rustls ring provider without safe defaults: {e}"),
        };
        let https = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(64)
            .build(https);
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

/// The system's trusted roots; unreadable ones are skipped (and logged once).
fn system_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    if let Some(error) = found.errors.first() {
        tracing::debug!(%error, "some system root certificates could not be loaded");
    }
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        tracing::debug!("no system root certificates: only outbound_tls.ca_certs are trusted");
    }
    roots
}
