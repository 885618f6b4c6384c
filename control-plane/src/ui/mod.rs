//! The reviewers' web page, served over plain HTTP/1.1 on `[ui] listen` (its own
//! port: the gRPC port speaks HTTP/2 only). `GET /ui` is one HTML page with inline
//! JS (no build step) that reloads `GET /ui/api/approvals` whenever
//! `GET /ui/api/approvals/events` ([`events`], a `text/event-stream`) says an
//! approval changed (and every 5 s, or every second while that stream is down), and
//! posts reviews to `POST /ui/api/approvals/{id}/decide`; its session view reads the
//! audit log through `GET /ui/api/sessions`, `GET /ui/api/sessions/{id}` and
//! `GET /ui/api/approvals/{id}/session` ([`sessions`]). Every API call carries the
//! caller's own bearer token (typed into the page, kept in `sessionStorage`), and
//! goes through the same role table ([`crate::auth::Rpc`]) and review rules as gRPC.
//! The page is served with a Content-Security-Policy that lets only its own inline
//! script and style run (by hash), so data shown by it can never execute.

mod events;
mod sessions;

use crate::approvals::Approvals;
use crate::audit::Audit;
use crate::auth::Rpc;
use crate::store::Verdict;
use crate::ControlPlaneError;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::LazyLock;
use tokio::net::TcpListener;
use tokio::sync::watch;

const PAGE: &str = include_str!("page.html");
/// Largest review body accepted.
const MAX_BODY: usize = 16 * 1024;

/// What the page's API serves from: the approvals and the audit log.
#[derive(Clone)]
pub(crate) struct Page {
    /// Approvals (and the authenticator).
    pub(crate) approvals: Approvals,
    /// The audit log, for the session view.
    pub(crate) audit: Audit,
}

/// The page's Content-Security-Policy: nothing loads or runs but the page's own
/// inline `<script>` and `<style>` (by SHA-256) and `fetch` to its own origin. A
/// string from the log that reached the DOM as markup would still not execute.
static CSP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; script-src '{}'; style-src '{}'; connect-src 'self'; \
         img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        inline_hash(PAGE, "script"),
        inline_hash(PAGE, "style"),
    )
});

/// `sha256-<base64>` of the text of the first `<tag>` element of `page`.
fn inline_hash(page: &str, tag: &str) -> String {
    use base64::Engine as _;
    let open = format!("<{tag}>");
    let text = page
        .split_once(&open)
        .and_then(|(_, rest)| rest.split_once(&format!("</{tag}>")))
        .map_or("", |(text, _)| text);
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// Serves the page until `stopping` turns true.
pub(crate) fn spawn(listener: TcpListener, page: Page, mut stopping: watch::Receiver<bool>) {
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stopping.changed() => return,
            };
            let Ok((stream, _)) = accepted else { continue };
            let page = page.clone();
            let stopping = stopping.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (page, stopping) = (page.clone(), stopping.clone());
                    async move {
                        let events = req.method() == Method::GET
                            && req.uri().path() == "/ui/api/approvals/events";
                        let response = if events {
                            events::stream(&req, &page, stopping)
                                .unwrap_or_else(|e| failure(e).map(BodyExt::boxed))
                        } else {
                            route(req, page).await.map(BodyExt::boxed)
                        };
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

/// Binds the page's listener.
pub(crate) async fn bind(addr: SocketAddr) -> Result<TcpListener, ControlPlaneError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ControlPlaneError::Bind { addr, source })
}

