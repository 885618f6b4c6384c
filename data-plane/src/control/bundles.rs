//! The bundle follower: watches the active bundle on the control plane, and for
//! each delivery verifies the signature, compiles the Rego and swaps it in. A bad
//! bundle is rejected (recorded as the node's last error) and the previous one
//! keeps serving; a lost stream is retried with backoff, also serving on.

use super::backoff::Backoff;
use super::cache::BundleCache;
use super::{ControlPlaneLink, MAX_MESSAGE};
use airlock_bundle::BundleVerifier;
use airlock_policy::{CompiledPolicy, EngineChoice, PolicyStore};
use airlock_proto::v1::bundle_service_client::BundleServiceClient;
use airlock_proto::v1::{BundleServiceWatchRequest, BundleServiceWatchResponse};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;

/// What a node reports about its bundle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeState {
    /// The revision it serves, `None` before the first good bundle.
    pub active_revision: Option<String>,
    /// The Rego engine evaluating it, and why.
    pub engine: Option<EngineChoice>,
    /// Why the last delivered bundle was refused, cleared by the next good one.
    pub last_error: Option<String>,
}

/// Follows the control plane's active bundle into one [`PolicyStore`].
pub struct BundleFollower {
    link: ControlPlaneLink,
    verifier: Arc<BundleVerifier>,
    store: Arc<PolicyStore>,
    cache: Option<BundleCache>,
    state: watch::Sender<NodeState>,
    /// SHA-256 of the archive installed last: a redelivery after a reconnect is
    /// not compiled again.
    installed_digest: Option<String>,
}

impl std::fmt::Debug for BundleFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BundleFollower")
            .field("node_id", &self.link.node_id())
            .finish_non_exhaustive()
    }
}

/// Why a delivered archive was not installed.
type Rejection = String;

impl BundleFollower {
    /// A follower installing into `store` the bundles `verifier` accepts, keeping
    /// the last good archive in `cache_dir` when set.
    pub fn new(
        link: ControlPlaneLink,
        verifier: BundleVerifier,
        store: Arc<PolicyStore>,
        cache_dir: Option<PathBuf>,
    ) -> BundleFollower {
        let state = NodeState {
            active_revision: store.revision(),
            engine: store.current().map(|p| p.engine().clone()),
            last_error: None,
        };
        BundleFollower {
            link,
            verifier: Arc::new(verifier),
            store,
            cache: cache_dir.map(BundleCache::new),
            state: watch::channel(state).0,
            installed_digest: None,
        }
    }

    /// The node's bundle state; changes on every install or rejection.
    pub fn status(&self) -> watch::Receiver<NodeState> {
        self.state.subscribe()
    }

