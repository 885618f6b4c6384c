//! The proxy's link to the control plane: one lazily connected gRPC channel with
//! the node's token, shared by every feature that talks to the control plane
//! (bundles and node status here; approvals and audit reuse [`ControlPlaneLink`]).
//!
//! With `[control_plane]` configured, [`start`] loads the cached bundle (if any),
//! then spawns two tasks: the bundle follower (watch → verify → compile → swap) and
//! the node reporter (status on change and as a heartbeat, with the audit log's
//! trust as the record stage judged it). Both retry with a
//! jittered, capped backoff and never hold a lock across an await.

pub(crate) mod approvals;
mod backoff;
mod bundles;
mod cache;
pub mod config;
pub(crate) mod hold_budget;
mod nodes;

pub use backoff::Backoff;
pub use bundles::{BundleFollower, NodeState};
pub use config::ControlPlaneConfig;
pub use nodes::NodeReporter;

use crate::error::ProxyError;
use airlock_bundle::BundleVerifier;
use airlock_policy::PolicyStore;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// Largest gRPC message a node accepts (bundles up to the 16 MiB default, framed).
pub const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// A node's connection to the control plane: a channel that connects lazily and
/// reconnects by itself, the node's bearer token, and its node id. Cheap to clone.
#[derive(Clone)]
pub struct ControlPlaneLink {
    channel: Channel,
    authorization: MetadataValue<Ascii>,
    node_id: Arc<str>,
    /// Whether the bundle stream is up (the proxy's view of the control plane).
    status: Arc<watch::Sender<LinkStatus>>,
    /// Whether the control plane's audit log extends this node's newest checkpoint.
    audit: Arc<watch::Sender<AuditLogStatus>>,
    /// Where that checkpoint is kept (`audit_checkpoint_file`).
    checkpoint_file: Option<std::path::PathBuf>,
}

/// Whether a node trusts the control plane's audit log, as `/readyz` and
/// `airlock nodes list` show it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditTrust {
    /// Not checked yet (nothing shipped since start).
    #[default]
    Unchecked,
    /// The log extends the newest checkpoint this node holds.
    Verified,
    /// It does not (rolled back, forked, another key): nothing is shipped to it.
    Refused,
}

/// The node's view of the control plane's audit log.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct AuditLogStatus {
    /// Verified, refused, or unchecked.
    pub trust: AuditTrust,
    /// The tree size of the newest checkpoint this node holds.
    pub checkpoint_size: u64,
    /// Why the log was refused.
    pub problem: Option<String>,
    /// When `trust` last changed (Unix ms).
    pub since_unix_ms: u64,
}

/// The state of a node's link to the control plane, as `/readyz` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LinkStatus {
    /// True while the bundle `Watch` stream is open.
    pub connected: bool,
    /// When `connected` last changed (Unix ms); 0 before the first attempt ended.
    pub since_unix_ms: u64,
    /// Why the last attempt or stream failed, while not connected.
    pub error: Option<String>,
}

