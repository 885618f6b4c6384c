//! `AuditService`: proxies append batches of masked events over a stream and get an
//! acknowledgement per batch once it is durable; auditors query, follow and verify
//! the hash-chained log. Checkpoints are signed every `checkpoint_every` records and
//! every `checkpoint_interval_s` seconds when the log grew.

pub mod checkpoint;
pub mod sessions;
pub mod verify;
mod writer;

use crate::api;
use crate::auth::{Authenticator, Rpc};
use crate::bundles::{blocking, now_ms};
use crate::metrics::Metrics;
use crate::store::{Appended, AuditLog};
use crate::ControlPlaneError;
use ed25519_dalek::SigningKey;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt as _};
use tonic::{Request, Response, Status, Streaming};

/// Most events accepted in one batch.
pub const MAX_BATCH: usize = 10_000;
/// Longest event id accepted.
const MAX_EVENT_ID: usize = 64;
/// Records read from the store per step of a query.
const QUERY_PAGE: usize = 512;

/// How checkpoints are made (`[audit]` in the control plane's config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    /// Sign a checkpoint every this many records.
    pub checkpoint_every: u64,
    /// And at least this often when the log grew.
    pub checkpoint_interval: Duration,
    /// The ed25519 seed file (generated when absent).
    pub signing_key: Option<std::path::PathBuf>,
    /// Records stored longer ago than this are pruned (behind a signed
    /// checkpoint); `None` keeps everything.
    pub retention: Option<Duration>,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(60),
            signing_key: None,
            retention: None,
        }
    }
}

/// A batch for the writer thread, and where to send its outcome.
type WriteRequest = (
    Vec<api::AuditEvent>,
    tokio::sync::oneshot::Sender<Result<Appended, crate::store::StoreError>>,
);

/// The `AuditService` implementation (a cheap handle).
#[derive(Clone)]
pub struct Audit {
    log: Arc<AuditLog>,
    key: Arc<SigningKey>,
    auth: Arc<Authenticator>,
    retention: Option<Duration>,
    writer: std::sync::mpsc::Sender<WriteRequest>,
    appended: watch::Sender<u64>,
    metrics: Arc<Metrics>,
    /// Raised when the server shuts down: long-lived streams end so shutdown completes.
    stopping: Option<watch::Receiver<bool>>,
}

impl Audit {
    /// The service over `log`, signing checkpoints with `key`.
    pub fn new(
        log: Arc<AuditLog>,
        key: SigningKey,
        auth: Arc<Authenticator>,
        settings: &AuditSettings,
        metrics: Arc<Metrics>,
    ) -> Result<Audit, ControlPlaneError> {
        let (last, _) = log.head()?;
        let every = settings.checkpoint_every.max(1);
        let writer = writer::spawn(&log, key.clone(), every)?;
        metrics.audit_last_seq.store(last, Ordering::Relaxed);
        Ok(Audit {
            metrics,
            log,
            key: Arc::new(key),
            auth,
            writer,
            retention: settings.retention,
            appended: watch::channel(last).0,
            stopping: None,
        })
    }

    /// Ends the `Append` and followed `Query` streams when `stopping` turns true, so
    /// that a graceful shutdown does not wait for proxies to hang up (they resend
    /// what was not acknowledged after reconnecting).
    pub fn stop_on(mut self, stopping: watch::Receiver<bool>) -> Audit {
        self.stopping = Some(stopping);
        self
    }

