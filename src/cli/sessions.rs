//! `airlock sessions list | replay ID`: the audit log seen as MCP sessions.

use super::audit::{fetch, format_time, record_json};
use super::client::{print_table, ControlPlaneClient, GlobalArgs, Output};
use airlock_control_plane::api;
use clap::Subcommand;
use std::collections::BTreeMap;
use std::process::ExitCode;

/// `airlock sessions` subcommands.
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// Every session in the audit log, with its identity, server, message count and
    /// time span.
    List {
        /// Only sessions with messages at or after (see `airlock audit query --since`).
        #[arg(long)]
        since: Option<String>,
    },
    /// One session's messages in order with relative timings: a readable transcript
    /// (`--output json` for the records).
    Replay {
        /// The session id (as shown by `sessions list`).
        id: String,
    },
}

/// Runs an `airlock sessions` subcommand.
pub async fn run(cmd: SessionsCommand, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let client = ControlPlaneClient::connect(global).await?;
    match cmd {
        SessionsCommand::List { since } => list(&client, since, global.output).await,
        SessionsCommand::Replay { id } => replay(&client, &id, global.output).await,
    }
}

struct Summary {
    identity: String,
    server: String,
    messages: usize,
    denied: usize,
    first_ms: u64,
    last_ms: u64,
}

async fn list(
    client: &ControlPlaneClient,
    since: Option<String>,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let query = api::AuditServiceQueryRequest {
        since_unix_ms: since
            .as_deref()
            .map(super::audit::parse_time)
            .transpose()?
            .unwrap_or(0),
        ..Default::default()
    };
    let mut sessions: BTreeMap<String, Summary> = BTreeMap::new();
    for record in fetch(client, query).await? {
        let Some(e) = record.event else { continue };
        if e.session_id.is_empty() {
            continue; // before initialize answered: no session yet
        }
        let s = sessions
            .entry(e.session_id.clone())
            .or_insert_with(|| Summary {
                identity: e.identity.clone(),
                server: e.server.clone(),
                messages: 0,
                denied: 0,
                first_ms: e.unix_ms,
                last_ms: e.unix_ms,
            });
        s.messages += 1;
        s.denied += usize::from(e.verdict != "allow");
        s.first_ms = s.first_ms.min(e.unix_ms);
        s.last_ms = s.last_ms.max(e.unix_ms);
    }
    let mut ordered: Vec<_> = sessions.into_iter().collect();
    ordered.sort_by_key(|(_, s)| s.first_ms);
    if output == Output::Json {
        let rows: Vec<_> = ordered
            .iter()
            .map(|(id, s)| {
                serde_json::json!({
                    "session_id": id, "identity": s.identity, "server": s.server,
                    "messages": s.messages, "refused": s.denied,
                    "first_unix_ms": s.first_ms, "last_unix_ms": s.last_ms,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = ordered
        .iter()
        .map(|(id, s)| {
            vec![
                id.clone(),
                s.identity.clone(),
                s.server.clone(),
                s.messages.to_string(),
                s.denied.to_string(),
                format_time(s.first_ms),
                format!("{:.1}s", (s.last_ms - s.first_ms) as f64 / 1000.0),
            ]
        })
        .collect();
    print_table(
        &[
            "SESSION", "IDENTITY", "SERVER", "MESSAGES", "REFUSED", "STARTED", "SPAN",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

async fn replay(client: &ControlPlaneClient, id: &str, output: Output) -> anyhow::Result<ExitCode> {
    let query = api::AuditServiceQueryRequest {
        session_id: id.to_owned(),
        ..Default::default()
    };
    let records = fetch(client, query).await?;
    if records.is_empty() {
        anyhow::bail!("no message of session {id:?} in the audit log; see `airlock sessions list`");
    }
    if output == Output::Json {
        let rows: Vec<_> = records.iter().map(record_json).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    let start = records
        .first()
        .and_then(|r| r.event.as_ref())
        .map_or(0, |e| e.unix_ms);
    if let Some(e) = records.first().and_then(|r| r.event.as_ref()) {
        println!(
            "session {id}\nidentity {}  server {}  started {}\n",
            e.identity,
            e.server,
            format_time(start)
        );
    }
    for record in &records {
        let Some(e) = &record.event else { continue };
        let offset = e.unix_ms.saturating_sub(start) as f64 / 1000.0;
        let arrow = if e.direction == "client_to_server" {
            "agent → server"
        } else {
            "server → agent"
        };
        let what = match (e.method.as_str(), e.tool.as_str()) {
            ("", "") => format!("response {}", e.jsonrpc_id),
            ("", tool) => format!("response {} ({tool})", e.jsonrpc_id),
            (method, "") => method.to_owned(),
            (method, tool) => format!("{method} {tool}"),
        };
        let mut verdict = e.verdict.clone();
        if !e.reasons.is_empty() {
            verdict = format!("{verdict} [{}]", e.reasons.join(", "));
        }
        println!(
            "+{offset:>8.3}s  #{:<6} {arrow}  {what}  {verdict}",
            record.seq
        );
        println!("             {}", e.payload_json);
    }
    Ok(ExitCode::SUCCESS)
}
