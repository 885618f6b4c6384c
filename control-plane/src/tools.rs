//! `ToolService`: the pins of tool definitions, per upstream.
//!
//! Proxies report each definition they see with a new digest (`Report`) and follow
//! the pins (`Watch`); admins pin what was seen (`Pin`, trust on first review);
//! reviewers accept a changed definition by its digest (`Accept`). Pinning and
//! accepting are recorded in the audit log, through the same append path as the
//! proxies' events.

use crate::api;
use crate::audit::Audit;
use crate::auth::{Authenticator, Caller, Rpc};
use crate::bundles::{blocking, now_ms};
use crate::store::{ObservedRecord, PinRecord, PinStore};
use crate::ControlPlaneError;
use serde_json::json;
use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// Longest server or tool name accepted.
const MAX_NAME: usize = 256;
/// Largest definition accepted in a report.
const MAX_DEFINITION: usize = 256 * 1024;
/// Definitions accepted in one report.
const MAX_TOOLS: usize = 1024;

/// The `ToolService` implementation (a cheap handle).
#[derive(Clone)]
pub struct Tools {
    store: Arc<PinStore>,
    auth: Arc<Authenticator>,
    audit: Audit,
    /// Bumped on every pin change; `Watch` streams resend the set.
    changed: Arc<watch::Sender<u64>>,
    stopping: watch::Receiver<bool>,
}

impl Tools {
    /// The service over `store`, recording reviewer actions with `audit`.
    pub fn new(
        store: Arc<PinStore>,
        auth: Arc<Authenticator>,
        audit: Audit,
        stopping: watch::Receiver<bool>,
    ) -> Tools {
        Tools {
            store,
            auth,
            audit,
            changed: Arc::new(watch::channel(0).0),
            stopping,
        }
    }

    fn pin_set(&self) -> Result<api::ToolServiceWatchResponse, ControlPlaneError> {
        let pins = self
            .store
            .pins(None)?
            .into_iter()
            .map(|p| api::ToolPin {
                server: p.server,
                tool: p.tool,
                digest: p.digest,
            })
            .collect();
        Ok(api::ToolServiceWatchResponse { pins })
    }

    /// Records a reviewer action in the audit log.
    async fn record(
        &self,
        caller: &Caller,
        method: &str,
        pin: &PinRecord,
        detail: serde_json::Value,
    ) -> Result<(), ControlPlaneError> {
        let event = api::AuditEvent {
            event_id: format!(
                "tools-{}-{}",
                now_ms(),
                hex::encode(rand::random::<[u8; 8]>())
            ),
            node_id: "control-plane".to_owned(),
            unix_ms: now_ms(),
            identity: caller.subject.clone(),
            server: pin.server.clone(),
            method: method.to_owned(),
            tool: pin.tool.clone(),
            payload_json: detail.to_string(),
            verdict: "allow".to_owned(),
            reasons: vec![method.replace("airlock/", "")],
            ..Default::default()
        };
        self.audit.append(vec![event]).await.map(drop)
    }
}

fn check_name(field: &str, value: &str) -> Result<(), ControlPlaneError> {
    if value.is_empty() || value.len() > MAX_NAME || value.contains('\0') {
        return Err(ControlPlaneError::InvalidArgument(format!(
            "{field} {value:?} is not valid: give 1 to {MAX_NAME} bytes (see `airlock tools list`)"
        )));
    }
    Ok(())
}

/// Each tool with its pin and its last sighting, sorted by server and tool.
fn states(pins: Vec<PinRecord>, seen: Vec<ObservedRecord>) -> Vec<api::ToolState> {
    let mut tools: BTreeMap<(String, String), (Option<PinRecord>, Option<ObservedRecord>)> =
        BTreeMap::new();
    for pin in pins {
        let key = (pin.server.clone(), pin.tool.clone());
        tools.entry(key).or_default().0 = Some(pin);
    }
    for observed in seen {
        let key = (observed.server.clone(), observed.tool.clone());
        tools.entry(key).or_default().1 = Some(observed);
    }
    tools
        .into_iter()
        .map(|((server, tool), (pin, observed))| {
            let status = match (&pin, &observed) {
                (None, _) => "new",
                (Some(p), Some(o)) if p.digest != o.digest => "drifted",
                (Some(_), _) => "pinned",
            };
            let (pinned_by, pinned_unix_ms, pinned_digest, pinned_definition_json) = match pin {
                Some(p) => (p.pinned_by, p.pinned_unix_ms, p.digest, p.definition_json),
                None => Default::default(),
            };
            let (observed_by, observed_unix_ms, observed_digest, observed_definition_json) =
                match observed {
                    Some(o) => (o.node_id, o.seen_unix_ms, o.digest, o.definition_json),
                    None => Default::default(),
                };
            api::ToolState {
                server,
                tool,
                status: status.to_owned(),
                pinned_digest,
                pinned_definition_json,
                pinned_by,
                pinned_unix_ms,
                observed_digest,
                observed_definition_json,
                observed_unix_ms,
                observed_by,
            }
        })
        .collect()
}

