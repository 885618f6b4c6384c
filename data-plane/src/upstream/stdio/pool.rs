//! The stateless pool: children the proxy initializes itself and shares between
//! every stateless (2026-07-28) request of the upstream.
//!
//! A request goes to the least busy child; a new child is started (one at a time)
//! when every child has [`BUSY`] requests in flight and fewer than `max_processes`
//! run. The proxy speaks the session revision to the child (`initialize`, then
//! `notifications/initialized`) and answers `server/discover` from what the child
//! said; ids are rewritten per request (`routes`), so clients never collide.

use super::child::Child;
use super::{first_answer, poisoned, requests_of, StdioUpstream};
use crate::error::ProxyError;
use crate::upstream::reply::Reply;
use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Requests in flight on a child before the pool starts another one.
const BUSY: usize = 8;
/// The revision the proxy speaks to a pooled child.
const CHILD_REVISION: &str = "2025-11-25";

/// One initialized child of the pool.
#[derive(Debug)]
struct Member {
    child: Arc<Child>,
    /// Its `initialize` result (capabilities, serverInfo, instructions).
    init: Value,
}

/// The pool of one stdio upstream.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    members: Mutex<Vec<Arc<Member>>>,
    /// Held while a child starts, so a burst starts one, not many.
    starting: tokio::sync::Mutex<()>,
}

impl Pool {
    /// Children in the pool.
    pub(crate) fn len(&self) -> usize {
        self.members.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Takes every child out (for shutdown).
    pub(crate) fn drain(&self) -> Vec<Arc<Child>> {
        self.members
            .lock()
            .map(|mut m| m.drain(..).map(|m| Arc::clone(&m.child)).collect())
            .unwrap_or_default()
    }

    /// Takes out the children without a request for `idle`, and the dead ones.
    pub(crate) fn idle(&self, idle: Duration) -> Vec<Arc<Child>> {
        let Ok(mut members) = self.members.lock() else {
            return Vec::new();
        };
        let (gone, kept): (Vec<_>, Vec<_>) = members.drain(..).partition(|m| {
            !m.child.is_alive() || (m.child.idle_for() >= idle && m.child.in_flight() == 0)
        });
        *members = kept;
        gone.into_iter().map(|m| Arc::clone(&m.child)).collect()
    }

    /// Sends one stateless request to a pooled child (or answers `server/discover`).
    pub(crate) async fn forward(
        &self,
        upstream: &StdioUpstream,
        mut value: Value,
    ) -> Result<Reply, ProxyError> {
        let mut requests = requests_of(&mut value);
        if requests.len() > 1 {
            return Err(ProxyError::Header(
                "a stateless request carries one message; send one per request".to_owned(),
            ));
        }
        let Some(request) = requests.first_mut() else {
            // A stateless client's notification or response has no session to go to.
            return Ok(Reply::empty(StatusCode::ACCEPTED));
        };
        let member = self.member(upstream).await?;
        if request.get("method").and_then(Value::as_str) == Some("server/discover") {
            let answer =
                json!({"jsonrpc": "2.0", "id": request["id"], "result": discover(&member.init)});
            return Ok(Reply::json(Bytes::from(
                serde_json::to_vec(&answer).unwrap_or_default(),
            )));
        }
        let client_id = request["id"].clone();
        let rx = member
            .child
            .routes
            .lock()
            .map_err(|_| poisoned())?
            .register(&mut requests)
            .map_err(|detail| upstream.refused(detail))?;
        // The decided message with its id (and progress token) rewritten for the wire.
        let wire = Bytes::from(serde_json::to_vec(&value).unwrap_or_default());
        member.child.send(wire).await?;
        first_answer(&member.child, rx, Some(client_id), upstream.request_timeout).await
    }

    /// The least busy child, starting one when none runs or all are busy.
    async fn member(&self, upstream: &StdioUpstream) -> Result<Arc<Member>, ProxyError> {
        loop {
            let (best, count) = self.least_busy();
            let room = upstream.children() < upstream.config.max_processes;
            match best {
                Some(member) if member.child.in_flight() < BUSY || !room => return Ok(member),
                Some(member) => {
                    // Busy: start another unless one is starting already.
                    let Ok(_starting) = self.starting.try_lock() else {
                        return Ok(member);
                    };
                    return Ok(self.start(upstream).await.unwrap_or(member));
                }
                None if !room => return Err(upstream.busy()),
                None => {
                    let _starting = self.starting.lock().await;
                    if self.least_busy().1 > count {
                        continue; // another request started one meanwhile
                    }
                    return self.start(upstream).await;
                }
            }
        }
    }

    fn least_busy(&self) -> (Option<Arc<Member>>, usize) {
        let Ok(mut members) = self.members.lock() else {
            return (None, 0);
        };
        members.retain(|m| m.child.is_alive());
        let best = members.iter().min_by_key(|m| m.child.in_flight()).cloned();
        (best, members.len())
    }

    /// Spawns and initializes a child, then adds it to the pool.
    async fn start(&self, upstream: &StdioUpstream) -> Result<Arc<Member>, ProxyError> {
        let child = Child::spawn(&upstream.name, &upstream.config, upstream.max_line, true)?;
        match initialize(&child, upstream.config.startup_timeout).await {
            Ok(init) => {
                let member = Arc::new(Member { child, init });
                if let Ok(mut members) = self.members.lock() {
                    members.push(Arc::clone(&member));
                }
                Ok(member)
            }
            Err(error) => {
                child.end("initialize failed");
                Err(error)
            }
        }
    }
}

/// The proxy's own handshake with a pooled child; returns its `initialize` result.
async fn initialize(child: &Child, within: Duration) -> Result<Value, ProxyError> {
    let mut request = json!({
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": CHILD_REVISION,
            "capabilities": {},
            "clientInfo": {"name": "airlock", "version": env!("CARGO_PKG_VERSION")},
        },
    });
    let rx = child
        .routes
        .lock()
        .map_err(|_| poisoned())?
        .register(&mut [&mut request])
        .map_err(ProxyError::Internal)?;
    child
        .send(Bytes::from(
            serde_json::to_vec(&request).unwrap_or_default(),
        ))
        .await?;
    let reply = first_answer(child, rx, Some(json!(0)), within).await?;
    let crate::upstream::reply::ReplyBody::Json(bytes) = reply.body else {
        return Err(ProxyError::Internal(
            "a pooled child's initialize answer came as a stream".to_owned(),
        ));
    };
    let answer: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let Some(result) = answer.get("result").cloned() else {
        return Err(child.unavailable(&super::child::Exit {
            what: format!("refused initialize: {}", answer["error"]),
            stderr_tail: child.stderr_tail(),
        }));
    };
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    child
        .send(Bytes::from(
            serde_json::to_vec(&initialized).unwrap_or_default(),
        ))
        .await?;
    Ok(result)
}

/// `server/discover` answered from a child's `initialize` result.
fn discover(init: &Value) -> Value {
    let mut result = json!({
        "supportedVersions": ["2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"],
        "capabilities": init.get("capabilities").cloned().unwrap_or_else(|| json!({})),
        "_meta": {"io.modelcontextprotocol/serverInfo": init.get("serverInfo").cloned().unwrap_or(Value::Null)},
        "resultType": "complete",
        "ttlMs": 0,
        "cacheScope": "public",
    });
    if let Some(instructions) = init.get("instructions") {
        result["instructions"] = instructions.clone();
    }
    result
}
