//! `airlock approvals`: the reviewers' CLI. List (and watch) held calls, show one
//! with its payload, approve or deny with a reason.

use super::client::{ago, print_table, ControlPlaneClient, GlobalArgs, Output};
use airlock_control_plane::api;
use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::process::ExitCode;

/// `airlock approvals` subcommands.
#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// List approvals, newest first (pending only unless --all).
    List(ListArgs),
    /// Show one approval: payload, identity, server, reasons, policy revision, reviews.
    Show {
        /// The approval id (e.g. apr_…).
        id: String,
    },
    /// Approve a held call (you must be in one of its reviewer groups, and not its requester).
    Approve {
        /// The approval id.
        id: String,
        /// Why (kept with the review).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Deny a held call; the agent sees your reason.
    Deny {
        /// The approval id.
        id: String,
        /// Why (required).
        #[arg(long)]
        reason: String,
    },
}

/// Arguments of `airlock approvals list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Include decided, expired and cancelled approvals.
    #[arg(long)]
    all: bool,
    /// Keep printing approvals as they arrive or change (Ctrl-C to stop).
    #[arg(long)]
    watch: bool,
}

/// Runs an `airlock approvals` subcommand.
pub async fn run(cmd: ApprovalsCommand, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let client = ControlPlaneClient::connect(global).await?;
    match cmd {
        ApprovalsCommand::List(args) if args.watch => watch(&client, global).await,
        ApprovalsCommand::List(args) => list(&client, global, args.all).await,
        ApprovalsCommand::Show { id } => {
            let request = client.request(api::ApprovalServiceGetRequest { approval_id: id })?;
            let response = client.approvals().get(request).await;
            let approval = response
                .map_err(|s| client.explain(s))?
                .into_inner()
                .approval
                .context("the control plane answered no approval")?;
            show(&approval, global.output);
            Ok(ExitCode::SUCCESS)
        }
        ApprovalsCommand::Approve { id, reason } => {
            decide(&client, global, id, api::ApprovalVerdict::Approve, reason).await
        }
        ApprovalsCommand::Deny { id, reason } => {
            decide(&client, global, id, api::ApprovalVerdict::Deny, reason).await
        }
    }
}