impl std::fmt::Debug for ControlPlaneLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token.
        f.debug_struct("ControlPlaneLink")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl ControlPlaneLink {
    /// A link for `config`; nothing is dialled until the first call.
    pub fn new(config: &ControlPlaneConfig) -> Result<ControlPlaneLink, ProxyError> {
        let mut endpoint = Endpoint::from_shared(config.url.clone())
            .map_err(|e| {
                ProxyError::ControlPlane(format!(
                    "control_plane.url `{}` is not usable: {e}",
                    config.url
                ))
            })?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            // Notice a vanished control plane (no FIN, e.g. a partition) within ~20 s.
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true);
        if config.url.starts_with("https://") {
            let mut tls = ClientTlsConfig::new().with_enabled_roots();
            if let Some(path) = &config.ca_cert {
                let pem = std::fs::read(path).map_err(|e| {
                    ProxyError::ControlPlane(format!(
                        "cannot read control_plane.ca_cert {}: {e}",
                        path.display()
                    ))
                })?;
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            endpoint = endpoint.tls_config(tls).map_err(|e| {
                ProxyError::ControlPlane(format!("TLS setup for the control plane: {e}"))
            })?;
        }
        let authorization = format!("Bearer {}", config.token)
            .parse::<MetadataValue<Ascii>>()
            .map_err(|_| {
                ProxyError::ControlPlane(
                    "control_plane.token has characters not allowed in a header".to_owned(),
                )
            })?;
        Ok(ControlPlaneLink {
            channel: endpoint.connect_lazy(),
            authorization,
            node_id: Arc::from(config.node_id.as_str()),
            status: Arc::new(watch::channel(LinkStatus::default()).0),
            audit: Arc::new(watch::channel(AuditLogStatus::default()).0),
            checkpoint_file: config.checkpoint_file.clone(),
        })
    }

    /// What this node thinks of the control plane's audit log.
    pub fn audit_status(&self) -> AuditLogStatus {
        self.audit.borrow().clone()
    }

    /// A receiver of every change of [`ControlPlaneLink::audit_status`].
    pub fn audit_status_changes(&self) -> watch::Receiver<AuditLogStatus> {
        self.audit.subscribe()
    }

    /// Records the outcome of the latest check of the audit log.
    pub(crate) fn set_audit_status(&self, trust: AuditTrust, size: u64, problem: Option<String>) {
        self.audit.send_if_modified(|status| {
            if status.trust != trust {
                status.since_unix_ms = crate::record::unix_ms();
            }
            let changed = status.trust != trust
                || status.checkpoint_size != size
                || status.problem != problem;
            status.trust = trust;
            status.checkpoint_size = size;
            status.problem = problem;
            changed
        });
    }

    /// Where the newest audit checkpoint is kept, if anywhere.
    pub fn checkpoint_file(&self) -> Option<&std::path::Path> {
        self.checkpoint_file.as_deref()
    }

    /// The link's current state.
    pub fn status(&self) -> LinkStatus {
        self.status.borrow().clone()
    }

    /// Records that the bundle stream is up (`None`) or failed (`Some(why)`).
    pub(crate) fn set_status(&self, error: Option<String>) {
        let connected = error.is_none();
        self.status.send_if_modified(|status| {
            let flipped = status.connected != connected || status.since_unix_ms == 0;
            if flipped {
                status.since_unix_ms = crate::record::unix_ms();
            }
            let changed = flipped || status.error != error;
            status.connected = connected;
            status.error = error;
            changed
        });
    }

    /// The channel: lazily connected, reconnects by itself. Clones share one
    /// HTTP/2 connection.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// `request` with `authorization: Bearer <node token>` added.
    pub fn authorize<T>(&self, mut request: tonic::Request<T>) -> tonic::Request<T> {
        request
            .metadata_mut()
            .insert("authorization", self.authorization.clone());
        request
    }

    /// This node's id, as `airlock nodes list` shows it.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }
}

/// The control-plane tasks of one proxy; they stop when this is dropped.
#[derive(Debug)]
pub struct FleetTasks {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for FleetTasks {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Loads the cached bundle (when configured and valid), then spawns the bundle
/// follower and the node reporter. Must run inside a tokio runtime.
pub async fn start(
    config: &ControlPlaneConfig,
    store: Arc<PolicyStore>,
) -> Result<(ControlPlaneLink, FleetTasks), ProxyError> {
    let link = ControlPlaneLink::new(config)?;
    let verifier = BundleVerifier::new(config.bundle_keys.iter().cloned())
        .map_err(|e| ProxyError::ControlPlane(e.to_string()))?;
    let mut follower = BundleFollower::new(
        link.clone(),
        verifier,
        store,
        config.bundle_cache_dir.clone(),
    );
    follower.load_cache().await;
    let reporter = NodeReporter::new(link.clone(), follower.status(), config.heartbeat);
    let tasks = vec![tokio::spawn(follower.run()), tokio::spawn(reporter.run())];
    Ok((link, FleetTasks { tasks }))
}
