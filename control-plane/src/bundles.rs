//! `BundleService`: publish (verify, compile, test, store), list, get, activate, and
//! the `Watch` stream that delivers the active bundle to every proxy.

use crate::api;
use crate::auth::{Authenticator, Caller, Rpc};
use crate::store::{BundleRecord, Insert, Store};
use crate::ControlPlaneError;
use airlock_bundle::{BundleArchive, BundleVerifier, VerifiedBundle};
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::{mpsc, watch, Mutex};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// What every watcher receives: the active bundle, shared, not copied.
type Delivery = Option<Arc<api::BundleServiceWatchResponse>>;

/// The `BundleService` implementation.
pub struct Bundles {
    store: Arc<dyn Store>,
    verifier: BundleVerifier,
    auth: Arc<Authenticator>,
    active: watch::Sender<Delivery>,
    /// Serializes activations so the store and the watchers agree on the order.
    activation: Mutex<()>,
    stopping: watch::Receiver<bool>,
}

impl Bundles {
    /// Loads the active bundle (if any) for the first watchers. `stopping` ends every
    /// `Watch` stream when it turns true, so graceful shutdown does not wait on them.
    pub fn new(
        store: Arc<dyn Store>,
        verifier: BundleVerifier,
        auth: Arc<Authenticator>,
        stopping: watch::Receiver<bool>,
    ) -> Result<Bundles, ControlPlaneError> {
        let current = match store.active_revision()? {
            Some(revision) => Some(Arc::new(delivery(store.as_ref(), &revision)?)),
            None => None,
        };
        Ok(Bundles {
            store,
            verifier,
            auth,
            active: watch::channel(current).0,
            activation: Mutex::new(()),
            stopping,
        })
    }

    /// A receiver of every activation (for in-process consumers and benches).
    pub fn subscribe(&self) -> watch::Receiver<Delivery> {
        self.active.subscribe()
    }