fn reply(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

fn json_reply(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    reply(
        status,
        "application/json",
        serde_json::to_vec(body).unwrap_or_default(),
    )
}

fn failure(err: ControlPlaneError) -> Response<Full<Bytes>> {
    let status = tonic::Status::from(err);
    let code = match status.code() {
        tonic::Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        tonic::Code::PermissionDenied => StatusCode::FORBIDDEN,
        tonic::Code::NotFound => StatusCode::NOT_FOUND,
        tonic::Code::InvalidArgument => StatusCode::BAD_REQUEST,
        tonic::Code::FailedPrecondition | tonic::Code::AlreadyExists => StatusCode::CONFLICT,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    json_reply(code, &json!({"error": status.message()}))
}

async fn route(req: Request<Incoming>, page: Page) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let approvals = page.approvals.clone();
    match (req.method(), path.as_str()) {
        (&Method::GET, "/" | "/ui" | "/ui/") => page_reply(),
        (&Method::GET, "/ui/api/approvals") => list(req, approvals).await.unwrap_or_else(failure),
        (&Method::POST, p) if p.starts_with("/ui/api/approvals/") && p.ends_with("/decide") => {
            let id = p["/ui/api/approvals/".len()..p.len() - "/decide".len()].to_owned();
            decide(req, approvals, id).await.unwrap_or_else(failure)
        }
        (&Method::GET, p) if p.starts_with("/ui/api/") => sessions::route(&req, &page, p)
            .await
            .unwrap_or_else(|| Ok(not_found()))
            .unwrap_or_else(failure),
        _ => not_found(),
    }
}

fn not_found() -> Response<Full<Bytes>> {
    json_reply(
        StatusCode::NOT_FOUND,
        &json!({"error": "not found: the page is at /ui"}),
    )
}

fn page_reply() -> Response<Full<Bytes>> {
    let mut response = reply(StatusCode::OK, "text/html; charset=utf-8", PAGE);
    if let Ok(csp) = header::HeaderValue::from_str(&CSP) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    response
}

fn metadata(req: &Request<Incoming>) -> tonic::metadata::MetadataMap {
    tonic::metadata::MetadataMap::from_headers(req.headers().clone())
}

async fn list(
    req: Request<Incoming>,
    approvals: Approvals,
) -> Result<Response<Full<Bytes>>, ControlPlaneError> {
    let caller = approvals
        .auth()
        .authorize(&metadata(&req), Rpc::ApprovalList)?;
    let records = approvals.list(false, 50).await?;
    // Each approval with its facts as the lines reviewers read first (the same text
    // as `airlock approvals show` and webhooks).
    let shown: Vec<serde_json::Value> = records
        .iter()
        .map(|r| {
            let mut value = serde_json::to_value(r).unwrap_or_default();
            value["facts"] = json!(crate::approvals::summary::lines(&r.summary_json));
            value
        })
        .collect();
    Ok(json_reply(
        StatusCode::OK,
        &json!({"me": {"subject": caller.subject, "groups": caller.groups}, "approvals": shown}),
    ))
}

async fn decide(
    req: Request<Incoming>,
    approvals: Approvals,
    id: String,
) -> Result<Response<Full<Bytes>>, ControlPlaneError> {
    let caller = approvals
        .auth()
        .authorize(&metadata(&req), Rpc::ApprovalDecide)?;
    let bytes = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| ControlPlaneError::InvalidArgument(format!("cannot read the review: {e}")))?
        .to_bytes();
    let body: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ControlPlaneError::InvalidArgument(format!("the review is not JSON: {e}")))?;
    let verdict = match body["verdict"].as_str() {
        Some("approve") => Verdict::Approve,
        Some("deny") => Verdict::Deny,
        _ => {
            return Err(ControlPlaneError::InvalidArgument(
                "verdict must be \"approve\" or \"deny\"".into(),
            ))
        }
    };
    let reason = body["reason"].as_str().unwrap_or_default().to_owned();
    let record = approvals.decide_as(caller, id, verdict, reason).await?;
    Ok(json_reply(StatusCode::OK, &json!({"approval": record})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csp_hashes_the_pages_own_script_and_style() {
        assert!(PAGE.matches("<script>").count() == 1 && PAGE.matches("<style>").count() == 1);
        let script = inline_hash(PAGE, "script");
        assert!(CSP.contains(&format!("script-src '{script}'")), "{}", *CSP);
        assert_ne!(script, inline_hash("", "script"), "the script was found");
        assert!(!CSP.contains("unsafe-inline"));
    }
}