/// The server stream type of `Watch`.
pub type PinStream =
    Pin<Box<dyn Stream<Item = Result<api::ToolServiceWatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl api::tool_service_server::ToolService for Tools {
    async fn report(
        &self,
        request: Request<api::ToolServiceReportRequest>,
    ) -> Result<Response<api::ToolServiceReportResponse>, Status> {
        self.auth.authorize(request.metadata(), Rpc::ToolReport)?;
        let req = request.into_inner();
        check_name("server", &req.server)?;
        if req.tools.len() > MAX_TOOLS {
            return Err(ControlPlaneError::InvalidArgument(format!(
                "{} tools in one report: send at most {MAX_TOOLS}",
                req.tools.len()
            ))
            .into());
        }
        for tool in &req.tools {
            check_name("tool", &tool.name)?;
            if tool.definition_json.len() > MAX_DEFINITION || !tool.digest.starts_with("sha256:") {
                return Err(ControlPlaneError::InvalidArgument(format!(
                    "tool {:?}: the definition is over {MAX_DEFINITION} bytes or its digest is not sha256:...",
                    tool.name
                ))
                .into());
            }
        }
        let store = Arc::clone(&self.store);
        let recorded = blocking(move || {
            let mut recorded = 0u32;
            for tool in req.tools {
                let seen = ObservedRecord {
                    server: req.server.clone(),
                    tool: tool.name,
                    digest: tool.digest,
                    definition_json: tool.definition_json,
                    node_id: req.node_id.clone(),
                    seen_unix_ms: now_ms(),
                };
                if store.put_observed(&seen)? {
                    recorded += 1;
                }
            }
            Ok(recorded)
        })
        .await?;
        Ok(Response::new(api::ToolServiceReportResponse { recorded }))
    }

    type WatchStream = PinStream;

    async fn watch(
        &self,
        request: Request<api::ToolServiceWatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        self.auth.authorize(request.metadata(), Rpc::ToolWatch)?;
        let mut changes = self.changed.subscribe();
        let mut stopping = self.stopping.clone();
        let tools = self.clone();
        let (tx, rx) = mpsc::channel(2);
        tokio::spawn(async move {
            loop {
                changes.borrow_and_update();
                let set = tools.pin_set().map_err(Status::from);
                if tx.send(set).await.is_err() {
                    return;
                }
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { return },
                    () = async { drop(stopping.wait_for(|stop| *stop).await) } => return,
                    () = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn list(
        &self,
        request: Request<api::ToolServiceListRequest>,
    ) -> Result<Response<api::ToolServiceListResponse>, Status> {
        self.auth.authorize(request.metadata(), Rpc::ToolList)?;
        let server = request.into_inner().server;
        let store = Arc::clone(&self.store);
        let (pins, seen) = blocking(move || {
            let filter = (!server.is_empty()).then_some(server.as_str());
            Ok((store.pins(filter)?, store.observed(filter)?))
        })
        .await?;
        Ok(Response::new(api::ToolServiceListResponse {
            tools: states(pins, seen),
        }))
    }

    async fn pin(
        &self,
        request: Request<api::ToolServicePinRequest>,
    ) -> Result<Response<api::ToolServicePinResponse>, Status> {
        let caller = self.auth.authorize(request.metadata(), Rpc::ToolPin)?;
        let req = request.into_inner();
        check_name("server", &req.server)?;
        let store = Arc::clone(&self.store);
        let server = req.server.clone();
        let (pins, seen) =
            blocking(move || Ok((store.pins(Some(&server))?, store.observed(Some(&server))?)))
                .await?;
        let candidates: Vec<api::ToolState> = states(pins, seen)
            .into_iter()
            .filter(|t| req.tool.is_empty() || t.tool == req.tool)
            .collect();
        if !req.tool.is_empty() {
            match candidates.first() {
                None => return Err(ControlPlaneError::ToolNotFound(format!(
                    "no proxy has listed tool `{}` of `{}` yet; list the server's tools through a proxy first",
                    req.tool, req.server
                ))
                .into()),
                Some(t) if t.status != "new" => return Err(ControlPlaneError::ToolRefused(format!(
                    "tool `{}` of `{}` is {} already; a changed definition is accepted with `airlock tools accept {} {}`",
                    req.tool, req.server, t.status, req.server, req.tool
                ))
                .into()),
                Some(_) => {}
            }
        }
        let mut pinned = Vec::new();
        for tool in candidates.into_iter().filter(|t| t.status == "new") {
            let pin = PinRecord {
                server: tool.server,
                tool: tool.tool,
                digest: tool.observed_digest,
                definition_json: tool.observed_definition_json,
                pinned_by: caller.subject.clone(),
                pinned_unix_ms: now_ms(),
            };
            self.record(
                &caller,
                "airlock/tools.pin",
                &pin,
                json!({"digest": pin.digest}),
            )
            .await?;
            let store = Arc::clone(&self.store);
            let stored = pin.clone();
            blocking(move || Ok(store.put_pin(&stored)?)).await?;
            pinned.push(api::ToolPin {
                server: pin.server,
                tool: pin.tool,
                digest: pin.digest,
            });
        }
        if !pinned.is_empty() {
            self.changed.send_modify(|n| *n += 1);
        }
        Ok(Response::new(api::ToolServicePinResponse { pinned }))
    }

    async fn accept(
        &self,
        request: Request<api::ToolServiceAcceptRequest>,
    ) -> Result<Response<api::ToolServiceAcceptResponse>, Status> {
        let caller = self.auth.authorize(request.metadata(), Rpc::ToolAccept)?;
        let req = request.into_inner();
        check_name("server", &req.server)?;
        check_name("tool", &req.tool)?;
        let store = Arc::clone(&self.store);
        let server = req.server.clone();
        let (pins, seen) =
            blocking(move || Ok((store.pins(Some(&server))?, store.observed(Some(&server))?)))
                .await?;
        let Some(state) = states(pins, seen).into_iter().find(|t| t.tool == req.tool) else {
            return Err(ControlPlaneError::ToolNotFound(format!(
                "no proxy has listed tool `{}` of `{}`; see `airlock tools list {}`",
                req.tool, req.server, req.server
            ))
            .into());
        };
        if state.observed_digest.is_empty() || state.observed_digest != req.digest {
            return Err(ControlPlaneError::ToolRefused(format!(
                "the definition of `{}` last seen has digest {:?}, not the {:?} given: review it again with `airlock tools list {}`",
                req.tool, state.observed_digest, req.digest, req.server
            ))
            .into());
        }
        let pin = PinRecord {
            server: state.server,
            tool: state.tool,
            digest: state.observed_digest,
            definition_json: state.observed_definition_json,
            pinned_by: caller.subject.clone(),
            pinned_unix_ms: now_ms(),
        };
        let detail = json!({
            "digest": pin.digest,
            "previous_digest": state.pinned_digest,
            "reason": req.reason,
        });
        // Recorded before it takes effect: no unrecorded reviewer action.
        self.record(&caller, "airlock/tools.accept", &pin, detail)
            .await?;
        let store = Arc::clone(&self.store);
        let stored = pin.clone();
        blocking(move || Ok(store.put_pin(&stored)?)).await?;
        self.changed.send_modify(|n| *n += 1);
        tracing::info!(server = %pin.server, tool = %pin.tool, by = %caller.subject, "tool definition accepted");
        Ok(Response::new(api::ToolServiceAcceptResponse {
            pin: Some(api::ToolPin {
                server: pin.server,
                tool: pin.tool,
                digest: pin.digest,
            }),
            previous_digest: state.pinned_digest,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_is_new_pinned_or_drifted_by_its_last_sighting() {
        let pin = |tool: &str, digest: &str| PinRecord {
            server: "s".into(),
            tool: tool.into(),
            digest: digest.into(),
            definition_json: "{}".into(),
            pinned_by: "a".into(),
            pinned_unix_ms: 1,
        };
        let seen = |tool: &str, digest: &str| ObservedRecord {
            server: "s".into(),
            tool: tool.into(),
            digest: digest.into(),
            definition_json: "{}".into(),
            node_id: "n".into(),
            seen_unix_ms: 1,
        };
        let all = states(
            vec![pin("same", "d1"), pin("changed", "d1"), pin("unseen", "d1")],
            vec![
                seen("same", "d1"),
                seen("changed", "d2"),
                seen("fresh", "d3"),
            ],
        );
        let status: Vec<(&str, &str)> = all
            .iter()
            .map(|t| (t.tool.as_str(), t.status.as_str()))
            .collect();
        assert_eq!(
            status,
            [
                ("changed", "drifted"),
                ("fresh", "new"),
                ("same", "pinned"),
                ("unseen", "pinned")
            ]
        );
    }
}
