//! The reviewers' web page, served over plain HTTP/1.1 on `[ui] listen` (its own
//! port: the gRPC port speaks HTTP/2 only). `GET /ui` is one HTML page with inline
//! JS (no build step) that polls `GET /ui/api/approvals` every second and posts
//! reviews to `POST /ui/api/approvals/{id}/decide`. Every API call carries the
//! reviewer's own bearer token (typed into the page, kept in `sessionStorage`), and
//! goes through the same role table and review rules as gRPC.

use crate::approvals::Approvals;
use crate::auth::Rpc;
use crate::store::Verdict;
use crate::ControlPlaneError;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::sync::watch;

const PAGE: &str = include_str!("page.html");
/// Largest review body accepted.
const MAX_BODY: usize = 16 * 1024;

/// Serves the page until `stopping` turns true.
pub(crate) fn spawn(
    listener: TcpListener,
    approvals: Approvals,
    mut stopping: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stopping.changed() => return,
            };
            let Ok((stream, _)) = accepted else { continue };
            let approvals = approvals.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let approvals = approvals.clone();
                    async move { Ok::<_, std::convert::Infallible>(route(req, approvals).await) }
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

async fn route(req: Request<Incoming>, approvals: Approvals) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    match (req.method(), path.as_str()) {
        (&Method::GET, "/" | "/ui" | "/ui/") => {
            reply(StatusCode::OK, "text/html; charset=utf-8", PAGE)
        }
        (&Method::GET, "/ui/api/approvals") => list(req, approvals).await.unwrap_or_else(failure),
        (&Method::POST, p) if p.starts_with("/ui/api/approvals/") && p.ends_with("/decide") => {
            let id = p["/ui/api/approvals/".len()..p.len() - "/decide".len()].to_owned();
            decide(req, approvals, id).await.unwrap_or_else(failure)
        }
        _ => json_reply(
            StatusCode::NOT_FOUND,
            &json!({"error": "not found: the page is at /ui"}),
        ),
    }
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
    Ok(json_reply(
        StatusCode::OK,
        &json!({"me": {"subject": caller.subject, "groups": caller.groups}, "approvals": records}),
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
