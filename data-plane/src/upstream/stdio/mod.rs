//! Stdio upstreams: MCP servers the proxy runs as child processes.
//!
//! Session revisions (2025-03-26 … 2025-11-25): one child per MCP session, spawned
//! by `initialize`, ended by `DELETE`, by `idle_timeout_s` without a request, or by
//! the proxy's shutdown. The session id the client holds is `{node}~{random}`
//! sealed by `session` like any other: it names the node that holds the process,
//! and any other node (or this one after a restart) answers 404, so the client
//! initializes again there. This is the one piece of data-plane state that lives on
//! a node (promise 8's documented exception): put a stdio upstream's clients behind
//! session affinity (hash on `Mcp-Session-Id`) when running several nodes.
//!
//! Stateless 2026-07-28 (and `server/discover` on any revision): a bounded pool of
//! children the proxy initializes itself, requests multiplexed over them with their
//! ids rewritten (`routes`).
//!
//! Nothing from a request reaches a child's arguments or environment: the command,
//! its environment and its directory come from the config only.

mod child;
mod lines;
mod pool;
mod routes;

use crate::config::StdioConfig;
use crate::error::ProxyError;
use crate::upstream::reply::{MessageStream, Reply};
use bytes::Bytes;
use child::Child;
use http::{Method, StatusCode};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::mpsc;

/// One request for a stdio upstream, as the forward stage sends it.
#[derive(Debug)]
pub(crate) struct StdioRequest<'a> {
    /// POST, GET or DELETE.
    pub(crate) method: &'a Method,
    /// The session (unsealed), if the client presented one.
    pub(crate) session: Option<&'a str>,
    /// The decided bytes (POST).
    pub(crate) body: Bytes,
    /// The request declared the stateless revision.
    pub(crate) stateless: bool,
}

/// A configured stdio upstream and its children.
pub(crate) struct StdioUpstream {
    name: String,
    config: StdioConfig,
    /// This node's name, in every session id it hands out.
    node: String,
    /// Largest message accepted on a child's stdout.
    max_line: usize,
    /// How long a request waits for its first answer.
    request_timeout: Duration,
    sessions: Mutex<HashMap<String, Arc<Child>>>,
    pool: pool::Pool,
}

impl std::fmt::Debug for StdioUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdioUpstream")
            .field("name", &self.name)
            .field("command", &self.config.command)
            .finish_non_exhaustive()
    }
}

impl StdioUpstream {
    /// The upstream `name`, and its idle reaper (which stops when it is dropped).
    pub(crate) fn start(
        name: &str,
        config: &StdioConfig,
        node: &str,
        max_line: usize,
        request_timeout: Duration,
    ) -> Arc<StdioUpstream> {
        let upstream = Arc::new(StdioUpstream {
            name: name.to_owned(),
            config: config.clone(),
            node: node.to_owned(),
            max_line,
            request_timeout,
            sessions: Mutex::new(HashMap::new()),
            pool: pool::Pool::default(),
        });
        tokio::spawn(reap(Arc::downgrade(&upstream)));
        upstream
    }

    /// Children running now (sessions and pool).
    pub(crate) fn children(&self) -> usize {
        self.sessions.lock().map(|s| s.len()).unwrap_or(0) + self.pool.len()
    }

    /// Sends one decided request to the right child and returns its answer.
    pub(crate) async fn forward(&self, request: StdioRequest<'_>) -> Result<Reply, ProxyError> {
        match (request.method, request.session) {
            (&Method::DELETE, Some(session)) => {
                let child = self.take(session)?;
                child.end("session deleted by the client");
                Ok(Reply::empty(StatusCode::OK))
            }
            (&Method::GET, Some(session)) => {
                let child = self.session(session)?;
                let rx = child
                    .routes
                    .lock()
                    .map_err(|_| poisoned())?
                    .attach_get();
                Ok(Reply::messages(MessageStream::new(None, rx)))
            }
            (&Method::POST, session) => self.post(session, request.body, request.stateless).await,
            _ => Err(ProxyError::Header(format!(
                "{} needs an Mcp-Session-Id: upstream `{}` runs one process per session; send initialize first",
                request.method, self.name
            ))),
        }
    }

    async fn post(
        &self,
        session: Option<&str>,
        body: Bytes,
        stateless: bool,
    ) -> Result<Reply, ProxyError> {
        let mut value: Value = serde_json::from_slice(&body)
            .map_err(|e| ProxyError::Internal(format!("a decided body no longer parses: {e}")))?;
        let discover = value.get("method").and_then(Value::as_str) == Some("server/discover");
        if session.is_none() && (stateless || discover) {
            return self.pool.forward(self, value).await;
        }
        let (child, opened) = match session {
            Some(session) => (self.session(session)?, None),
            None => {
                let is_initialize =
                    value.get("method").and_then(Value::as_str) == Some("initialize");
                if !is_initialize || value.get("id").is_none() {
                    return Err(ProxyError::Header(format!(
                        "upstream `{}` runs one process per session: send initialize (without Mcp-Session-Id) first, then use the session it opens",
                        self.name
                    )));
                }
                let (id, child) = self.open()?;
                (child, Some(id))
            }
        };
        let mut requests = requests_of(&mut value);
        if requests.is_empty() {
            child.send(body).await?;
            return Ok(Reply::empty(StatusCode::ACCEPTED));
        }
        let single = (requests.len() == 1).then(|| requests[0]["id"].clone());
        let rx = child
            .routes
            .lock()
            .map_err(|_| poisoned())?
            .register(&mut requests)
            .map_err(|detail| self.refused(detail))?;
        // The exact bytes decided: a session's ids are not rewritten.
        child.send(body).await?;
        let Some(id) = opened else {
            return first_answer(&child, rx, single, self.request_timeout).await;
        };
        match first_answer(&child, rx, single, self.config.startup_timeout).await {
            Ok(reply) => {
                self.keep(&id, &child);
                Ok(reply.with_session(&id))
            }
            Err(error) => {
                child.end("initialize failed");
                Err(error)
            }
        }
    }

