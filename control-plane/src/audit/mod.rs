//! `AuditService`: proxies append batches of masked events over a stream and get an
//! acknowledgement per batch once it is durable, carrying the checkpoint signed in
//! the same flush and a consistency proof from the checkpoint they held before;
//! auditors query, follow, verify and ask for proofs of the log.
//!
//! The log is a hash chain and an RFC 6962 Merkle tree (`store/merkle.rs`); every
//! commit signs a C2SP checkpoint ([`checkpoint`], [`writer`]); start-up refuses a
//! log that no longer matches its newest checkpoint ([`startup`]); new
//! checkpoints are copied off the box ([`witness`]).

pub mod checkpoint;
mod prove;
mod query;
pub mod sessions;
mod startup;
mod stream;
pub mod verify;
mod witness;
mod writer;

use crate::api;
use crate::auth::{Authenticator, Rpc};
use crate::bundles::{blocking, now_ms};
use crate::metrics::Metrics;
use crate::store::{Appended, AuditLog};
use crate::ControlPlaneError;
use airlock_checkpoint::{Checkpoint, CheckpointVerifier};
use ed25519_dalek::SigningKey;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

/// Most events accepted in one batch.
pub const MAX_BATCH: usize = 10_000;
/// Longest event id accepted.
const MAX_EVENT_ID: usize = 64;
/// Records read from the store per step of a query.
const QUERY_PAGE: usize = 512;
/// How often retention runs.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// The audit log's key, name, retention and off-box copies (`[audit]` in the
/// control plane's config).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditSettings {
    /// The ed25519 seed file (generated, 0600, when absent). It must be outside
    /// the data directory; `None` is `<data_dir>.audit-signing.key`, beside it.
    pub signing_key: Option<PathBuf>,
    /// The log's name in its checkpoints (also the key name); `None`:
    /// `airlock-audit/<16 hex of the public key's SHA-256>`.
    pub origin: Option<String>,
    /// Records stored longer ago than this are pruned (behind a signed record of
    /// the range); `None` keeps everything.
    pub retention: Option<Duration>,
    /// Each new checkpoint is written here (file `checkpoint`, atomically), if set.
    pub witness_dir: Option<PathBuf>,
    /// Each new checkpoint is POSTed to these URLs (retried, off the ingest path).
    pub checkpoint_webhooks: Vec<String>,
}

