//! The node's link to the control plane: one lazily connected gRPC channel and the
//! node's bearer token. (Minimal version for approvals; the fleet branch brings the
//! same type with bundles and heartbeats.)

pub(crate) mod approvals;

use crate::config::ControlPlaneConfig;
use crate::error::ProxyError;
use std::sync::Arc;
use std::time::Duration;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// How long to wait for a TCP (and TLS) connection to the control plane.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A cheap-to-clone handle on the control plane.
#[derive(Clone)]
pub struct ControlPlaneLink {
    channel: Channel,
    authorization: MetadataValue<Ascii>,
    node_id: Arc<str>,
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
    /// A link to `config.url`; connects on first use and reconnects by itself.
    pub fn new(config: &ControlPlaneConfig) -> Result<ControlPlaneLink, ProxyError> {
        let invalid = |message: String| ProxyError::Internal(format!("control_plane: {message}"));
        let mut endpoint = Endpoint::from_shared(config.url.clone())
            .map_err(|e| invalid(format!("url {:?} is not usable: {e}", config.url)))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true);
        if config.url.starts_with("https://") {
            let mut tls = ClientTlsConfig::new();
            if let Some(path) = &config.ca_cert {
                let pem = std::fs::read(path)
                    .map_err(|e| invalid(format!("cannot read ca_cert {}: {e}", path.display())))?;
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| invalid(format!("TLS setup failed: {e}")))?;
        }
        let authorization = format!("Bearer {}", config.token)
            .parse()
            .map_err(|_| invalid("the token has characters not allowed in a header".into()))?;
        Ok(ControlPlaneLink {
            channel: endpoint.connect_lazy(),
            authorization,
            node_id: Arc::from(config.node_id.as_str()),
        })
    }

    /// The channel (lazily connected; cheap to clone).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// `request` with the node's bearer token.
    pub fn authorize<T>(&self, mut request: tonic::Request<T>) -> tonic::Request<T> {
        request
            .metadata_mut()
            .insert("authorization", self.authorization.clone());
        request
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }
}