    #[tracing::instrument(
        name = "bundle.publish",
        skip_all,
        fields(bytes = req.archive.len(), revision, activate = !req.no_activate)
    )]
    pub(crate) async fn publish_as(
        &self,
        caller: Caller,
        req: api::BundleServicePublishRequest,
    ) -> Result<api::BundleSummary, ControlPlaneError> {
        let verifier = self.verifier.clone();
        let store = self.store.clone();
        let archive = req.archive;
        let reviewers = self.auth.reviewers_by_group();
        let record = blocking(move || {
            let verified = verifier.verify(&archive)?;
            let tests_passed = check_policy(&verified)?;
            let engine = airlock_policy::proof::choose(&verified.bundle);
            let warnings = reviewer_warnings(&verified.manifest.reviewer_groups(), &reviewers);
            let record = BundleRecord {
                revision: verified.manifest.revision.clone(),
                digest: verified.digest.clone(),
                roots: verified.manifest.roots.clone(),
                key_id: verified.key_id.clone(),
                tests_passed,
                size_bytes: archive.len() as u64,
                published_unix_ms: now_ms(),
                published_by: caller.subject,
                engine: engine.backend.as_str().to_owned(),
                engine_reason: engine.reason,
            };
            match store.insert_bundle(&record, &archive)? {
                Insert::Stored => Ok((record, warnings)),
                // Re-publishing the same archive is harmless (a retried push).
                Insert::Exists(existing) if existing.digest == record.digest => {
                    Ok((existing, warnings))
                }
                Insert::Exists(_) => Err(ControlPlaneError::RevisionExists {
                    revision: record.revision,
                }),
            }
        })
        .await?;
        let (record, warnings) = record;
        for warning in &warnings {
            tracing::warn!(revision = %record.revision, "{warning}");
        }
        tracing::Span::current().record("revision", record.revision.as_str());
        tracing::info!(revision = %record.revision, by = %record.published_by, "bundle published");
        if !req.no_activate {
            self.activate(&record.revision).await?;
        }
        let active = self.active_revision().as_deref() == Some(record.revision.as_str());
        let mut summary = summary(&record, active);
        summary.warnings = warnings;
        Ok(summary)
    }

    /// Makes `revision` active and delivers it to every watcher. Returns the record
    /// and the previously active revision.
    async fn activate(
        &self,
        revision: &str,
    ) -> Result<(BundleRecord, Option<String>), ControlPlaneError> {
        let _order = self.activation.lock().await;
        let store = self.store.clone();
        let rev = revision.to_owned();
        let (record, next, previous) = blocking(move || {
            let record = store
                .bundle(&rev)?
                .ok_or_else(|| ControlPlaneError::NotFound {
                    revision: rev.clone(),
                })?;
            let next = delivery(store.as_ref(), &rev)?;
            let previous = store.active_revision()?;
            store.set_active_revision(&rev)?;
            Ok((record, next, previous))
        })
        .await?;
        self.active.send_replace(Some(Arc::new(next)));
        tracing::info!(
            revision,
            previous = previous.as_deref().unwrap_or(""),
            "bundle activated"
        );
        Ok((record, previous))
    }

    fn active_revision(&self) -> Option<String> {
        self.active
            .borrow()
            .as_ref()
            .and_then(|d| d.bundle.as_ref())
            .map(|b| b.revision.clone())
    }

    async fn get(
        &self,
        revision: String,
    ) -> Result<api::BundleServiceGetResponse, ControlPlaneError> {
        let active = self.active_revision();
        let revision = if revision.is_empty() {
            active.clone().ok_or_else(|| ControlPlaneError::NotFound {
                revision: "(active: none is active yet)".to_owned(),
            })?
        } else {
            revision
        };
        let store = self.store.clone();
        let limits = self.verifier.limits();
        blocking(move || {
            let not_found = || ControlPlaneError::NotFound {
                revision: revision.clone(),
            };
            let record = store.bundle(&revision)?.ok_or_else(not_found)?;
            let archive = store.archive(&revision)?.ok_or_else(not_found)?;
            let files = BundleArchive::from_tar_gz(&archive, limits)?;
            let manifest = files.manifest()?;
            Ok(api::BundleServiceGetResponse {
                bundle: Some(summary(
                    &record,
                    active.as_deref() == Some(revision.as_str()),
                )),
                files: files
                    .files
                    .iter()
                    .map(|(path, content)| api::BundleFile {
                        path: path.clone(),
                        sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(content)),
                        content: content.clone(),
                    })
                    .collect(),
                manifest: Some(api::BundleManifest {
                    revision: manifest.revision,
                    roots: manifest.roots,
                }),
                archive: archive.into(),
            })
        })
        .await
    }

    fn watch_stream(&self) -> WatchStream {
        let mut deliveries = self.active.subscribe();
        let mut stopping = self.stopping.clone();
        let (tx, rx) = mpsc::channel(2);
        tokio::spawn(async move {
            let first = deliveries.borrow_and_update().clone();
            if let Some(first) = first {
                if tx.send(Ok((*first).clone())).await.is_err() {
                    return;
                }
            }
            loop {
                tokio::select! {
                    changed = deliveries.changed() => {
                        if changed.is_err() { break; }
                        let next = deliveries.borrow_and_update().clone();
                        if let Some(next) = next {
                            if tx.send(Ok((*next).clone())).await.is_err() { break; }
                        }
                    }
                    () = async { drop(stopping.wait_for(|stop| *stop).await) } => break,
                    () = tx.closed() => break,
                }
            }
        });
        Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
    }
}

/// The server stream type of `Watch`.
pub type WatchStream =
    Pin<Box<dyn Stream<Item = Result<api::BundleServiceWatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl api::bundle_service_server::BundleService for Bundles {
    async fn publish(
        &self,
        request: Request<api::BundleServicePublishRequest>,
    ) -> Result<Response<api::BundleServicePublishResponse>, Status> {
        let caller = self
            .auth
            .authorize(request.metadata(), Rpc::BundlePublish)?;
        let bundle = self.publish_as(caller, request.into_inner()).await?;
        Ok(Response::new(api::BundleServicePublishResponse {
            bundle: Some(bundle),
        }))
    }

    async fn list(
        &self,
        request: Request<api::BundleServiceListRequest>,
    ) -> Result<Response<api::BundleServiceListResponse>, Status> {
        self.auth.authorize(request.metadata(), Rpc::BundleList)?;
        let active = self.active_revision();
        let store = self.store.clone();
        let records = blocking(move || Ok(store.bundles()?)).await?;
        let bundles = records
            .iter()
            .map(|r| summary(r, active.as_deref() == Some(r.revision.as_str())))
            .collect();
        Ok(Response::new(api::BundleServiceListResponse {
            bundles,
            active_revision: active.unwrap_or_default(),
        }))
    }

    async fn get(
        &self,
        request: Request<api::BundleServiceGetRequest>,
    ) -> Result<Response<api::BundleServiceGetResponse>, Status> {
        self.auth.authorize(request.metadata(), Rpc::BundleGet)?;
        Ok(Response::new(
            self.get(request.into_inner().revision).await?,
        ))
    }

    async fn activate(
        &self,
        request: Request<api::BundleServiceActivateRequest>,
    ) -> Result<Response<api::BundleServiceActivateResponse>, Status> {
        let caller = self
            .auth
            .authorize(request.metadata(), Rpc::BundleActivate)?;
        let revision = request.into_inner().revision;
        if revision.is_empty() {
            return Err(ControlPlaneError::InvalidArgument(
                "revision is empty; name a revision from `airlock bundle list`".to_owned(),
            )
            .into());
        }
        let (record, previous) = self.activate(&revision).await?;
        tracing::info!(revision, by = %caller.subject, "activation requested");
        Ok(Response::new(api::BundleServiceActivateResponse {
            bundle: Some(summary(&record, true)),
            previous_revision: previous.unwrap_or_default(),
        }))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<api::BundleServiceWatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let caller = self.auth.authorize(request.metadata(), Rpc::BundleWatch)?;
        tracing::debug!(node = %request.get_ref().node_id, subject = %caller.subject, "watch subscribed");
        Ok(Response::new(self.watch_stream()))
    }
}