    /// Spawns the child of a new session (not yet findable: `keep` makes it so).
    fn open(&self) -> Result<(String, Arc<Child>), ProxyError> {
        if self.children() >= self.config.max_processes {
            return Err(self.busy());
        }
        let child = Child::spawn(&self.name, &self.config, self.max_line, false)?;
        let id = format!("{}~{}", self.node, hex::encode(rand::random::<[u8; 12]>()));
        Ok((id, child))
    }

    fn keep(&self, id: &str, child: &Arc<Child>) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.insert(id.to_owned(), Arc::clone(child));
        }
    }

    fn session(&self, id: &str) -> Result<Arc<Child>, ProxyError> {
        let child = self
            .sessions
            .lock()
            .map_err(|_| poisoned())?
            .get(id)
            .cloned()
            .ok_or(ProxyError::SessionNotFound)?;
        if !child.is_alive() {
            // Its process is gone: the client must start over.
            self.take(id).ok();
            return Err(ProxyError::SessionNotFound);
        }
        child.touch();
        Ok(child)
    }

    fn take(&self, id: &str) -> Result<Arc<Child>, ProxyError> {
        self.sessions
            .lock()
            .map_err(|_| poisoned())?
            .remove(id)
            .ok_or(ProxyError::SessionNotFound)
    }

    /// Writes a message (an answer the proxy gives in the client's place) to a
    /// session's child; quietly does nothing when the session is gone.
    pub(crate) async fn deliver(&self, session: Option<&str>, message: Bytes) {
        let Some(child) = session.and_then(|s| self.session(s).ok()) else {
            return;
        };
        if let Err(e) = child.send(message).await {
            tracing::debug!(upstream = %self.name, error = %e, "could not write to a stdio child");
        }
    }

    /// Ends every child and waits (bounded by `grace`) until they are reaped.
    pub(crate) async fn shutdown(&self, grace: Duration) {
        let mut children: Vec<Arc<Child>> = self
            .sessions
            .lock()
            .map(|mut s| s.drain().map(|(_, c)| c).collect())
            .unwrap_or_default();
        children.extend(self.pool.drain());
        for child in &children {
            child.end("proxy shutting down");
        }
        let all = futures_util::future::join_all(children.iter().map(|c| c.exited()));
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!(upstream = %self.name, "stdio children still running after the grace period");
        }
    }

    fn busy(&self) -> ProxyError {
        ProxyError::UpstreamBusy {
            upstream: self.name.clone(),
            max_processes: self.config.max_processes,
        }
    }

    fn refused(&self, detail: String) -> ProxyError {
        ProxyError::UpstreamUnavailable {
            upstream: self.name.clone(),
            detail,
        }
    }
}

fn poisoned() -> ProxyError {
    ProxyError::Internal("a stdio upstream's table is poisoned".to_owned())
}

/// The requests (with an id) of a body, a message or a batch.
fn requests_of(value: &mut Value) -> Vec<&mut Value> {
    let is_request = |m: &Value| m.get("method").is_some() && m.get("id").is_some();
    match value {
        Value::Array(items) => items.iter_mut().filter(|m| is_request(m)).collect(),
        single if is_request(single) => vec![single],
        _ => Vec::new(),
    }
}

/// Waits for the first message of a POST's answer: when it is the answer to its one
/// request, a JSON body; else an SSE stream that starts with it.
async fn first_answer(
    child: &Child,
    mut rx: mpsc::Receiver<Bytes>,
    single: Option<Value>,
    within: Duration,
) -> Result<Reply, ProxyError> {
    let first = match tokio::time::timeout(within, rx.recv()).await {
        Ok(Some(first)) => first,
        Ok(None) => return Err(child.unavailable(&child.exited().await)),
        Err(_) => return Err(child.silent(within)),
    };
    let is_answer = single.is_some_and(|id| {
        serde_json::from_slice::<Value>(&first)
            .is_ok_and(|m| m.get("method").is_none() && m.get("id") == Some(&id))
    });
    if is_answer {
        return Ok(Reply::json(first));
    }
    Ok(Reply::messages(MessageStream::new(Some(first), rx)))
}

/// Ends children idle past `idle_timeout_s` (and forgets dead ones) until the
/// upstream is dropped.
async fn reap(upstream: Weak<StdioUpstream>) {
    let period = match upstream.upgrade() {
        Some(u) => {
            (u.config.idle_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(5))
        }
        None => return,
    };
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        let Some(upstream) = upstream.upgrade() else {
            return;
        };
        let idle = upstream.config.idle_timeout;
        let ended: Vec<Arc<Child>> = match upstream.sessions.lock() {
            Ok(mut sessions) => {
                let gone: Vec<String> = sessions
                    .iter()
                    .filter(|(_, c)| !c.is_alive() || (c.idle_for() >= idle && c.in_flight() == 0))
                    .map(|(id, _)| id.clone())
                    .collect();
                gone.iter().filter_map(|id| sessions.remove(id)).collect()
            }
            Err(_) => Vec::new(),
        };
        for child in ended.into_iter().chain(upstream.pool.idle(idle)) {
            child.end(&format!("idle for {}s", idle.as_secs()));
        }
    }
}
