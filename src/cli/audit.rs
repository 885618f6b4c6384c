//! `airlock audit tail | query | export | verify | prove`: reading the control
//! plane's audit log (roles auditor or admin). `verify --checkpoint` and `prove`
//! check their proofs here, against a signed checkpoint, not on the control plane's
//! word (`proofs.rs`).

use super::client::{print_table, ControlPlaneClient, GlobalArgs, Output};
use airlock_control_plane::api;
use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// `airlock audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// The last records (and, with -f, every new one as it is stored).
    Tail {
        /// How many of the latest records to show first.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: u32,
        /// Keep printing records as they arrive.
        #[arg(short = 'f', long)]
        follow: bool,
    },
    /// Records matching filters, oldest first.
    Query(Filters),
    /// Every matching record, one JSON object per line.
    Export {
        /// The export format.
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
        #[command(flatten)]
        filters: Filters,
    },
    /// Recompute the hash chain and the Merkle tree and check every signed
    /// checkpoint; exits 1 and names the first broken sequence number on any
    /// tampering. With --checkpoint, also prove (here, offline) that the log
    /// extends a checkpoint kept elsewhere: a rolled-back or forked log fails.
    Verify {
        /// A checkpoint saved elsewhere (a proxy's `audit_checkpoint_file`, the
        /// witness directory's `checkpoint`, a webhook's copy).
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
    },
    /// Print an inclusion proof of one event with the signed checkpoint it leads
    /// to, checked here; anyone can check it again offline (docs/audit.md).
    Prove {
        /// The event's id (`event_id` in `airlock audit query --output json`).
        event_id: String,
    },
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// One JSON object per line.
    Jsonl,
}

/// Filters shared by `query` and `export`.
#[derive(Debug, Clone, Args)]
pub struct Filters {
    /// Records seen at or after: `15m`/`2h`/`7d` ago, Unix ms, or `YYYY-MM-DDTHH:MM:SSZ`.
    #[arg(long)]
    pub since: Option<String>,
    /// Records seen before (same forms as --since).
    #[arg(long)]
    pub until: Option<String>,
    /// The caller's subject.
    #[arg(long)]
    pub identity: Option<String>,
    /// The upstream MCP server.
    #[arg(long)]
    pub server: Option<String>,
    /// The tool.
    #[arg(long)]
    pub tool: Option<String>,
    /// The verdict: allow, deny or require_approval.
    #[arg(long)]
    pub verdict: Option<String>,
    /// The MCP session id.
    #[arg(long)]
    pub session: Option<String>,
}

impl Filters {
    /// The query these filters make.
    pub fn request(&self) -> anyhow::Result<api::AuditServiceQueryRequest> {
        Ok(api::AuditServiceQueryRequest {
            since_unix_ms: self
                .since
                .as_deref()
                .map(parse_time)
                .transpose()?
                .unwrap_or(0),
            until_unix_ms: self
                .until
                .as_deref()
                .map(parse_time)
                .transpose()?
                .unwrap_or(0),
            identity: self.identity.clone().unwrap_or_default(),
            server: self.server.clone().unwrap_or_default(),
            tool: self.tool.clone().unwrap_or_default(),
            verdict: self.verdict.clone().unwrap_or_default(),
            session_id: self.session.clone().unwrap_or_default(),
            ..Default::default()
        })
    }
}

/// Runs an `airlock audit` subcommand.
pub async fn run(cmd: AuditCommand, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let client = ControlPlaneClient::connect(global).await?;
    match cmd {
        AuditCommand::Tail { lines, follow } => {
            let query = api::AuditServiceQueryRequest {
                last: lines,
                follow,
                ..Default::default()
            };
            print_records(&client, query, global.output, follow).await
        }
        AuditCommand::Query(filters) => {
            print_records(&client, filters.request()?, global.output, false).await
        }
        AuditCommand::Export { filters, .. } => {
            print_records(&client, filters.request()?, Output::Json, true).await
        }
        AuditCommand::Verify { checkpoint } => {
            super::proofs::verify(&client, global.output, checkpoint.as_deref()).await
        }
        AuditCommand::Prove { event_id } => {
            super::proofs::prove(&client, global.output, &event_id).await
        }
    }
}

/// Every record of a query, in order.
pub async fn fetch(
    client: &ControlPlaneClient,
    query: api::AuditServiceQueryRequest,
) -> anyhow::Result<Vec<api::AuditRecord>> {
    let mut stream = client
        .audit()
        .query(client.request(query)?)
        .await
        .map_err(|s| client.explain(s))?
        .into_inner();
    let mut out = Vec::new();
    while let Some(item) = stream.message().await.map_err(|s| client.explain(s))? {
        out.extend(item.record);
    }
    Ok(out)
}

