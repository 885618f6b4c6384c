//! Builds and serves the control plane: the Airlock services, `grpc.health.v1`,
//! server reflection (for `grpcurl`), optional TLS, graceful shutdown.

use crate::api::approval_service_server::ApprovalServiceServer;
use crate::api::audit_service_server::AuditServiceServer;
use crate::api::bundle_service_server::BundleServiceServer;
use crate::api::node_service_server::NodeServiceServer;
use crate::api::tool_service_server::ToolServiceServer;
use crate::approvals::Approvals;
use crate::audit::Audit;
use crate::auth::Authenticator;
use crate::bundles::Bundles;
use crate::nodes::Nodes;
use crate::store::{SledStore, Store};
use crate::tools::Tools;
use crate::webhooks::Webhooks;
use crate::{ControlPlaneConfig, ControlPlaneError};
use airlock_bundle::BundleVerifier;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};

/// Room for the protobuf framing around a maximum-size archive.
const MESSAGE_OVERHEAD: usize = 1024 * 1024;

/// A bound, not yet serving, control plane.
pub struct ControlPlane {
    listener: tokio::net::TcpListener,
    local_addr: SocketAddr,
    tls: Option<ServerTlsConfig>,
    bundles: Bundles,
    nodes: Nodes,
    tools: Tools,
    audit: Audit,
    metrics: Option<(tokio::net::TcpListener, Arc<crate::metrics::Metrics>)>,
    approvals: Approvals,
    ui: Option<(tokio::net::TcpListener, SocketAddr)>,
    stop: watch::Sender<bool>,
    max_message: usize,
    /// The database handles; `run` waits for them to be released so the data
    /// directory can be reopened as soon as it returns.
    released: StoreHandles,
}

/// Weak references to the database handles every service shares.
struct StoreHandles {
    store: std::sync::Weak<dyn Store>,
    log: std::sync::Weak<crate::store::AuditLog>,
}

impl StoreHandles {
    /// How long background tasks get to let go of the database after shutdown.
    const GRACE: std::time::Duration = std::time::Duration::from_secs(5);

