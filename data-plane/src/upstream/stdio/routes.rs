//! Which waiting client gets each message a child writes.
//!
//! A stdio server has one stream for everything; Streamable HTTP has one per POST
//! plus the GET stream. The routes put them back together: an answer goes to the
//! POST that carries its request's id; a progress notification to the POST whose
//! request carries its token; any other server request or notification to the
//! newest POST still waiting (it is most likely the cause), else to the session's
//! GET stream, else to a bounded backlog the next GET stream starts with.
//!
//! A pooled child serves many clients at once, so their ids could collide: each
//! request gets a fresh integer id (and progress token) on the wire, mapped back to
//! the client's exactly in the answer. A pooled child's own requests (sampling,
//! elicitation) have no client to go to and are answered with an error at once.

use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use tokio::sync::mpsc;

/// Messages a POST stream buffers before deliveries wait.
const STREAM_CAPACITY: usize = 64;
/// Server messages kept for a GET stream that is not open yet.
const BACKLOG: usize = 256;

/// What to do with one message from the child.
#[derive(Debug)]
pub(crate) enum Delivery {
    /// Send these bytes to this client stream.
    To(mpsc::Sender<Bytes>, Bytes),
    /// Write this answer back to the child (a request no client can answer).
    Answer(Bytes),
    /// Nobody can take it (logged at debug).
    Dropped(String),
}

#[derive(Debug)]
struct Route {
    stream: u64,
    /// The client's id, restored in the answer.
    client_id: Value,
    tx: mpsc::Sender<Bytes>,
    /// The progress-token key this request registered.
    progress: Option<String>,
}

#[derive(Debug)]
struct Stream {
    id: u64,
    tx: mpsc::Sender<Bytes>,
    outstanding: usize,
}

/// The routing table of one child.
#[derive(Debug)]
pub(crate) struct Routes {
    pooled: bool,
    /// By the id on the wire, as JSON text (`1` and `"1"` differ).
    pending: HashMap<String, Route>,
    /// POST streams with answers outstanding, oldest first.
    streams: Vec<Stream>,
    /// Progress token (JSON text, on the wire) → stream and the client's token.
    progress: HashMap<String, (u64, Value)>,
    get: Option<mpsc::Sender<Bytes>>,
    backlog: VecDeque<Bytes>,
    next_id: u64,
    next_stream: u64,
    closed: bool,
}

impl Routes {
    pub(crate) fn new(pooled: bool) -> Routes {
        Routes {
            pooled,
            pending: HashMap::new(),
            streams: Vec::new(),
            progress: HashMap::new(),
            get: None,
            backlog: VecDeque::new(),
            next_id: 1,
            next_stream: 1,
            closed: false,
        }
    }

