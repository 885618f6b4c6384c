//! `airlock`: the one binary. It parses arguments and calls the crates; no logic lives here.

#![forbid(unsafe_code)]

mod cli;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Airlock: a policy-as-code gateway for the Model Context Protocol.
///
/// Agents talk MCP to `airlock proxy`; every JSON-RPC message is decided by Rego
/// policies (allow, deny, or hold for approval) before it reaches the MCP server.
/// Start with `airlock dev`, which runs everything locally and prints what to try.
#[derive(Debug, Parser)]
#[command(name = "airlock", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: cli::client::GlobalArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a local demo: a control plane, the demo MCP server and a proxy with the default policies.
    Dev(cli::dev::DevArgs),
    /// Run a data-plane node: the MCP proxy.
    Proxy(cli::proxy::ProxyArgs),
    /// Run the control plane (gRPC).
    ControlPlane(cli::control_plane::ControlPlaneArgs),
    /// Run the demo MCP server (an in-memory SQL database with fake customer data).
    DemoServer(cli::demo::DemoArgs),
    /// Test and evaluate Rego policies.
    #[command(subcommand)]
    Policy(cli::policy::PolicyCommand),
    /// Build, sign, push, list and activate policy bundles.
    #[command(subcommand)]
    Bundle(cli::bundle::BundleCommand),
    /// The fleet of proxies, as the control plane sees it.
    #[command(subcommand)]
    Nodes(cli::nodes::NodesCommand),
    /// Read and verify the audit log: tail, query, export, verify.
    #[command(subcommand)]
    Audit(cli::audit::AuditCommand),
    /// MCP sessions from the audit log: list, replay.
    #[command(subcommand)]
    Sessions(cli::sessions::SessionsCommand),
    /// Review held calls: list, show, approve, deny.
    #[command(subcommand)]
    Approvals(cli::approvals::ApprovalsCommand),
    /// Pinned tool definitions per upstream: list (with diffs), pin, accept.
    #[command(subcommand)]
    Tools(cli::tools::ToolsCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Dev(args) => cli::runtime(cli::dev::run(args)),
        Command::Proxy(args) => cli::runtime(cli::proxy::run(args)),
        Command::ControlPlane(args) => cli::runtime(cli::control_plane::run(args)),
        Command::DemoServer(args) => cli::runtime(cli::demo::run(args)),
        Command::Policy(cmd) => cli::policy::run(cmd, &cli.global),
        Command::Bundle(cmd) => cli::runtime(cli::bundle::run(cmd, &cli.global)),
        Command::Nodes(cmd) => cli::runtime(cli::nodes::run(cmd, &cli.global)),
        Command::Audit(cmd) => cli::runtime(cli::audit::run(cmd, &cli.global)),
        Command::Sessions(cmd) => cli::runtime(cli::sessions::run(cmd, &cli.global)),
        Command::Approvals(cmd) => cli::runtime(cli::approvals::run(cmd, &cli.global)),
        Command::Tools(cmd) => cli::runtime(cli::tools::run(cmd, &cli.global)),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
