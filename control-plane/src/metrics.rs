//! Prometheus metrics of the control plane on their own plain-HTTP port
//! (`metrics_listen`), in the text exposition format: audit ingest counters and the
//! log's head. A tiny hand-written responder: it answers `GET /metrics` and nothing
//! else, so it needs no HTTP framework.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
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
}

impl Metrics {
    /// The exposition text.
    pub fn render(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "# HELP airlock_audit_events_stored_total Audit events stored (rate() is the ingest rate).\n\
             # TYPE airlock_audit_events_stored_total counter\n\
             airlock_audit_events_stored_total {}\n\
             # HELP airlock_audit_events_duplicate_total Audit events received again and not stored twice.\n\
             # TYPE airlock_audit_events_duplicate_total counter\n\
             airlock_audit_events_duplicate_total {}\n\
             # HELP airlock_audit_batches_total Durable audit batches acknowledged.\n\
             # TYPE airlock_audit_batches_total counter\n\
             airlock_audit_batches_total {}\n\
             # HELP airlock_audit_last_seq The audit log's last sequence number.\n\
             # TYPE airlock_audit_last_seq gauge\n\
             airlock_audit_last_seq {}\n",
            get(&self.audit_stored),
            get(&self.audit_duplicates),
            get(&self.audit_batches),
            get(&self.audit_last_seq),
        )
    }
}

/// Serves `GET /metrics` on `listener` until `stop` turns true.
pub fn serve(listener: TcpListener, metrics: Arc<Metrics>, mut stop: watch::Receiver<bool>) {
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(_) => continue,
                },
                _ = stop.changed() => return,
            };
            let metrics = Arc::clone(&metrics);
            tokio::spawn(async move {
                let mut head = [0u8; 1024];
                let n = match tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    socket.read(&mut head),
                )
                .await
                {
                    Ok(Ok(n)) => n,
                    _ => return,
                };
                let request = String::from_utf8_lossy(&head[..n]);
                let (status, body) = if request.starts_with("GET /metrics ") {
                    ("200 OK", metrics.render())
                } else {
                    (
                        "404 Not Found",
                        "only GET /metrics is served here\n".to_owned(),
                    )
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
}