impl AuditSettings {
    /// The signing key's path: the configured one, or beside the data directory.
    pub fn key_path(&self, data_dir: &std::path::Path) -> PathBuf {
        self.signing_key.clone().unwrap_or_else(|| {
            let mut name = data_dir
                .file_name()
                .map(std::ffi::OsStr::to_os_string)
                .unwrap_or_else(|| "airlock-data".into());
            name.push(".audit-signing.key");
            data_dir.with_file_name(name)
        })
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
    verifier: Arc<CheckpointVerifier>,
    auth: Arc<Authenticator>,
    settings: Arc<AuditSettings>,
    writer: std::sync::mpsc::Sender<WriteRequest>,
    appended: watch::Sender<u64>,
    /// The newest checkpoint, for the witness copies.
    published: watch::Sender<Option<Arc<Checkpoint>>>,
    metrics: Arc<Metrics>,
    /// Raised when the server shuts down: long-lived streams end so shutdown completes.
    stopping: Option<watch::Receiver<bool>>,
}

impl Audit {
    /// The service over `log`, signing checkpoints with `key`. Refuses a log that
    /// does not match its newest signed checkpoint.
    pub fn new(
        log: Arc<AuditLog>,
        key: SigningKey,
        auth: Arc<Authenticator>,
        settings: &AuditSettings,
        metrics: Arc<Metrics>,
    ) -> Result<Audit, ControlPlaneError> {
        let signer = Arc::new(checkpoint::signer(&key, settings.origin.as_deref())?);
        startup::reconcile(&log, &signer, &key.verifying_key())?;
        let (last, _) = log.head()?;
        let verifier = Arc::new(signer.verifier());
        let writer = writer::spawn(&log, signer)?;
        metrics.audit_last_seq.store(last, Ordering::Relaxed);
        Ok(Audit {
            metrics,
            published: watch::channel(log.newest_checkpoint()).0,
            log,
            key: Arc::new(key),
            verifier,
            auth,
            writer,
            settings: Arc::new(settings.clone()),
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

    /// Starts the background work until `stop`: retention, and the witness copies
    /// of new checkpoints.
    pub fn spawn_background(&self, stop: watch::Receiver<bool>) {
        witness::spawn(
            &self.settings,
            self.published.subscribe(),
            self.verifier(),
            stop.clone(),
        );
        if self.settings.retention.is_none() {
            return;
        }
        let audit = self.clone();
        let mut stop = stop;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PRUNE_EVERY);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.changed() => return,
                }
                let worker = audit.clone();
                if let Err(err) = blocking(move || worker.prune()).await {
                    tracing::error!(error = %err, "could not prune the audit log");
                }
            }
        });
    }

    /// Prunes the records older than the retention, leaving a signed record of
    /// what was pruned (first and last sequence number, last hash). The Merkle
    /// tree keeps their leaves, so checkpoints and proofs still cover them.
    pub fn prune(&self) -> Result<u64, ControlPlaneError> {
        let Some(retention) = self.settings.retention else {
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
    /// `audit.append` span (debug) with the batch's counts. The outcome carries
    /// the checkpoint signed in the same flush.
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
        let stopped = || {
            ControlPlaneError::Serve(
                "the audit writer stopped; restart the control plane".to_owned(),
            )
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.writer.send((events, reply)).map_err(|_| stopped())?;
        let appended = answer.await.map_err(|_| stopped())??;
        let span = tracing::Span::current();
        span.record("stored", appended.stored);
        span.record("duplicates", appended.duplicates);
        span.record("last_seq", appended.last_seq);
        self.appended.send_replace(appended.last_seq);
        if let Some(cp) = &appended.checkpoint {
            self.published.send_if_modified(|newest| {
                let newer = newest.as_ref().is_none_or(|n| n.size() < cp.size());
                if newer {
                    *newest = Some(cp.clone());
                }
                newer
            });
        }
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

    /// The verifier of this log's checkpoints (its key in signed-note format).
    pub fn verifier(&self) -> CheckpointVerifier {
        self.verifier.as_ref().clone()
    }

    /// The newest signed checkpoint.
    pub fn newest_checkpoint(&self) -> Option<Arc<Checkpoint>> {
        self.log.newest_checkpoint()
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
        let acks = stream::serve(self.clone(), request.into_inner());
        Ok(Response::new(Box::pin(acks)))
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
        let verifier = self.verifier.clone();
        let checker = verifier.clone();
        let report = blocking(move || Ok(verify::verify(&log, &checker, &key)?)).await?;
        let (first_broken_seq, problem) = report.broken.clone().unwrap_or_default();
        Ok(Response::new(api::AuditServiceVerifyResponse {
            ok: report.broken.is_none(),
            records: report.records,
            checkpoints: report.checkpoints,
            first_broken_seq,
            problem,
            public_key_hex: hex::encode(key.as_bytes()),
            checkpoint: self
                .newest_checkpoint()
                .map(|c| c.note().to_owned())
                .unwrap_or_default(),
            verifier_key: verifier.key().to_owned(),
            set_aside: report.set_aside,
        }))
    }

    async fn prove(
        &self,
        request: Request<api::AuditServiceProveRequest>,
    ) -> Result<Response<api::AuditServiceProveResponse>, Status> {
        self.auth.authorize(request.metadata(), Rpc::AuditProve)?;
        let answer = self.prove(request.into_inner()).await?;
        Ok(Response::new(answer))
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
