//! `airlock nodes list`: the fleet of proxies as the control plane sees it.

use super::client::{ago, print_table, ControlPlaneClient, GlobalArgs, Output};
use airlock_control_plane::api;
use clap::Subcommand;
use std::process::ExitCode;

/// `airlock nodes` subcommands.
#[derive(Debug, Subcommand)]
pub enum NodesCommand {
    /// List every proxy that reported, with the revision it serves and the Rego
    /// engine evaluating it (`rvm` only for a bundle proven to agree with the
    /// interpreter; `--output json` says why); nodes silent for three heartbeat
    /// intervals are marked STALE.
    List,
}

/// Runs an `airlock nodes` subcommand.
pub async fn run(cmd: NodesCommand, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match cmd {
        NodesCommand::List => list(global).await,
    }
}

async fn list(global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let client = ControlPlaneClient::connect(global).await?;
    let request = client.request(api::NodeServiceListRequest {})?;
    let nodes = client
        .nodes()
        .list(request)
        .await
        .map_err(|s| client.explain(s))?
        .into_inner()
        .nodes;
    if global.output == Output::Json {
        let rows: Vec<_> = nodes
            .iter()
            .map(|n| {
                serde_json::json!({
                    "node_id": n.node_id, "version": n.version, "active_revision": n.active_revision,
                    "last_error": n.last_error, "last_seen_unix_ms": n.last_seen_unix_ms,
                    "heartbeat_interval_ms": n.heartbeat_interval_ms, "stale": n.stale,
                    "reported_by": n.reported_by, "engine": n.engine,
                    "engine_reason": n.engine_reason,
                    "audit": n.audit.as_ref().map(|a| serde_json::json!({
                        "trust": trust_name(a.trust()), "checkpoint_size": a.checkpoint_size,
                        "problem": a.problem,
                    })),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    if nodes.is_empty() {
        println!("no node has reported yet; proxies report when they connect to the control plane");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|n| {
            vec![
                n.node_id.clone(),
                if n.stale { "STALE".into() } else { "ok".into() },
                or_dash(&n.active_revision),
                or_dash(&n.engine),
                or_dash(&n.version),
                ago(n.last_seen_unix_ms),
                audit_cell(n.audit.as_ref()),
                or_dash(&n.last_error),
            ]
        })
        .collect();
    print_table(
        &[
            "NODE",
            "STATUS",
            "REVISION",
            "ENGINE",
            "VERSION",
            "LAST SEEN",
            "AUDIT LOG",
            "LAST ERROR",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

fn or_dash(text: &str) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text.to_owned()
    }
}

fn trust_name(trust: api::AuditTrust) -> &'static str {
    match trust {
        api::AuditTrust::Unspecified => "unchecked",
        api::AuditTrust::Verified => "verified",
        api::AuditTrust::Refused => "refused",
    }
}

/// What the node thinks of the control plane's audit log: `verified (N)`, or
/// `REFUSED: why` (it ships nothing to a log that was rolled back or forked).
fn audit_cell(audit: Option<&api::NodeAuditStatus>) -> String {
    match audit {
        Some(a) if a.trust() == api::AuditTrust::Refused => format!("REFUSED: {}", a.problem),
        Some(a) if a.trust() == api::AuditTrust::Verified => {
            format!("verified ({})", a.checkpoint_size)
        }
        _ => "-".to_owned(),
    }
}
