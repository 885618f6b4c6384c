//! A real HTTPS server on 127.0.0.1 for the outbound-TLS tests: a self-signed
//! certificate for `localhost` (rcgen), rustls, hyper. `POST /mcp` answers any
//! JSON-RPC request with a small result (an MCP `initialize` result for
//! `initialize`) and counts the requests; `GET /jwks.json` serves the JWK Set it
//! was given. It runs on the test's runtime and stops with it.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A running HTTPS server.
pub struct TlsServer {
    /// `https://localhost:PORT`.
    pub base: String,
    /// The certificate (PEM) a client must trust.
    pub cert_pem: String,
    requests: Arc<AtomicUsize>,
}

impl TlsServer {
    /// Serves `jwks` at `/jwks.json` and a tiny MCP endpoint at `/mcp`.
    pub async fn start(jwks: Value) -> TlsServer {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("self-signed certificate");
        let cert = certified.cert.der().clone();
        let key = rustls::pki_types::PrivateKeyDer::try_from(certified.signing_key.serialize_der())
            .expect("private key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!(
            "https://localhost:{}",
            listener.local_addr().unwrap().port()
        );
        let requests = Arc::new(AtomicUsize::new(0));
        let (count, jwks) = (Arc::clone(&requests), Arc::new(jwks));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, count, jwks) =
                    (acceptor.clone(), Arc::clone(&count), Arc::clone(&jwks));
                tokio::spawn(async move {
                    // A client that does not trust the certificate fails here.
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = service_fn(move |req| {
                        count.fetch_add(1, Ordering::SeqCst);
                        answer(req, Arc::clone(&jwks))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        TlsServer {
            base,
            cert_pem: certified.cert.pem(),
            requests,
        }
    }

    /// Requests that completed a TLS handshake.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Writes the certificate to `dir/name`; returns the path.
    pub fn write_cert(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, &self.cert_pem).expect("write certificate");
        path
    }
}

async fn answer(
    req: Request<Incoming>,
    jwks: Arc<Value>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() == "/jwks.json" {
        return Ok(json_response(&jwks));
    }
    let body = req.into_body().collect().await.map(|b| b.to_bytes());
    let message: Value = body
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let result = if message["method"] == "initialize" {
        json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
               "serverInfo": {"name": "tls-upstream", "version": "1"}})
    } else {
        json!({})
    };
    Ok(json_response(
        &json!({"jsonrpc": "2.0", "id": message["id"], "result": result}),
    ))
}

fn json_response(body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}
