//! The MCP servers behind the proxy. HTTP only for now; stdio comes later.

pub(crate) mod http;

use crate::config::UpstreamConfig;
use ::http::{HeaderName, HeaderValue, Uri};
use airlock_policy::ServerInput;

/// One configured upstream, ready for the request path.
#[derive(Debug)]
pub(crate) struct Upstream {
    /// The name in `/mcp/{name}`.
    pub(crate) name: String,
    /// Its MCP endpoint.
    pub(crate) url: Uri,
    /// Headers injected on every request to it (its credentials).
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    /// `input.server`, built once instead of per message.
    pub(crate) server_input: ServerInput,
}

impl Upstream {
    pub(crate) fn new(config: &UpstreamConfig) -> Self {
        Self {
            name: config.name.clone(),
            url: config.url.clone(),
            headers: config.headers.clone(),
            server_input: ServerInput {
                name: config.name.clone(),
                labels: config.labels.clone(),
            },
        }
    }

    /// Whether the proxy sets this header itself, so the client's value is dropped.
    pub(crate) fn injects(&self, name: &HeaderName) -> bool {
        self.headers.iter().any(|(n, _)| n == name)
    }
}