    /// Signs a checkpoint every `interval` while the log grows, until `stop`.
    pub fn spawn_checkpointer(&self, interval: Duration, mut stop: watch::Receiver<bool>) {
        let audit = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval.max(Duration::from_millis(100)));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.changed() => return,
                }
                let worker = audit.clone();
                if let Err(err) = blocking(move || worker.checkpoint_if_grown()).await {
                    tracing::error!(error = %err, "could not sign an audit checkpoint");
                }
                let worker = audit.clone();
                if let Err(err) = blocking(move || worker.prune()).await {
                    tracing::error!(error = %err, "could not prune the audit log");
                }
            }
        });
    }

    /// Signs a checkpoint of the current head if it moved since the last one.
    fn checkpoint_if_grown(&self) -> Result<(), ControlPlaneError> {
        let (seq, hash) = self.log.head()?;
        let last = self.log.last_checkpoint()?.map_or(0, |c| c.seq);
        if seq > last {
            let mut cp = api::AuditCheckpoint {
                seq,
                hash,
                unix_ms: now_ms(),
                first_pruned_seq: 0,
                signature: Vec::new(),
            };
            checkpoint::sign(&self.key, &mut cp);
            self.log.put_checkpoint(&cp)?;
        }
        Ok(())
    }

    /// Prunes the records older than the retention, leaving a signed checkpoint
    /// of what was pruned (first and last sequence number, last hash).
    pub fn prune(&self) -> Result<u64, ControlPlaneError> {
        let Some(retention) = self.retention else {
            return Ok(0);
        };
        let now = now_ms();
        let cutoff = now.saturating_sub(retention.as_millis() as u64);
        let pruned = self
            .log
            .prune_before(cutoff, now, |cp| checkpoint::sign(&self.key, cp))?;
        if pruned > 0 {
            tracing::info!(pruned, "pruned audit records past their retention");
        }
        Ok(pruned)
    }

    /// Appends one batch durably (in process: benches and tests use it too), in an
    /// `audit.append` span (debug) with the batch's counts.
    #[tracing::instrument(
        name = "audit.append",
        level = "debug",
        skip_all,
        fields(events = events.len(), stored, duplicates, last_seq)
    )]
    pub async fn append(
        &self,
        events: Vec<api::AuditEvent>,
    ) -> Result<Appended, ControlPlaneError> {
        validate(&events)?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.writer.send((events, reply)).map_err(|_| {
            ControlPlaneError::Serve(
                "the audit writer stopped; restart the control plane".to_owned(),
            )
        })?;
        let appended = answer.await.map_err(|_| {
            ControlPlaneError::Serve(
                "the audit writer stopped; restart the control plane".to_owned(),
            )
        })??;
        let span = tracing::Span::current();
        span.record("stored", appended.stored);
        span.record("duplicates", appended.duplicates);
        span.record("last_seq", appended.last_seq);
        self.appended.send_replace(appended.last_seq);
        let m = &self.metrics;
        m.audit_stored
            .fetch_add(u64::from(appended.stored), Ordering::Relaxed);
        m.audit_duplicates
            .fetch_add(u64::from(appended.duplicates), Ordering::Relaxed);
        m.audit_batches.fetch_add(1, Ordering::Relaxed);
        m.audit_last_seq
            .fetch_max(appended.last_seq, Ordering::Relaxed);
        Ok(appended)
    }

    /// The public key checkpoints verify with.
    pub fn public_key(&self) -> ed25519_dalek::VerifyingKey {
        self.key.verifying_key()
    }
}

fn validate(events: &[api::AuditEvent]) -> Result<(), ControlPlaneError> {
    if events.len() > MAX_BATCH {
        return Err(ControlPlaneError::InvalidArgument(format!(
            "a batch of {} events is over the limit of {MAX_BATCH}; send smaller batches",
            events.len()
        )));
    }
    for event in events {
        let id = &event.event_id;
        if id.is_empty() || id.len() > MAX_EVENT_ID {
            return Err(ControlPlaneError::InvalidArgument(format!(
                "event_id {id:?} is not valid: it must be 1 to {MAX_EVENT_ID} bytes"
            )));
        }
    }
    Ok(())
}

