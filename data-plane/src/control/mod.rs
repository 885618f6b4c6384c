//! The link to the control plane: one lazily connected gRPC channel and the node's
//! bearer token, shared by everything that talks to the control plane (audit
//! shipping here; bundle sync and heartbeats on the `fleet` branch use the same API).

use crate::config::ControlPlaneSettings;
use crate::error::ProxyError;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// A cheap, cloneable handle on the control plane.
#[derive(Clone)]
pub struct ControlPlaneLink {
    channel: Channel,
    authorization: MetadataValue<tonic::metadata::Ascii>,
    node_id: String,
}

impl std::fmt::Debug for ControlPlaneLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlaneLink")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl ControlPlaneLink {
    /// A link from `[control_plane]`; connects on first use (and reconnects).
    pub fn new(settings: &ControlPlaneSettings) -> Result<ControlPlaneLink, ProxyError> {
        let bad = |detail: String| ProxyError::Internal(format!("[control_plane]: {detail}"));
        let mut endpoint = Endpoint::from_shared(settings.url.clone())
            .map_err(|e| bad(format!("url `{}` is not usable ({e})", settings.url)))?
            .tcp_nodelay(true)
            .connect_timeout(std::time::Duration::from_secs(5));
        if let Some(ca) = &settings.ca_cert {
            let pem = std::fs::read(ca)
                .map_err(|e| bad(format!("cannot read ca_cert {} ({e})", ca.display())))?;
            let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem));
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| bad(format!("TLS: {e}; check ca_cert")))?;
        }
        let authorization = format!("Bearer {}", settings.token)
            .parse()
            .map_err(|_| bad("the token holds characters not allowed in a header".to_owned()))?;
        Ok(ControlPlaneLink {
            channel: endpoint.connect_lazy(),
            authorization,
            node_id: settings.node_id.clone(),
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