    /// Requests waiting for their answer.
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Registers the requests of one POST (rewriting their ids and progress tokens
    /// when pooled) and returns the stream their answers and related messages
    /// arrive on. Refused when the child is gone or an id is already in flight.
    pub(crate) fn register(
        &mut self,
        requests: &mut [&mut Value],
    ) -> Result<mpsc::Receiver<Bytes>, String> {
        if self.closed {
            return Err("the process has ended".to_owned());
        }
        let keys: Vec<String> = if self.pooled {
            (0..requests.len())
                .map(|i| (self.next_id + i as u64).to_string())
                .collect()
        } else {
            requests.iter().map(|r| r["id"].to_string()).collect()
        };
        if let Some(key) = keys.iter().find(|k| self.pending.contains_key(*k)) {
            return Err(format!(
                "a request with id {key} is already waiting for its answer on this session; use a new id"
            ));
        }
        let (tx, rx) = mpsc::channel(STREAM_CAPACITY);
        let stream = self.next_stream;
        self.next_stream += 1;
        for (request, key) in requests.iter_mut().zip(keys) {
            let client_id = request["id"].clone();
            let progress = self.progress_token(request, &key, stream);
            if self.pooled {
                self.next_id += 1;
                request["id"] = json!(key.parse::<u64>().unwrap_or_default());
            }
            self.pending.insert(
                key,
                Route {
                    stream,
                    client_id,
                    tx: tx.clone(),
                    progress,
                },
            );
        }
        self.streams.push(Stream {
            id: stream,
            tx,
            outstanding: requests.len(),
        });
        Ok(rx)
    }

    /// Records a request's progress token (rewritten to `key` when pooled).
    fn progress_token(&mut self, request: &mut Value, key: &str, stream: u64) -> Option<String> {
        let meta = request
            .get_mut("params")?
            .get_mut("_meta")?
            .as_object_mut()?;
        let token = meta.get("progressToken")?.clone();
        let wire = if self.pooled {
            let wire = json!(format!("airlock-{key}"));
            meta.insert("progressToken".to_owned(), wire.clone());
            wire.to_string()
        } else {
            token.to_string()
        };
        self.progress.insert(wire.clone(), (stream, token));
        Some(wire)
    }

    /// Opens the GET stream (replacing an older one), starting with the backlog.
    pub(crate) fn attach_get(&mut self) -> mpsc::Receiver<Bytes> {
        let (tx, rx) = mpsc::channel(BACKLOG + STREAM_CAPACITY);
        for message in self.backlog.drain(..) {
            let _ = tx.try_send(message);
        }
        self.get = Some(tx);
        rx
    }

    /// Ends every stream; returns the requests still waiting, for their errors.
    pub(crate) fn close(&mut self) -> Vec<(mpsc::Sender<Bytes>, Value)> {
        self.closed = true;
        self.streams.clear();
        self.progress.clear();
        self.get = None;
        self.pending
            .drain()
            .map(|(_, route)| (route.tx, route.client_id))
            .collect()
    }

    /// Where one message from the child goes (`line` is its exact bytes).
    pub(crate) fn incoming(&mut self, mut value: Value, line: Bytes) -> Vec<Delivery> {
        if let Value::Array(items) = value {
            // A batch from the server: each message on its own.
            return items
                .into_iter()
                .flat_map(|item| {
                    let bytes = Bytes::from(serde_json::to_vec(&item).unwrap_or_default());
                    self.incoming(item, bytes)
                })
                .collect();
        }
        let method = value
            .get("method")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let has_id = value.get("id").is_some();
        match (method.as_deref(), has_id) {
            (None, true) => vec![self.answer(&mut value, line)],
            (Some("notifications/progress"), false) => vec![self.progress(&mut value, line)],
            (Some(method), true) if self.pooled => vec![Delivery::Answer(refusal(&value, method))],
            (Some(method), false) if self.pooled => vec![Delivery::Dropped(format!(
                "a pooled child's notification {method} has no client to go to"
            ))],
            (Some(_), _) => self.server_message(line),
            (None, false) => vec![Delivery::Dropped(
                "a message that is neither a request, a notification nor an answer".to_owned(),
            )],
        }
    }

    fn answer(&mut self, value: &mut Value, line: Bytes) -> Delivery {
        let key = value["id"].to_string();
        let Some(route) = self.pending.remove(&key) else {
            return Delivery::Dropped(format!("an answer to id {key}, which no request waits for"));
        };
        if let Some(stream) = self.streams.iter_mut().find(|s| s.id == route.stream) {
            stream.outstanding = stream.outstanding.saturating_sub(1);
        }
        if let Some(token) = &route.progress {
            self.progress.remove(token);
        }
        self.streams.retain(|s| s.outstanding > 0);
        if !self.pooled {
            return Delivery::To(route.tx, line);
        }
        value["id"] = route.client_id;
        // Pooled children serve stateless (2026-07-28) clients, whose results say
        // they are complete; the child speaks an older revision that does not.
        if let Some(result) = value.get_mut("result").and_then(Value::as_object_mut) {
            result
                .entry("resultType")
                .or_insert_with(|| json!("complete"));
        }
        Delivery::To(
            route.tx,
            Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
        )
    }

    fn progress(&mut self, value: &mut Value, line: Bytes) -> Delivery {
        let wire = value["params"]["progressToken"].to_string();
        let Some((stream, client_token)) = self.progress.get(&wire).cloned() else {
            return match self.server_message(line).pop() {
                Some(delivery) => delivery,
                None => Delivery::Dropped("progress for no waiting request".to_owned()),
            };
        };
        let Some(tx) = self
            .streams
            .iter()
            .find(|s| s.id == stream)
            .map(|s| s.tx.clone())
        else {
            return Delivery::Dropped("progress for a request already answered".to_owned());
        };
        if !self.pooled {
            return Delivery::To(tx, line);
        }
        value["params"]["progressToken"] = client_token;
        Delivery::To(
            tx,
            Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
        )
    }

    /// A server request or notification of a session's child.
    fn server_message(&mut self, line: Bytes) -> Vec<Delivery> {
        if let Some(stream) = self.streams.last() {
            return vec![Delivery::To(stream.tx.clone(), line)];
        }
        if let Some(get) = self.get.as_ref().filter(|g| !g.is_closed()) {
            return vec![Delivery::To(get.clone(), line)];
        }
        if self.backlog.len() == BACKLOG {
            self.backlog.pop_front();
        }
        self.backlog.push_back(line);
        Vec::new()
    }
}

/// The error a pooled child gets for a request of its own.
fn refusal(request: &Value, method: &str) -> Bytes {
    let body = json!({
        "jsonrpc": "2.0",
        "id": request["id"],
        "error": {
            "code": -32601,
            "message": format!("{method} is not available: this server runs in airlock's stateless pool, where no client session can answer server requests"),
        }
    });
    Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(value: &Value) -> Bytes {
        Bytes::from(serde_json::to_vec(value).unwrap())
    }

    fn deliver(routes: &mut Routes, value: Value) -> Vec<Delivery> {
        let line = bytes(&value);
        routes.incoming(value, line)
    }

    fn sent(delivery: Delivery) -> Value {
        match delivery {
            Delivery::To(tx, bytes) => {
                tx.try_send(bytes.clone()).unwrap();
                serde_json::from_slice(&bytes).unwrap()
            }
            other => panic!("not delivered to a client: {other:?}"),
        }
    }

    #[test]
    fn a_pooled_request_gets_a_fresh_id_mapped_back_exactly() {
        let mut routes = Routes::new(true);
        let mut a = json!({"jsonrpc": "2.0", "id": "same", "method": "tools/list"});
        let mut b = json!({"jsonrpc": "2.0", "id": "same", "method": "tools/list"});
        let _ra = routes.register(&mut [&mut a]).unwrap();
        let _rb = routes.register(&mut [&mut b]).unwrap();
        assert_ne!(
            a["id"], b["id"],
            "two clients' equal ids differ on the wire"
        );
        let answer = sent(
            deliver(
                &mut routes,
                json!({"jsonrpc": "2.0", "id": b["id"], "result": {}}),
            )
            .remove(0),
        );
        assert_eq!(answer["id"], "same");
        assert_eq!(answer["result"]["resultType"], "complete");
        assert_eq!(routes.pending(), 1);
    }

    #[test]
    fn a_session_keeps_ids_and_refuses_one_already_in_flight() {
        let mut routes = Routes::new(false);
        let mut a = json!({"jsonrpc": "2.0", "id": 7, "method": "ping"});
        let _rx = routes.register(&mut [&mut a]).unwrap();
        assert_eq!(a["id"], 7);
        let mut again = json!({"jsonrpc": "2.0", "id": 7, "method": "ping"});
        assert!(routes.register(&mut [&mut again]).is_err());
        let mut string_id = json!({"jsonrpc": "2.0", "id": "7", "method": "ping"});
        assert!(
            routes.register(&mut [&mut string_id]).is_ok(),
            "\"7\" is not 7"
        );
    }

    #[test]
    fn progress_goes_to_the_request_with_its_token_and_other_messages_to_the_newest_post() {
        let mut routes = Routes::new(true);
        let mut slow = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "x", "_meta": {"progressToken": "p"}}});
        let mut newer =
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "y"}});
        let mut slow_rx = routes.register(&mut [&mut slow]).unwrap();
        let _newer_rx = routes.register(&mut [&mut newer]).unwrap();
        let wire_token = slow["params"]["_meta"]["progressToken"].clone();
        assert_ne!(wire_token, "p");
        let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": wire_token, "progress": 1}});
        let out = sent(deliver(&mut routes, progress).remove(0));
        assert_eq!(out["params"]["progressToken"], "p");
        assert!(
            slow_rx.try_recv().is_ok(),
            "it reached the slow request's stream"
        );
        // A pooled child's own request is answered with an error at once.
        let sampling =
            json!({"jsonrpc": "2.0", "id": 99, "method": "sampling/createMessage", "params": {}});
        assert!(matches!(
            deliver(&mut routes, sampling).remove(0),
            Delivery::Answer(_)
        ));
    }

    #[test]
    fn a_session_s_server_messages_wait_in_the_backlog_for_a_get_stream() {
        let mut routes = Routes::new(false);
        let note = json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "x"}});
        assert!(deliver(&mut routes, note.clone()).is_empty());
        let mut get = routes.attach_get();
        assert!(
            get.try_recv().is_ok(),
            "the backlog is replayed on the GET stream"
        );
        assert_eq!(
            sent(deliver(&mut routes, note).remove(0))["method"],
            "notifications/message"
        );
    }

    #[test]
    fn closing_returns_every_waiting_request() {
        let mut routes = Routes::new(false);
        let mut a = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
        let mut b = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"});
        let _rx = routes.register(&mut [&mut a, &mut b]).unwrap();
        let mut ids: Vec<Value> = routes.close().into_iter().map(|(_, id)| id).collect();
        ids.sort_by_key(|id| id.as_i64());
        assert_eq!(ids, vec![json!(1), json!(2)]);
        let mut c = json!({"jsonrpc": "2.0", "id": 3, "method": "ping"});
        assert!(routes.register(&mut [&mut c]).is_err());
    }
}