/// Whether a record matches a query's filters.
fn matches(q: &api::AuditServiceQueryRequest, record: &api::AuditRecord) -> bool {
    let Some(e) = &record.event else { return false };
    let eq = |want: &str, have: &str| want.is_empty() || want == have;
    (q.since_unix_ms == 0 || e.unix_ms >= q.since_unix_ms)
        && (q.until_unix_ms == 0 || e.unix_ms < q.until_unix_ms)
        && eq(&q.identity, &e.identity)
        && eq(&q.server, &e.server)
        && eq(&q.tool, &e.tool)
        && eq(&q.verdict, &e.verdict)
        && eq(&q.session_id, &e.session_id)
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl api::audit_service_server::AuditService for Audit {
    type AppendStream = BoxStream<api::AuditServiceAppendResponse>;
    type QueryStream = BoxStream<api::AuditServiceQueryResponse>;

    async fn append(
        &self,
        request: Request<Streaming<api::AuditServiceAppendRequest>>,
    ) -> Result<Response<Self::AppendStream>, Status> {
        self.auth.authorize(request.metadata(), Rpc::AuditAppend)?;
        let mut incoming = request.into_inner();
        let (tx, rx) = mpsc::channel(64);
        let audit = self.clone();
        let mut stopping = self.stopping.clone();
        tokio::spawn(async move {
            loop {
                // Only the wait for the next batch is cut short: a batch being
                // appended completes and is acknowledged.
                let next = tokio::select! {
                    next = incoming.next() => next,
                    () = stopped(&mut stopping) => return,
                };
                let Some(next) = next else { return };
                let reply = match next {
                    Ok(batch) => audit
                        .append(batch.events)
                        .await
                        .map(|a| api::AuditServiceAppendResponse {
                            batch: batch.batch,
                            stored: a.stored,
                            duplicates: a.duplicates,
                            last_seq: a.last_seq,
                        })
                        .map_err(Status::from),
                    Err(status) => Err(status),
                };
                let failed = reply.is_err();
                if tx.send(reply).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn query(
        &self,
        request: Request<api::AuditServiceQueryRequest>,
    ) -> Result<Response<Self::QueryStream>, Status> {
        self.auth.authorize(request.metadata(), Rpc::AuditQuery)?;
        let query = request.into_inner();
        let (tx, rx) = mpsc::channel(256);
        let audit = self.clone();
        let mut stopping = self.stopping.clone();
        tokio::spawn(async move {
            tokio::select! {
                served = audit.serve_query(query, &tx) => {
                    if let Err(status) = served {
                        let _ = tx.send(Err(status)).await;
                    }
                }
                () = stopped(&mut stopping) => {}
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn verify(
        &self,
        request: Request<api::AuditServiceVerifyRequest>,
    ) -> Result<Response<api::AuditServiceVerifyResponse>, Status> {
        self.auth.authorize(request.metadata(), Rpc::AuditVerify)?;
        let log = self.log.clone();
        let key = self.public_key();
        let report = blocking(move || Ok(verify::verify(&log, &key)?)).await?;
        let (first_broken_seq, problem) = report.broken.clone().unwrap_or_default();
        Ok(Response::new(api::AuditServiceVerifyResponse {
            ok: report.broken.is_none(),
            records: report.records,
            checkpoints: report.checkpoints,
            first_broken_seq,
            problem,
            public_key_hex: hex::encode(key.as_bytes()),
        }))
    }
}

type QueryTx = mpsc::Sender<Result<api::AuditServiceQueryResponse, Status>>;

/// Sends one record; `false` when the client went away.
async fn send(tx: &QueryTx, record: api::AuditRecord) -> bool {
    let item = api::AuditServiceQueryResponse {
        record: Some(record),
    };
    tx.send(Ok(item)).await.is_ok()
}

impl Audit {
    /// Streams matching records; `last` keeps only the final N of the stored ones;
    /// `follow` then waits for appends until the client goes away.
    async fn serve_query(
        &self,
        query: api::AuditServiceQueryRequest,
        tx: &QueryTx,
    ) -> Result<(), Status> {
        let mut appended = self.appended.subscribe();
        let mut after = query.after_seq;
        if query.last > 0 {
            let keep = query.last as usize;
            let mut tail = std::collections::VecDeque::with_capacity(keep + 1);
            while let Some(page) = self.next_page(&query, &mut after).await? {
                for record in page {
                    tail.push_back(record);
                    if tail.len() > keep {
                        tail.pop_front();
                    }
                }
            }
            for record in tail {
                if !send(tx, record).await {
                    return Ok(());
                }
            }
        } else if !self.send_stored(&query, &mut after, tx).await? {
            return Ok(());
        }
        if !query.follow {
            return Ok(());
        }
        loop {
            tokio::select! {
                changed = appended.changed() => if changed.is_err() { return Ok(()) },
                () = tx.closed() => return Ok(()),
            }
            if !self.send_stored(&query, &mut after, tx).await? {
                return Ok(());
            }
        }
    }

    /// Sends every matching record after `after`; `false` when the client went away.
    async fn send_stored(
        &self,
        query: &api::AuditServiceQueryRequest,
        after: &mut u64,
        tx: &QueryTx,
    ) -> Result<bool, Status> {
        while let Some(page) = self.next_page(query, after).await? {
            for record in page {
                if !send(tx, record).await {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// The matching records of the next page after `after` (advanced), `None` at
    /// the end of the log.
    async fn next_page(
        &self,
        query: &api::AuditServiceQueryRequest,
        after: &mut u64,
    ) -> Result<Option<Vec<api::AuditRecord>>, Status> {
        let log = self.log.clone();
        let from = *after;
        let page = blocking(move || Ok(log.records_after(from, QUERY_PAGE)?)).await?;
        let Some(last) = page.last() else {
            return Ok(None);
        };
        *after = last.seq;
        Ok(Some(
            page.into_iter().filter(|r| matches(query, r)).collect(),
        ))
    }
}

/// Resolves once the server is stopping; never without a stop signal.
async fn stopped(stopping: &mut Option<watch::Receiver<bool>>) {
    if let Some(rx) = stopping {
        if rx.wait_for(|stop| *stop).await.is_ok() {
            return;
        }
    }
    std::future::pending().await
}