/// A warning per reviewer group the bundle asks for that has no reviewer here: calls
/// held for it could never be approved (they would expire).
fn reviewer_warnings(
    groups: &[String],
    reviewers: &std::collections::HashMap<String, usize>,
) -> Vec<String> {
    groups
        .iter()
        .filter(|g| !reviewers.contains_key(*g))
        .map(|g| {
            format!(
                "reviewer group `{g}` has no member on this control plane: calls the policy holds for it can never be approved; give a reviewer token the group (`groups = [\"{g}\"]`)"
            )
        })
        .collect()
}

/// Compiles the decision program and runs the bundle's own Rego tests; returns how
/// many passed. Either failure names the file (and line).
fn check_policy(verified: &VerifiedBundle) -> Result<u32, ControlPlaneError> {
    airlock_policy::CompiledPolicy::compile(&verified.bundle)?;
    // The tests' verdicts on the reference engine decide; which engine proxies use
    // is the bundle's proof's business (`proof::choose`).
    let options = airlock_policy::testing::TestOptions {
        compare_engines: false,
        ..Default::default()
    };
    let report = airlock_policy::testing::run_tests_with(&verified.bundle, &options)?;
    if report.failed() > 0 {
        let failures = report
            .failures()
            .map(|t| {
                format!(
                    "{}:{}: {}: {}",
                    t.file,
                    t.line,
                    t.name,
                    t.error.as_deref().unwrap_or("failed")
                )
            })
            .collect();
        return Err(ControlPlaneError::TestsFailed {
            failed: report.failed(),
            failures,
        });
    }
    Ok(u32::try_from(report.passed()).unwrap_or(u32::MAX))
}

fn delivery(
    store: &dyn Store,
    revision: &str,
) -> Result<api::BundleServiceWatchResponse, ControlPlaneError> {
    let not_found = || ControlPlaneError::NotFound {
        revision: revision.to_owned(),
    };
    let record = store.bundle(revision)?.ok_or_else(not_found)?;
    let archive = store.archive(revision)?.ok_or_else(not_found)?;
    Ok(api::BundleServiceWatchResponse {
        bundle: Some(summary(&record, true)),
        archive: archive.into(),
    })
}

fn summary(record: &BundleRecord, active: bool) -> api::BundleSummary {
    api::BundleSummary {
        revision: record.revision.clone(),
        digest: record.digest.clone(),
        published_unix_ms: record.published_unix_ms,
        published_by: record.published_by.clone(),
        active,
        roots: record.roots.clone(),
        key_id: record.key_id.clone(),
        tests_passed: record.tests_passed,
        size_bytes: record.size_bytes,
        engine: record.engine.clone(),
        engine_reason: record.engine_reason.clone(),
        warnings: Vec::new(),
    }
}

/// Runs blocking work (sled flushes, Rego compilation) off the async workers.
pub(crate) async fn blocking<T, F>(work: F) -> Result<T, ControlPlaneError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ControlPlaneError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ControlPlaneError::Serve(format!("a worker task failed: {e}")))?
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reviewer_group_without_a_member_is_named() {
        let reviewers = [("dba".to_owned(), 2)].into_iter().collect();
        let warnings = reviewer_warnings(&["dba".to_owned(), "security".to_owned()], &reviewers);
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("`security` has no member"),
            "{warnings:?}"
        );
    }
}
