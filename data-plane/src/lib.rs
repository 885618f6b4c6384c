//! Airlock's data plane: an MCP Streamable HTTP proxy that decides every JSON-RPC
//! message with the Rego policy before it moves, in either direction.
//!
//! One module per stage of the request path (see `mcp` for the order): `accept`,
//! `authenticate`, `decode`, `decide`, `hold`, `forward`, `respond` (with `sse`),
//! `record` (the audit trail, with `mask`), plus `control` (the control-plane link),
//! `config`, `session`, `protocol`, `upstream` and `error`. The proxy keeps no state
//! a restart would lose: sessions are sealed ids any node with the same secret can
//! verify (see `session`).

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod accept;
mod authenticate;
pub mod config;
pub mod control;
mod ctx;
mod decide;
pub mod decode;
pub mod error;
mod forward;
mod hold;
mod limits;
pub mod mask;
mod mcp;
mod metrics;
mod pins;
mod protocol;
pub mod record;
mod respond;
mod review;
mod session;
mod sse;
mod upstream;

pub use authenticate::Identity;
pub use config::{ConfigError, ConfigWarning, ProxyConfig};
pub use error::{codes, ProxyError};

use crate::authenticate::Authenticator;
use crate::control::{ControlPlaneLink, FleetTasks};
use crate::ctx::Shared;
use crate::session::{CallCounter, SessionSeal};
use crate::upstream::http::HttpClient;
use crate::upstream::{StdioSettings, Upstream};
use airlock_policy::{watch_dir, BundleWatcher, PolicyStore};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Sessions tracked by the per-node call counter before it starts over.
const CALL_COUNTER_CAPACITY: usize = 100_000;

/// A bound, ready-to-run proxy node.
pub struct Proxy {
    listener: TcpListener,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    store: Arc<PolicyStore>,
    shutdown_grace: Duration,
    header_timeout: Duration,
    // Keeps the policy current while the proxy lives.
    _source: PolicySource,
    // Keeps the tool pins current (with a control plane).
    _pin_tasks: PinTasks,
}

/// The pin follower and reporter; aborted when the proxy is dropped.
#[derive(Debug, Default)]
struct PinTasks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for PinTasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// The pins, following the control plane's when there is one.
fn start_pins(control: Option<&ControlPlaneLink>) -> (Arc<pins::Pins>, PinTasks) {
    let Some(link) = control else {
        return (Arc::new(pins::Pins::new(None)), PinTasks::default());
    };
    let (tx, rx) = tokio::sync::mpsc::channel(pins::follow::QUEUE);
    let pins = Arc::new(pins::Pins::new(Some(tx)));
    let tasks = vec![
        tokio::spawn(pins::follow::watch(link.clone(), Arc::clone(&pins))),
        tokio::spawn(pins::follow::report(link.clone(), rx)),
    ];
    (pins, PinTasks(tasks))
}

