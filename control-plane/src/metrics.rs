//! Prometheus metrics of the control plane on their own plain-HTTP port
//! (`metrics_listen`), in the text exposition format: audit ingest counters, the
//! log's head, and the approvals waiting for reviewers. Served by hyper; it answers
//! `GET /metrics` and nothing else.

use crate::store::ApprovalState;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Counters shared by the services.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Audit events newly stored.
    pub audit_stored: AtomicU64,
    /// Audit events received again (resent after a reconnect).
    pub audit_duplicates: AtomicU64,
    /// Durable batches acknowledged.
    pub audit_batches: AtomicU64,
    /// The log's last sequence number.
    pub audit_last_seq: AtomicU64,
    /// Approvals waiting for reviewers now.
    pub approvals_pending: AtomicU64,
    /// Approved grants not used yet.
    pub approvals_granted: AtomicU64,
    /// Approvals that reached a final state, by state (see [`FINAL_STATES`]).
    approvals_ended: [AtomicU64; FINAL_STATES.len()],
}

/// The final approval states, in the order of their counters and label values.
const FINAL_STATES: [(ApprovalState, &str); 4] = [
    (ApprovalState::Denied, "denied"),
    (ApprovalState::Expired, "expired"),
    (ApprovalState::Cancelled, "cancelled"),
    (ApprovalState::Consumed, "consumed"),
];

impl Metrics {
    /// Sets the approval gauges from the live (pending and approved) counts.
    pub fn set_live_approvals(&self, pending: u64, granted: u64) {
        self.approvals_pending.store(pending, Ordering::Relaxed);
        self.approvals_granted.store(granted, Ordering::Relaxed);
    }

    /// Counts an approval that reached the final `state`.
    pub fn approval_ended(&self, state: ApprovalState) {
        if let Some(i) = FINAL_STATES.iter().position(|(s, _)| *s == state) {
            self.approvals_ended[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut text = String::with_capacity(2048);
        let mut one = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = write!(
                text,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        };
        one(
            "airlock_audit_events_stored_total",
            "counter",
            "Audit events stored (rate() is the ingest rate).",
            get(&self.audit_stored),
        );
        one(
            "airlock_audit_events_duplicate_total",
            "counter",
            "Audit events received again and not stored twice.",
            get(&self.audit_duplicates),
        );
        one(
            "airlock_audit_batches_total",
            "counter",
            "Durable audit batches acknowledged.",
            get(&self.audit_batches),
        );
        one(
            "airlock_audit_last_seq",
            "gauge",
            "The audit log's last sequence number.",
            get(&self.audit_last_seq),
        );
        one(
            "airlock_approvals_pending",
            "gauge",
            "Held calls waiting for reviewers.",
            get(&self.approvals_pending),
        );
        one(
            "airlock_approvals_granted",
            "gauge",
            "Approved grants not used yet.",
            get(&self.approvals_granted),
        );
        text.push_str(
            "# HELP airlock_approvals_ended_total Approvals that reached a final state.\n\
             # TYPE airlock_approvals_ended_total counter\n",
        );
        for ((_, label), counter) in FINAL_STATES.iter().zip(&self.approvals_ended) {
            let _ = writeln!(
                text,
                "airlock_approvals_ended_total{{state=\"{label}\"}} {}",
                get(counter)
            );
        }
        text
    }
}

/// Serves `GET /metrics` on `listener` (HTTP/1.1, hyper) until `stop` turns true.
pub fn serve(listener: TcpListener, metrics: Arc<Metrics>, mut stop: watch::Receiver<bool>) {
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(_) => continue,
                },
                _ = stop.changed() => return,
            };
            let metrics = Arc::clone(&metrics);
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let response = answer(&req, &metrics);
                    async move { Ok::<_, Infallible>(response) }
                });
                // A scraper that stalls is dropped rather than holding a task.
                let connection = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(5))
                    .serve_connection(TokioIo::new(stream), service);
                let _ = tokio::time::timeout(Duration::from_secs(30), connection).await;
            });
        }
    });
}

fn answer(req: &Request<Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let (status, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => (StatusCode::OK, metrics.render()),
        _ => (
            StatusCode::NOT_FOUND,
            "only GET /metrics is served here\n".to_owned(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}