    /// Waits (bounded) until no task holds the database any more: sled releases the
    /// directory lock and flushes when the last handle drops.
    async fn wait_released(&self) {
        let started = std::time::Instant::now();
        while self.store.strong_count() + self.log.strong_count() > 0 {
            if started.elapsed() > Self::GRACE {
                tracing::warn!("background tasks still hold the database after shutdown");
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("local_addr", &self.local_addr)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl ControlPlane {
    /// Opens the store, loads the active bundle, reads the TLS files and binds the
    /// listen address. Serve with [`ControlPlane::run`].
    pub async fn start(config: ControlPlaneConfig) -> Result<ControlPlane, ControlPlaneError> {
        let tls = match &config.tls {
            Some(files) => Some(tls_config(files)?),
            None => None,
        };
        let verifier = BundleVerifier::new(config.trusted_keys.iter().cloned())
            .map_err(|e| config_error(e.to_string()))?
            .with_limits(config.limits);
        // The data directory holds approvals and the audit log: only its owner
        // reads it (when it exists already, its mode is the operator's choice).
        if !config.data_dir.exists() {
            crate::secrets::create_private_dir(&config.data_dir).map_err(|e| {
                ControlPlaneError::Config {
                    file: config.data_dir.clone(),
                    message: format!("cannot create the data directory ({e}); check data_dir and the permissions of its parent"),
                }
            })?;
        }
        config.log_start_warnings();
        let sled = SledStore::open(&config.data_dir)?;
        let audit_log = Arc::new(sled.audit_log()?);
        let pin_store = Arc::new(sled.pin_store()?);
        let store: Arc<dyn Store> = Arc::new(sled);
        let released = StoreHandles {
            store: Arc::downgrade(&store),
            log: Arc::downgrade(&audit_log),
        };
        let auth = Arc::new(Authenticator::new(&config.tokens));
        let key_path = config.audit.key_path(&config.data_dir);
        crate::audit::checkpoint::check_key_location(&key_path, &config.data_dir)?;
        let audit_key = crate::audit::checkpoint::load_or_generate(&key_path)?;
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let (stop, stopping) = watch::channel(false);
        let audit = Audit::new(
            audit_log,
            audit_key,
            auth.clone(),
            &config.audit,
            metrics.clone(),
        )?
        .stop_on(stopping.clone());
        let metrics_listener = match config.metrics_listen {
            Some(addr) => Some((
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| ControlPlaneError::Bind { addr, source })?,
                metrics.clone(),
            )),
            None => None,
        };
        let bundles = Bundles::new(store.clone(), verifier, auth.clone(), stopping.clone())?;
        let stopping_tools = stopping.clone();
        let ui = match config.ui_listen {
            Some(addr) => {
                let listener = crate::ui::bind(addr).await?;
                let local = listener
                    .local_addr()
                    .map_err(|source| ControlPlaneError::Bind { addr, source })?;
                Some((listener, local))
            }
            None => None,
        };
        let page_url = config.ui_public_url.clone().unwrap_or_else(|| match &ui {
            Some((_, addr)) => format!("http://{addr}/ui"),
            None => "(no [ui] configured)".to_owned(),
        });
        let webhooks = Webhooks::start(config.webhook_urls.clone(), page_url);
        let approvals = Approvals::new(
            store.clone(),
            auth.clone(),
            stopping,
            webhooks,
            metrics.clone(),
        )?;
        let tools = Tools::new(pin_store, auth.clone(), audit.clone(), stopping_tools);
        let nodes = Nodes::new(store, auth);
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| ControlPlaneError::Bind {
                addr: config.listen,
                source,
            })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ControlPlaneError::Bind {
                addr: config.listen,
                source,
            })?;
        let max_message = usize::try_from(config.limits.max_bytes)
            .unwrap_or(usize::MAX)
            .saturating_add(MESSAGE_OVERHEAD);
        Ok(ControlPlane {
            listener,
            local_addr,
            tls,
            bundles,
            nodes,
            tools,
            audit,
            metrics: metrics_listener,
            approvals,
            ui,
            stop,
            max_message,
            released,
        })
    }

    /// The bound address of the metrics port, if `metrics_listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The audit service, for appending in process (benches).
    pub fn audit(&self) -> Audit {
        self.audit.clone()
    }

    /// The address of the reviewers' web page (`[ui] listen`), if configured.
    pub fn ui_addr(&self) -> Option<SocketAddr> {
        self.ui.as_ref().map(|(_, addr)| *addr)
    }

    /// A receiver of every bundle activation, in process (for benches and `airlock dev`).
    pub fn bundle_activations(
        &self,
    ) -> watch::Receiver<Option<Arc<crate::api::BundleServiceWatchResponse>>> {
        self.bundles.subscribe()
    }

    /// Publishes (and activates) a bundle in process, as `publisher`, with the same
    /// checks as `BundleService.Publish` (for `airlock dev`, which signs the default
    /// policies with a throw-away key before serving).
    pub async fn publish(
        &self,
        archive: Vec<u8>,
        publisher: &str,
    ) -> Result<crate::api::BundleSummary, ControlPlaneError> {
        let caller = crate::auth::Caller {
            subject: publisher.to_owned(),
            roles: vec![crate::Role::Admin],
            groups: Vec::new(),
        };
        let request = crate::api::BundleServicePublishRequest {
            archive: archive.into(),
            no_activate: false,
        };
        self.bundles.publish_as(caller, request).await
    }

    /// Serves until `shutdown` resolves, then ends every `Watch` stream, finishes the
    /// calls in flight and closes the store.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ControlPlaneError> {
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter.set_serving::<BundleServiceServer<Bundles>>().await;
        reporter.set_serving::<NodeServiceServer<Nodes>>().await;
        reporter.set_serving::<AuditServiceServer<Audit>>().await;
        reporter.set_serving::<ToolServiceServer<Tools>>().await;
        self.audit.spawn_background(self.stop.subscribe());
        if let Some((listener, metrics)) = self.metrics {
            crate::metrics::serve(listener, metrics, self.stop.subscribe());
        }
        reporter
            .set_serving::<ApprovalServiceServer<Approvals>>()
            .await;
        if let Some((listener, addr)) = self.ui {
            tracing::info!(%addr, "reviewer page at http://{addr}/ui");
            crate::ui::spawn(
                listener,
                crate::ui::Page {
                    approvals: self.approvals.clone(),
                    audit: self.audit.clone(),
                },
                self.stop.subscribe(),
            );
        }
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(airlock_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| ControlPlaneError::Serve(format!("reflection: {e}")))?;
        let bundles = BundleServiceServer::new(self.bundles)
            .max_decoding_message_size(self.max_message)
            .max_encoding_message_size(self.max_message);
        let stop = self.stop;
        let released = self.released;
        let signal = async move {
            shutdown.await;
            // Watch streams never end by themselves; end them so shutdown completes.
            let _ = stop.send(true);
            reporter
                .set_not_serving::<BundleServiceServer<Bundles>>()
                .await;
        };
        let mut builder = Server::builder();
        if let Some(tls) = self.tls {
            builder = builder
                .tls_config(tls)
                .map_err(|e| config_error(format!("TLS: {e}; check the [tls] cert and key")))?;
        }
        // No Nagle: a bundle delivery must not wait for the watcher's delayed ACK (~40 ms).
        let incoming = TcpIncoming::from(self.listener).with_nodelay(Some(true));
        tracing::info!(addr = %self.local_addr, "control plane listening");
        builder
            .add_service(health)
            .add_service(reflection)
            .add_service(bundles)
            .add_service(NodeServiceServer::new(self.nodes))
            .add_service(AuditServiceServer::new(self.audit))
            .add_service(ApprovalServiceServer::new(self.approvals))
            .add_service(ToolServiceServer::new(self.tools))
            .serve_with_incoming_shutdown(incoming, signal)
            .await
            .map_err(|e| ControlPlaneError::Serve(e.to_string()))?;
        released.wait_released().await;
        Ok(())
    }
}

fn tls_config(files: &crate::TlsFiles) -> Result<ServerTlsConfig, ControlPlaneError> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| ControlPlaneError::Config {
            file: path.to_path_buf(),
            message: format!("cannot read the TLS file ({e}); fix [tls] cert/key"),
        })
    };
    let identity = Identity::from_pem(read(&files.cert)?, read(&files.key)?);
    Ok(ServerTlsConfig::new().identity(identity))
}

fn config_error(message: String) -> ControlPlaneError {
    ControlPlaneError::Config {
        file: "<config>".into(),
        message,
    }
}