    /// Installs the cached archive, verified again, if there is a valid one; a
    /// missing or bad cache is logged and the node waits for the control plane.
    pub async fn load_cache(&mut self) {
        let Some(cache) = self.cache.clone() else {
            return;
        };
        let path = cache.path();
        let archive = match tokio::task::spawn_blocking(move || cache.load()).await {
            Ok(Ok(Some(archive))) => archive,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the cached bundle; waiting for the control plane");
                return;
            }
            Err(_) => return,
        };
        match self.install(Bytes::from(archive), false).await {
            Ok(Some(revision)) => {
                tracing::info!(revision, path = %path.display(), "serving the cached bundle until the control plane answers");
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "the cached bundle was refused; waiting for the control plane");
            }
        }
    }

    /// Watches forever: each delivery is installed or rejected; a failed or ended
    /// stream is reopened after a jittered backoff. Failures are logged once per
    /// change of state, not per retry.
    pub async fn run(mut self) {
        let mut backoff = Backoff::default();
        let mut failing: Option<String> = None;
        loop {
            let error = self.follow(&mut backoff, &mut failing).await;
            self.link.set_status(Some(error.clone()));
            if failing.as_deref() != Some(error.as_str()) {
                tracing::warn!(%error, node = self.link.node_id(), "bundle watch interrupted; serving the current bundle and retrying with backoff");
                failing = Some(error);
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    /// One `Watch` stream, until it fails; returns why it ended.
    async fn follow(&mut self, backoff: &mut Backoff, failing: &mut Option<String>) -> String {
        let mut client =
            BundleServiceClient::new(self.link.channel()).max_decoding_message_size(MAX_MESSAGE);
        let request = self
            .link
            .authorize(tonic::Request::new(BundleServiceWatchRequest {
                node_id: self.link.node_id().to_owned(),
            }));
        let mut stream = match client.watch(request).await {
            Ok(response) => response.into_inner(),
            Err(status) => return describe(&status),
        };
        if failing.take().is_some() {
            tracing::info!("bundle watch re-established");
        }
        self.link.set_status(None);
        backoff.reset();
        loop {
            match stream.message().await {
                Ok(Some(delivery)) => self.deliver(delivery).await,
                Ok(None) => return "the control plane ended the bundle stream".to_owned(),
                Err(status) => return describe(&status),
            }
        }
    }

    async fn deliver(&mut self, delivery: BundleServiceWatchResponse) {
        let announced = delivery
            .bundle
            .map(|b| b.revision)
            .unwrap_or_else(|| "(unnamed)".to_owned());
        match self.install(delivery.archive, true).await {
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(revision = %announced, %error, serving = self.store.revision().as_deref().unwrap_or("(none)"), "bundle rejected; the previous revision keeps serving");
                let message = format!("bundle {announced} rejected: {error}");
                self.state.send_if_modified(|state| {
                    let changed = state.last_error.as_deref() != Some(message.as_str());
                    state.last_error = Some(message);
                    changed
                });
            }
        }
    }

    /// Verifies, compiles and swaps in `archive`; `Ok(None)` when it is the one
    /// already serving. Writes it to the cache when `cache_it`.
    async fn install(
        &mut self,
        archive: Bytes,
        cache_it: bool,
    ) -> Result<Option<String>, Rejection> {
        let digest = hex::encode(Sha256::digest(&archive));
        if self.installed_digest.as_deref() == Some(digest.as_str()) {
            return Ok(None);
        }
        let verifier = Arc::clone(&self.verifier);
        let store = Arc::clone(&self.store);
        let cache = if cache_it { self.cache.clone() } else { None };
        // Verifying and compiling are CPU work: keep them off the request workers.
        let revision = tokio::task::spawn_blocking(move || {
            let verified = verifier.verify(&archive).map_err(|e| e.to_string())?;
            let policy = CompiledPolicy::compile(&verified.bundle).map_err(|e| e.to_string())?;
            let installed = (policy.revision().to_owned(), policy.engine().clone());
            store.install(policy);
            if let Some(cache) = cache {
                if let Err(e) = cache.store(&archive) {
                    tracing::warn!(path = %cache.path().display(), error = %e, "cannot write the bundle cache; serving on without it");
                }
            }
            Ok::<_, Rejection>(installed)
        })
        .await
        .map_err(|e| format!("the install task failed: {e}"))??;
        let (revision, engine) = revision;
        self.installed_digest = Some(digest);
        self.state.send_replace(NodeState {
            active_revision: Some(revision.clone()),
            engine: Some(engine),
            last_error: None,
        });
        Ok(Some(revision))
    }
}

/// A short, stable description of a failed call, for logs and state changes.
fn describe(status: &tonic::Status) -> String {
    match status.code() {
        tonic::Code::Unavailable => format!("control plane unreachable: {}", status.message()),
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => format!(
            "the control plane refused the node token ({}); check control_plane.token has the role node",
            status.message()
        ),
        code => format!("{code:?}: {}", status.message()),
    }
}

#[cfg(test)]
#[path = "bundles_test.rs"]
mod tests;
