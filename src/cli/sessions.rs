//! `airlock sessions list | replay ID`: the audit log seen as MCP sessions. The
//! grouping and the transcript are `airlock_control_plane::audit::sessions`, the
//! same code the reviewer page's session view uses.

use super::audit::{fetch, format_time, record_json};
use super::client::{print_table, ControlPlaneClient, GlobalArgs, Output};
use airlock_control_plane::api;
use airlock_control_plane::audit::sessions::{transcript, Bounds, SessionIndex};
use clap::Subcommand;
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
    let mut index = SessionIndex::new(usize::MAX);
    for record in fetch(client, query).await? {
        if let Some(e) = &record.event {
            index.add(e);
        }
    }
    let ordered = index.oldest_first();
    if output == Output::Json {
        let rows: Vec<_> = ordered
            .iter()
            .map(|s| {
                serde_json::json!({
                    "session_id": s.session_id, "identity": s.identity, "server": s.server,
                    "messages": s.messages, "refused": s.refused(), "verdicts": s.verdicts,
                    "first_unix_ms": s.first_unix_ms, "last_unix_ms": s.last_unix_ms,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = ordered
        .iter()
        .map(|s| {
            vec![
                s.session_id.clone(),
                s.identity.clone(),
                s.server.clone(),
                s.messages.to_string(),
                s.refused().to_string(),
                format_time(s.first_unix_ms),
                format!("{:.1}s", (s.last_unix_ms - s.first_unix_ms) as f64 / 1000.0),
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
    let t = transcript(id, &records, Bounds::UNBOUNDED);
    println!(
        "session {id}\nidentity {}  server {}  started {}\n",
        t.identity,
        t.server,
        format_time(t.first_unix_ms)
    );
    for e in &t.events {
        let offset = e.offset_ms as f64 / 1000.0;
        let arrow = if e.direction == "client_to_server" {
            "agent → server"
        } else {
            "server → agent"
        };
        let mut verdict = e.verdict.clone();
        if !e.reasons.is_empty() {
            verdict = format!("{verdict} [{}]", e.reasons.join(", "));
        }
        println!(
            "+{offset:>8.3}s  #{:<6} {arrow}  {}  {verdict}",
            e.seq,
            e.what()
        );
        println!("             {}", e.payload_json);
    }
    Ok(ExitCode::SUCCESS)
}