/// Prints records as they stream: JSON lines, or table rows (streamed rows when
/// `streaming`, else one aligned table).
async fn print_records(
    client: &ControlPlaneClient,
    query: api::AuditServiceQueryRequest,
    output: Output,
    streaming: bool,
) -> anyhow::Result<ExitCode> {
    let mut stream = client
        .audit()
        .query(client.request(query)?)
        .await
        .map_err(|s| client.explain(s))?
        .into_inner();
    let mut rows = Vec::new();
    while let Some(item) = stream.message().await.map_err(|s| client.explain(s))? {
        let Some(record) = item.record else { continue };
        match output {
            Output::Json => println!("{}", record_json(&record)),
            Output::Table if streaming => println!("{}", row(&record).join("  ")),
            Output::Table => rows.push(row(&record)),
        }
    }
    if output == Output::Table && !streaming {
        print_table(&HEADER, &rows);
    }
    Ok(ExitCode::SUCCESS)
}

const HEADER: [&str; 9] = [
    "SEQ", "TIME", "IDENTITY", "SERVER", "DIR", "METHOD", "TOOL", "VERDICT", "REASONS",
];

fn row(record: &api::AuditRecord) -> Vec<String> {
    let e = record.event.clone().unwrap_or_default();
    let dir = if e.direction == "client_to_server" {
        "→"
    } else {
        "←"
    };
    let method = if e.method.is_empty() {
        "(response)".to_owned()
    } else {
        e.method
    };
    vec![
        record.seq.to_string(),
        format_time(e.unix_ms),
        e.identity,
        e.server,
        dir.to_owned(),
        method,
        dash(&e.tool),
        e.verdict,
        dash(&e.reasons.join(",")),
    ]
}

fn dash(text: &str) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text.to_owned()
    }
}

/// A record as one JSON object (the payload parsed back into JSON).
pub fn record_json(record: &api::AuditRecord) -> serde_json::Value {
    let e = record.event.clone().unwrap_or_default();
    let payload = serde_json::from_str(&e.payload_json)
        .unwrap_or(serde_json::Value::String(e.payload_json.clone()));
    serde_json::json!({
        "seq": record.seq, "stored_unix_ms": record.stored_unix_ms,
        "hash": hex::encode(&record.hash), "prev_hash": hex::encode(&record.prev_hash),
        "event_id": e.event_id, "node_id": e.node_id, "unix_ms": e.unix_ms,
        "session_id": e.session_id, "identity": e.identity, "server": e.server,
        "direction": e.direction, "method": e.method, "tool": e.tool, "jsonrpc_id": e.jsonrpc_id,
        "verdict": e.verdict, "reasons": e.reasons, "revision": e.revision,
        "approval_id": e.approval_id, "decide_us": e.decide_us, "upstream_ms": e.upstream_ms,
        "payload": payload,
    })
}

/// `15m`, `2h`, `7d`, `30s` ago; Unix ms; or `YYYY-MM-DDTHH:MM:SSZ`.
pub fn parse_time(text: &str) -> anyhow::Result<u64> {
    let now = now_ms();
    let hint = || {
        format!("cannot read the time {text:?}: use 15m, 2h, 7d (ago), Unix milliseconds, or 2026-01-31T12:00:00Z")
    };
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(ms);
    }
    if let Some(unit) = text.chars().last().filter(|c| "smhd".contains(*c)) {
        let n: u64 = text[..text.len() - 1].parse().with_context(hint)?;
        let secs = match unit {
            's' => n,
            'm' => n * 60,
            'h' => n * 3600,
            _ => n * 86_400,
        };
        return Ok(now.saturating_sub(secs * 1000));
    }
    let t = text.trim_end_matches('Z');
    let (date, time) = t.split_once('T').with_context(hint)?;
    let d: Vec<i64> = date
        .split('-')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .with_context(hint)?;
    let h: Vec<i64> = time
        .split(':')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .with_context(hint)?;
    let ([y, mo, da], [hh, mi, ss]) = (d.as_slice(), h.as_slice()) else {
        anyhow::bail!(hint());
    };
    let days = days_from_civil(*y, *mo, *da);
    Ok(u64::try_from(((days * 24 + hh) * 60 + mi) * 60 + ss).with_context(hint)? * 1000)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` of a Unix-ms time.
pub fn format_time(unix_ms: u64) -> String {
    let secs = (unix_ms / 1000) as i64;
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let s = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        (s / 60) % 60,
        s % 60,
        unix_ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_and_relative_times_are_in_the_past() {
        let ms = parse_time("2026-11-25T07:00:00Z").unwrap();
        assert_eq!(format_time(ms), "2026-11-25T07:00:00.000Z");
        assert_eq!(parse_time("1700000000000").unwrap(), 1_700_000_000_000);
        assert!(parse_time("15m").unwrap() < now_ms());
        assert!(parse_time("yesterday").is_err());
    }
}
