//! The MCP servers behind the proxy: Streamable HTTP servers (`http`) and local
//! processes spoken to over stdio (`stdio`), both answering with a [`reply::Reply`]
//! the respond stage reads the same way.

pub(crate) mod http;
pub(crate) mod reply;
pub(crate) mod stdio;

use crate::config::{TransportConfig, UpstreamConfig};
use ::http::{HeaderName, HeaderValue, Uri};
use airlock_policy::ServerInput;
use std::sync::Arc;
use std::time::Duration;

/// One configured upstream, ready for the request path.
#[derive(Debug)]
pub(crate) struct Upstream {
    /// The name in `/mcp/{name}`.
    pub(crate) name: String,
    /// How it is reached.
    pub(crate) transport: Transport,
    /// `input.server`, built once instead of per message.
    pub(crate) server_input: ServerInput,
}

/// How an upstream is reached.
#[derive(Debug)]
pub(crate) enum Transport {
    /// Streamable HTTP.
    Http {
        /// Its MCP endpoint.
        url: Uri,
        /// Headers injected on every request to it (its credentials).
        headers: Vec<(HeaderName, HeaderValue)>,
    },
    /// Child processes over stdio.
    Stdio(Arc<stdio::StdioUpstream>),
}

/// What every stdio upstream of a node shares.
#[derive(Debug, Clone)]
pub(crate) struct StdioSettings {
    /// This node's name, in the session ids it hands out.
    pub(crate) node: String,
    /// Largest message read from a child.
    pub(crate) max_line: usize,
    /// How long a request waits for its first answer.
    pub(crate) request_timeout: Duration,
}

impl Upstream {
    /// The upstream of `config`; a stdio one starts its idle reaper (no process
    /// runs before the first request).
    pub(crate) fn new(config: &UpstreamConfig, stdio: &StdioSettings) -> Self {
        let transport = match &config.transport {
            TransportConfig::Http { url, headers } => Transport::Http {
                url: url.clone(),
                headers: headers.clone(),
            },
            TransportConfig::Stdio(spec) => Transport::Stdio(stdio::StdioUpstream::start(
                &config.name,
                spec,
                &stdio.node,
                stdio.max_line,
                stdio.request_timeout,
            )),
        };
        Self {
            name: config.name.clone(),
            transport,
            server_input: ServerInput {
                name: config.name.clone(),
                labels: config.labels.clone(),
            },
        }
    }

    /// Whether the proxy sets this header itself, so the client's value is dropped.
    pub(crate) fn injects(&self, name: &HeaderName) -> bool {
        match &self.transport {
            Transport::Http { headers, .. } => headers.iter().any(|(n, _)| n == name),
            Transport::Stdio(_) => false,
        }
    }

    /// The stdio upstream, if this is one.
    pub(crate) fn stdio(&self) -> Option<&Arc<stdio::StdioUpstream>> {
        match &self.transport {
            Transport::Stdio(stdio) => Some(stdio),
            Transport::Http { .. } => None,
        }
    }
}
