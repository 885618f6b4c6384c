//! `ApprovalService`: proxies submit held calls and wait on them; reviewers list,
//! inspect and decide them; a decided approval is a grant used once.
//!
//! Records live in the store (tree `approvals`, grant index `grants`) so a restarted
//! control plane keeps every pending approval; the pending and approved ones are
//! also kept in memory for the watchers and the expiry sweep. Every change goes
//! through one lock (`live`), is written durably, then broadcast to watchers.

mod convert;
mod rules;
mod service;
pub mod summary;

use crate::auth::{Authenticator, Caller, Role};
use crate::bundles::{blocking, now_ms};
use crate::metrics::Metrics;
use crate::store::{grant_key, ApprovalRecord, ApprovalState, Mode, Store, Verdict};
use crate::webhooks::Webhooks;
use crate::{api, ControlPlaneError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{broadcast, watch};

/// How often expired approvals and grants are swept.
const SWEEP_EVERY: Duration = Duration::from_millis(100);
/// Changes buffered per watcher before it re-syncs from a snapshot.
const CHANGES: usize = 4096;

/// The approval service (cheap to clone: the web page shares it).
#[derive(Clone)]
pub struct Approvals {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    auth: Arc<Authenticator>,
    /// Pending and approved (unused) records by id.
    live: Mutex<HashMap<String, ApprovalRecord>>,
    changes: broadcast::Sender<Arc<ApprovalRecord>>,
    stopping: watch::Receiver<bool>,
    webhooks: Webhooks,
    metrics: Arc<Metrics>,
}

impl Inner {
    /// Updates the metrics after `record` changed (under the `live` lock, so the
    /// gauges match the map).
    fn count(&self, live: &HashMap<String, ApprovalRecord>, record: Option<&ApprovalRecord>) {
        if let Some(record) = record.filter(|r| r.state.is_final()) {
            self.metrics.approval_ended(record.state);
        }
        let pending = live
            .values()
            .filter(|r| r.state == ApprovalState::Pending)
            .count() as u64;
        self.metrics
            .set_live_approvals(pending, live.len() as u64 - pending);
    }
}

impl Approvals {
    /// Loads the live approvals from `store` and starts the expiry sweep; keeps the
    /// approval gauges and counters of `metrics` up to date.
    pub fn new(
        store: Arc<dyn Store>,
        auth: Arc<Authenticator>,
        stopping: watch::Receiver<bool>,
        webhooks: Webhooks,
        metrics: Arc<Metrics>,
    ) -> Result<Approvals, ControlPlaneError> {
        let live: HashMap<String, ApprovalRecord> = store
            .approvals()?
            .into_iter()
            .filter(|r| !r.state.is_final())
            .map(|r| (r.approval_id.clone(), r))
            .collect();
        let approvals = Approvals {
            inner: Arc::new(Inner {
                store,
                auth,
                live: Mutex::new(live),
                changes: broadcast::channel(CHANGES).0,
                stopping,
                webhooks,
                metrics,
            }),
        };
        approvals.inner.count(&approvals.live(), None);
        approvals.spawn_sweeper();
        Ok(approvals)
    }

    /// Every change from now on (the page's live stream).
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<ApprovalRecord>> {
        self.inner.changes.subscribe()
    }

    /// The authenticator (the web page checks the same tokens).
    pub(crate) fn auth(&self) -> &Authenticator {
        &self.inner.auth
    }

    fn live(&self) -> MutexGuard<'_, HashMap<String, ApprovalRecord>> {
        // A poisoned lock only means another request panicked mid-change; the map
        // itself is still consistent with the store, so keep serving.
        self.inner
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `change` under the lock, persists the record it returns (when it says
    /// it changed), updates the live map and tells the watchers.
    async fn change<F>(&self, change: F) -> Result<ApprovalRecord, ControlPlaneError>
    where
        F: FnOnce(
                &Inner,
                &mut HashMap<String, ApprovalRecord>,
            ) -> Result<(ApprovalRecord, bool), ControlPlaneError>
            + Send
            + 'static,
    {
        let this = self.clone();
        let (record, changed) = blocking(move || {
            let inner = &this.inner;
            let mut live = this.live();
            let (record, changed) = change(inner, &mut live)?;
            if changed {
                inner.store.put_approval(&record)?;
                if record.state.is_final() {
                    live.remove(&record.approval_id);
                } else {
                    live.insert(record.approval_id.clone(), record.clone());
                }
                inner.count(&live, Some(&record));
            }
            Ok((record, changed))
        })
        .await?;
        if changed {
            let _ = self.inner.changes.send(Arc::new(record.clone()));
        }
        Ok(record)
    }

    /// A pending or approved record, else the stored one (which is final), else not found.
    fn find(
        inner: &Inner,
        live: &HashMap<String, ApprovalRecord>,
        id: &str,
    ) -> Result<ApprovalRecord, ControlPlaneError> {
        if let Some(record) = live.get(id) {
            return Ok(record.clone());
        }
        inner
            .store
            .approval(id)?
            .ok_or_else(|| ControlPlaneError::ApprovalNotFound(id.to_owned()))
    }

    /// Stores a held call (idempotent on its id; an async one is merged with an
    /// identical pending async request). Runs in the caller's `approval.submit`
    /// span (see `service.rs`), which records `created`.
    pub(crate) async fn submit_as(
        &self,
        caller: Caller,
        req: api::ApprovalServiceSubmitRequest,
    ) -> Result<ApprovalRecord, ControlPlaneError> {
        let candidate = service::new_record(&caller, req, now_ms())?;
        let (record, created) = {
            let created = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let flag = created.clone();
            let record = self
                .change(move |inner, live| {
                    if let Some(existing) = live
                        .get(&candidate.approval_id)
                        .cloned()
                        .or(inner.store.approval(&candidate.approval_id)?)
                    {
                        let same = existing.requested_by == candidate.requested_by
                            && existing.payload_sha256 == candidate.payload_sha256;
                        return if same {
                            Ok((existing, false))
                        } else {
                            Err(ControlPlaneError::ApprovalIdTaken(candidate.approval_id))
                        };
                    }
                    if candidate.mode == Mode::Async {
                        let key = candidate.grant_key();
                        let twin = live.values().find(|r| {
                            r.mode == Mode::Async
                                && r.state == ApprovalState::Pending
                                && r.grant_key() == key
                        });
                        if let Some(twin) = twin {
                            return Ok((twin.clone(), false));
                        }
                    }
                    flag.store(true, std::sync::atomic::Ordering::SeqCst);
                    Ok((candidate, true))
                })
                .await?;
            (record, created.load(std::sync::atomic::Ordering::SeqCst))
        };
        tracing::Span::current().record("created", created);
        if created {
            tracing::info!(approval = %record.approval_id, subject = %record.subject, server = %record.server, "approval requested");
            self.inner.webhooks.notify(&record);
        }
        Ok(record)
    }

    /// Records a review by `caller`.
    #[tracing::instrument(
        name = "approval.decide",
        skip_all,
        fields(approval_id = %approval_id, verdict = ?verdict, state)
    )]
    pub(crate) async fn decide_as(
        &self,
        caller: Caller,
        approval_id: String,
        verdict: Verdict,
        reason: String,
    ) -> Result<ApprovalRecord, ControlPlaneError> {
        let record = self
            .change(move |inner, live| {
                let mut record = Self::find(inner, live, &approval_id)?;
                let before = record.state;
                match rules::review(&mut record, &caller, verdict, &reason, now_ms()) {
                    Ok(()) => Ok((record, true)),
                    // Found expired while deciding: store that before refusing.
                    Err(err) if record.state != before => {
                        inner.store.put_approval(&record)?;
                        live.remove(&record.approval_id);
                        inner.count(live, Some(&record));
                        Err(err)
                    }
                    Err(err) => Err(err),
                }
            })
            .await?;
        tracing::Span::current().record("state", tracing::field::debug(&record.state));
        tracing::info!(approval = %record.approval_id, state = ?record.state, "approval reviewed");
        Ok(record)
    }

    /// Uses a grant once: by id, or by payload hash, subject and server.
    pub(crate) async fn consume_as(
        &self,
        caller: Caller,
        req: api::ApprovalServiceConsumeRequest,
    ) -> Result<Option<ApprovalRecord>, ControlPlaneError> {
        let result = self
            .change(move |inner, live| {
                let id = if req.approval_id.is_empty() {
                    let key = grant_key(&req.payload_sha256, &req.subject, &req.server);
                    match inner.store.grant(&key)? {
                        Some(id) => id,
                        None => return Err(ControlPlaneError::ApprovalNotFound(String::new())),
                    }
                } else {
                    req.approval_id.clone()
                };
                let mut record = live
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| ControlPlaneError::ApprovalNotFound(id.clone()))?;
                let own = record.requested_by == caller.subject || caller.has(Role::Admin);
                if !own
                    || !rules::usable(
                        &record,
                        &req.payload_sha256,
                        &req.subject,
                        &req.server,
                        now_ms(),
                    )
                {
                    return Err(ControlPlaneError::ApprovalNotFound(id));
                }
                record.state = ApprovalState::Consumed;
                Ok((record, true))
            })
            .await;
        match result {
            Ok(record) => Ok(Some(record)),
            // "No usable grant" is an answer, not a failure.
            Err(ControlPlaneError::ApprovalNotFound(_)) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Cancels a pending (or approved, unused) approval of `caller`'s.
    pub(crate) async fn cancel_as(
        &self,
        caller: Caller,
        approval_id: String,
    ) -> Result<ApprovalRecord, ControlPlaneError> {
        self.change(move |inner, live| {
            let mut record = Self::find(inner, live, &approval_id)?;
            if record.requested_by != caller.subject && !caller.has(Role::Admin) {
                return Err(ControlPlaneError::ApprovalNotFound(approval_id));
            }
            if record.state.is_final() {
                return Ok((record, false));
            }
            record.state = ApprovalState::Cancelled;
            Ok((record, true))
        })
        .await
    }

    /// Approvals, newest first.
    pub(crate) async fn list(
        &self,
        pending_only: bool,
        limit: usize,
    ) -> Result<Vec<ApprovalRecord>, ControlPlaneError> {
        let store = self.inner.store.clone();
        let mut records = if pending_only {
            self.live()
                .values()
                .filter(|r| r.state == ApprovalState::Pending)
                .cloned()
                .collect()
        } else {
            blocking(move || Ok(store.approvals()?)).await?
        };
        records.sort_by(|a, b| {
            (b.created_unix_ms, &b.approval_id).cmp(&(a.created_unix_ms, &a.approval_id))
        });
        records.truncate(limit);
        Ok(records)
    }

    /// One approval.
    pub(crate) async fn get(
        &self,
        approval_id: String,
    ) -> Result<ApprovalRecord, ControlPlaneError> {
        let this = self.clone();
        blocking(move || {
            let live = this.live();
            Self::find(&this.inner, &live, &approval_id)
        })
        .await
    }

    fn spawn_sweeper(&self) {
        let this = self.clone();
        let mut stopping = self.inner.stopping.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopping.changed() => return,
                }
                if let Err(err) = this.sweep().await {
                    tracing::warn!(error = %err, "approval expiry sweep failed; retrying");
                }
            }
        });
    }

    /// Marks every pending request and unused grant past its expiry as expired.
    async fn sweep(&self) -> Result<(), ControlPlaneError> {
        let now = now_ms();
        let due: Vec<String> = self
            .live()
            .values()
            .filter(|r| now >= r.expires_unix_ms)
            .map(|r| r.approval_id.clone())
            .collect();
        for id in due {
            self.change(move |_, live| match live.get(&id) {
                Some(record) if now >= record.expires_unix_ms => {
                    let mut record = record.clone();
                    record.state = ApprovalState::Expired;
                    Ok((record, true))
                }
                _ => Err(ControlPlaneError::ApprovalNotFound(id)),
            })
            .await
            .map(drop)
            .or_else(|err| match err {
                ControlPlaneError::ApprovalNotFound(_) => Ok(()),
                err => Err(err),
            })?;
        }
        Ok(())
    }
}