async fn list(
    client: &ControlPlaneClient,
    global: &GlobalArgs,
    all: bool,
) -> anyhow::Result<ExitCode> {
    let request = client.request(api::ApprovalServiceListRequest {
        pending_only: !all,
        limit: 0,
    })?;
    let approvals = client
        .approvals()
        .list(request)
        .await
        .map_err(|s| client.explain(s))?
        .into_inner()
        .approvals;
    if global.output == Output::Json {
        let rows: Vec<Value> = approvals.iter().map(to_json).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    if approvals.is_empty() {
        println!("no {}approvals", if all { "" } else { "pending " });
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = approvals.iter().map(row).collect();
    print_table(&HEADER, &rows);
    Ok(ExitCode::SUCCESS)
}

const HEADER: [&str; 8] = [
    "ID",
    "STATE",
    "SUBJECT",
    "SERVER",
    "CALL",
    "REASONS",
    "APPROVALS",
    "REQUESTED",
];

fn row(a: &api::Approval) -> Vec<String> {
    let approvals = a
        .reviews
        .iter()
        .filter(|r| r.verdict == api::ApprovalVerdict::Approve as i32)
        .count();
    vec![
        a.approval_id.clone(),
        state_name(a.state).to_owned(),
        a.subject.clone(),
        a.server.clone(),
        format!("{} {}", a.method, a.tool).trim().to_owned(),
        a.reasons.join(","),
        format!("{approvals}/{}", a.min_approvals),
        ago(a.created_unix_ms),
    ]
}

async fn watch(client: &ControlPlaneClient, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let request = client.request(api::ApprovalServiceWatchRequest {
        approval_id: String::new(),
    })?;
    let mut stream = client
        .approvals()
        .watch(request)
        .await
        .map_err(|s| client.explain(s))?
        .into_inner();
    if global.output == Output::Table {
        println!("{}", HEADER.join("  "));
    }
    while let Some(message) = stream.message().await.map_err(|s| client.explain(s))? {
        let Some(a) = message.approval else { continue };
        match global.output {
            Output::Json => println!("{}", to_json(&a)),
            Output::Table => println!("{}", row(&a).join("  ")),
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn decide(
    client: &ControlPlaneClient,
    global: &GlobalArgs,
    id: String,
    verdict: api::ApprovalVerdict,
    reason: String,
) -> anyhow::Result<ExitCode> {
    let request = client.request(api::ApprovalServiceDecideRequest {
        approval_id: id,
        verdict: verdict as i32,
        reason,
    })?;
    let approval = client
        .approvals()
        .decide(request)
        .await
        .map_err(|s| client.explain(s))?
        .into_inner()
        .approval
        .context("the control plane answered no approval")?;
    match global.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&to_json(&approval))?),
        Output::Table => println!(
            "{} is now {}",
            approval.approval_id,
            state_name(approval.state)
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn show(a: &api::Approval, output: Output) {
    let value = to_json(a);
    if output == Output::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
        return;
    }
    println!("approval   {}  ({})", a.approval_id, state_name(a.state));
    // What will run, as the proxy parsed it from the unmasked call: first.
    let facts = airlock_control_plane::approvals::summary::lines(&a.summary_json);
    if !facts.is_empty() {
        println!("facts      (computed by the proxy from the unmasked call)");
        for line in &facts {
            println!("  {line}");
        }
    }
    println!(
        "identity   {} (groups: {})",
        a.subject,
        a.subject_groups.join(", ")
    );
    println!("server     {}  via node {}", a.server, a.node_id);
    println!("call       {} {}", a.method, a.tool);
    println!("reasons    {}", a.reasons.join(", "));
    if !a.message.is_empty() {
        println!("message    {}", a.message);
    }
    println!(
        "policy     revision {}",
        if a.policy_revision.is_empty() {
            "-"
        } else {
            &a.policy_revision
        }
    );
    println!(
        "reviewers  {} ({} approval(s) needed)",
        if a.reviewer_groups.is_empty() {
            "any reviewer".to_owned()
        } else {
            a.reviewer_groups.join(", ")
        },
        a.min_approvals
    );
    println!(
        "requested  {}; expires at unix ms {}",
        ago(a.created_unix_ms),
        a.expires_unix_ms
    );
    println!("sha256     {}", a.payload_sha256);
    let payload = serde_json::from_str::<Value>(&a.payload_json)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| a.payload_json.clone());
    if a.payload_masked {
        println!("payload    (sensitive values masked by the proxy; the grant binds the original)");
    }
    println!("payload\n{payload}");
    for r in &a.reviews {
        println!(
            "review     {} {} {} {}",
            ago(r.decided_unix_ms),
            r.reviewer,
            verdict_name(r.verdict),
            r.reason
        );
    }
}

fn state_name(state: i32) -> &'static str {
    match api::ApprovalState::try_from(state) {
        Ok(api::ApprovalState::Pending) => "pending",
        Ok(api::ApprovalState::Approved) => "approved",
        Ok(api::ApprovalState::Denied) => "denied",
        Ok(api::ApprovalState::Expired) => "expired",
        Ok(api::ApprovalState::Cancelled) => "cancelled",
        Ok(api::ApprovalState::Consumed) => "consumed",
        _ => "unknown",
    }
}

fn verdict_name(verdict: i32) -> &'static str {
    match api::ApprovalVerdict::try_from(verdict) {
        Ok(api::ApprovalVerdict::Approve) => "approve",
        Ok(api::ApprovalVerdict::Deny) => "deny",
        _ => "unknown",
    }
}

fn to_json(a: &api::Approval) -> Value {
    let reviews: Vec<Value> = a
        .reviews
        .iter()
        .map(|r| json!({"reviewer": r.reviewer, "verdict": verdict_name(r.verdict), "reason": r.reason, "decided_unix_ms": r.decided_unix_ms}))
        .collect();
    json!({
        "approval_id": a.approval_id, "state": state_name(a.state), "subject": a.subject,
        "subject_groups": a.subject_groups, "server": a.server, "node_id": a.node_id,
        "method": a.method, "tool": a.tool, "payload": serde_json::from_str::<Value>(&a.payload_json).unwrap_or(Value::Null),
        "payload_sha256": a.payload_sha256, "payload_masked": a.payload_masked, "reasons": a.reasons, "message": a.message,
        "policy_revision": a.policy_revision, "reviewer_groups": a.reviewer_groups,
        "min_approvals": a.min_approvals, "created_unix_ms": a.created_unix_ms,
        "expires_unix_ms": a.expires_unix_ms, "reviews": reviews,
        "facts": serde_json::from_str::<Value>(&a.summary_json).unwrap_or(Value::Null),
    })
}
