//! The pins' link to the control plane: `ToolService.Watch` keeps this node's copy
//! of the pins current, `ToolService.Report` tells the control plane about
//! definitions this node saw for the first time. Both retry with backoff; neither
//! is on a request's path.

use super::{Pins, Sighting};
use crate::control::{Backoff, ControlPlaneLink};
use airlock_proto::v1::tool_service_client::ToolServiceClient;
use airlock_proto::v1::{ToolDefinition, ToolServiceReportRequest, ToolServiceWatchRequest};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Sightings waiting to be reported.
pub(crate) const QUEUE: usize = 1024;
/// Sightings sent in one report.
const BATCH: usize = 64;

/// Follows the pins until the proxy stops.
pub(crate) async fn watch(link: ControlPlaneLink, pins: Arc<Pins>) {
    let mut backoff = Backoff::default();
    loop {
        let mut client = ToolServiceClient::new(link.channel());
        let request = link.authorize(tonic::Request::new(ToolServiceWatchRequest {}));
        match client.watch(request).await {
            Ok(response) => {
                let mut stream = response.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(message)) => {
                            backoff.reset();
                            let pins_now: HashMap<(String, String), String> = message
                                .pins
                                .into_iter()
                                .map(|p| ((p.server, p.tool), p.digest))
                                .collect();
                            tracing::debug!(pins = pins_now.len(), "tool pins updated");
                            pins.set_reviewed(pins_now);
                        }
                        Ok(None) => break,
                        Err(status) => {
                            tracing::debug!(error = %status.message(), "tool pin stream ended");
                            break;
                        }
                    }
                }
            }
            Err(status) => {
                tracing::debug!(code = ?status.code(), error = %status.message(), "cannot watch tool pins; retrying");
            }
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// Reports sightings (batched per upstream) until the proxy stops.
pub(crate) async fn report(link: ControlPlaneLink, mut sightings: mpsc::Receiver<Sighting>) {
    let mut client = ToolServiceClient::new(link.channel());
    while let Some(first) = sightings.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match sightings.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        let mut by_server: HashMap<String, Vec<ToolDefinition>> = HashMap::new();
        for s in batch {
            by_server.entry(s.server).or_default().push(ToolDefinition {
                name: s.tool,
                digest: s.digest,
                definition_json: s.definition,
            });
        }
        for (server, tools) in by_server {
            let mut backoff = Backoff::default();
            for _attempt in 0..5 {
                let request = link.authorize(tonic::Request::new(ToolServiceReportRequest {
                    node_id: link.node_id().to_owned(),
                    server: server.clone(),
                    tools: tools.clone(),
                }));
                match client.report(request).await {
                    Ok(_) => break,
                    Err(status) => {
                        tracing::debug!(error = %status.message(), "cannot report tool definitions; retrying");
                        tokio::time::sleep(backoff.next_delay().min(Duration::from_secs(5))).await;
                    }
                }
            }
        }
    }
}