/// Where the policy comes from; dropping it stops the watching (the fields are
/// held for their `Drop`).
#[derive(Debug)]
#[allow(dead_code)]
enum PolicySource {
    /// `[policy] dir`, hot-reloaded.
    Dir(BundleWatcher),
    /// `[control_plane]`: the bundle follower and the node reporter.
    ControlPlane(FleetTasks),
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// Loads and watches the policy directory, or connects to the control plane
    /// (serving the cached bundle meanwhile, if any), and binds the listener.
    pub async fn start(config: ProxyConfig) -> Result<Proxy, ProxyError> {
        for warning in &config.warnings {
            tracing::warn!("{warning}");
        }
        let store = Arc::new(PolicyStore::new(config.eval_timeout));
        let (source, control) = policy_source(&config, &store).await?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ProxyError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| ProxyError::Bind {
            addr: config.listen,
            source,
        })?;
        let secret = match &config.session_secret {
            Some(secret) => secret.clone(),
            None => {
                tracing::warn!(
                    "server.session_secret is not set: using a random one, so sessions will not survive a restart \
                     nor work across proxy nodes; set it (e.g. session_secret = \"${{AIRLOCK_SESSION_SECRET}}\")"
                );
                rand::random::<[u8; 32]>().to_vec()
            }
        };
        let client = HttpClient::with_ca_certs(
            config.connect_timeout,
            config.request_timeout,
            &config.outbound_ca_certs,
        );
        let auth = Authenticator::new(&config.api_keys, &config.jwt, client.clone())?;
        auth.start().await;
        let stdio = StdioSettings {
            node: config
                .control_plane
                .as_ref()
                .map(|c| c.node_id.clone())
                .unwrap_or_else(control::config::default_node_id),
            max_line: config.max_body_bytes.saturating_mul(4),
            request_timeout: config.request_timeout,
        };
        let (pins, pin_tasks) = start_pins(control.as_ref());
        let shared = Arc::new(Shared {
            upstreams: config
                .upstreams
                .iter()
                .map(|u| (u.name.clone(), Arc::new(Upstream::new(u, &stdio))))
                .collect(),
            auth,
            seal: SessionSeal::new(secret),
            calls: CallCounter::new(CALL_COUNTER_CAPACITY),
            store: Arc::clone(&store),
            client,
            limits: decode::Limits {
                max_body_bytes: config.max_body_bytes,
                max_depth: config.max_depth,
            },
            max_response_bytes: config.max_body_bytes.saturating_mul(4),
            allowed_origins: config.allowed_origins.clone(),
            in_flight: Arc::new(tokio::sync::Semaphore::new(config.max_concurrent_requests)),
            limiter: Arc::new(limits::Limiter::new(&config.limits)),
            recorder: record::Recorder::start(&config.audit, control.clone())?,
            metrics: metrics::Metrics::default(),
            approvals: control
                .clone()
                .map(|link| control::approvals::ApprovalClient::start(link, &config.approvals)),
            control,
            pins,
            trace_context: config.telemetry.enabled(),
        });
        limits::Limiter::forget_idle_buckets(&shared.limiter);
        Ok(Proxy {
            listener,
            local_addr,
            shared,
            store,
            shutdown_grace: config.shutdown_grace,
            header_timeout: config.limits.header_timeout,
            _source: source,
            _pin_tasks: pin_tasks,
        })
    }

    /// The address the listener is bound to (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The policy store the proxy decides with.
    pub fn policy(&self) -> Arc<PolicyStore> {
        Arc::clone(&self.store)
    }

    /// The link to the control plane, when `[control_plane]` is configured.
    pub fn control_plane(&self) -> Option<ControlPlaneLink> {
        self.shared.control.clone()
    }

    /// Serves until `shutdown` resolves; then stops accepting and lets in-flight
    /// requests finish for at most `server.shutdown_grace_s`.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ProxyError> {
        let _source = self._source;
        let _pin_tasks = self._pin_tasks;
        let shared = Arc::clone(&self.shared);
        accept::serve(
            self.listener,
            self.shared,
            shutdown,
            self.shutdown_grace,
            self.header_timeout,
        )
        .await;
        // Stdio children end with the proxy (their sessions cannot outlive it).
        let stdio = shared.upstreams.values().filter_map(|u| u.stdio());
        futures_util::future::join_all(stdio.map(|s| s.shutdown(self.shutdown_grace))).await;
        // Events of the last requests may still be on their way to the sink.
        shared.recorder.drain(self.shutdown_grace).await;
        Ok(())
    }
}

/// Starts watching the one configured policy source (validation made sure there is
/// exactly one).
async fn policy_source(
    config: &ProxyConfig,
    store: &Arc<PolicyStore>,
) -> Result<(PolicySource, Option<ControlPlaneLink>), ProxyError> {
    match (&config.control_plane, &config.policy_dir) {
        (Some(control_plane), _) => {
            let (link, tasks) = control::start(control_plane, Arc::clone(store)).await?;
            tracing::info!(node = link.node_id(), url = %control_plane.url, "taking policy bundles from the control plane");
            Ok((PolicySource::ControlPlane(tasks), Some(link)))
        }
        (None, Some(dir)) => {
            let watcher = watch_dir(Arc::clone(store), dir)
                .map_err(|e| ProxyError::Policy(format!("{} ({})", e, dir.display())))?;
            Ok((PolicySource::Dir(watcher), None))
        }
        (None, None) => Err(ProxyError::Policy(
            "no policy source: set [policy] dir or [control_plane]".to_owned(),
        )),
    }
}
