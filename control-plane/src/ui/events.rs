//! `GET /ui/api/approvals/events`: a `text/event-stream` with one `change` event
//! (`{"approval_id", "state"}`) per approval change, so the page refreshes the
//! moment something happens instead of waiting for its next poll. Same roles as
//! the approval list; keep-alive comments every [`KEEPALIVE`]; the stream ends when
//! the client goes away or the server stops.

use super::{metadata, Page};
use crate::auth::Rpc;
use crate::ControlPlaneError;
use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::json;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

/// Interval of keep-alive comments (proxies in front drop idle streams).
const KEEPALIVE: Duration = Duration::from_secs(15);

/// The body of every page response.
pub(super) type UiBody = BoxBody<Bytes, Infallible>;

/// Opens the change stream for an authorized caller.
pub(super) fn stream(
    req: &Request<Incoming>,
    page: &Page,
    mut stopping: watch::Receiver<bool>,
) -> Result<Response<UiBody>, ControlPlaneError> {
    page.approvals
        .auth()
        .authorize(&metadata(req), Rpc::ApprovalList)?;
    let mut changes = page.approvals.subscribe();
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(16);
    tokio::spawn(async move {
        let mut keepalive = tokio::time::interval(KEEPALIVE);
        let mut next = ": connected\n\n".to_owned();
        loop {
            if tx.send(Ok(Frame::data(Bytes::from(next)))).await.is_err() {
                return; // the page went away
            }
            next = tokio::select! {
                change = changes.recv() => match change {
                    Ok(record) => format!(
                        "event: change\ndata: {}\n\n",
                        json!({"approval_id": record.approval_id, "state": record.state})
                    ),
                    // Changes were missed: one event makes the page reload the list.
                    Err(RecvError::Lagged(_)) => "event: change\ndata: {}\n\n".to_owned(),
                    Err(RecvError::Closed) => return,
                },
                _ = keepalive.tick() => ": keep-alive\n\n".to_owned(),
                _ = stopping.wait_for(|stop| *stop) => return,
            };
        }
    });
    let mut response = Response::new(StreamBody::new(ReceiverStream::new(rx)).boxed());
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}
