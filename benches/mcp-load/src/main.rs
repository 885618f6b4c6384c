//! `mcp-load`: the load client of `scripts/bench`. Drives N concurrent MCP clients
//! (Streamable HTTP, sessions on 2025-06-18 or the stateless 2026-07-28) against one
//! endpoint with `tools/call`, and reports calls/s, p50 and p99 latency, and the CPU
//! time per call of the processes named with `--cpu` (from `/proc/<pid>/stat`).
//! `mcp-load report` turns the JSON lines of many runs into tables of ratios against
//! the baseline of the same round. See docs/performance.md.

#![forbid(unsafe_code)]

mod cpu;
mod drive;
mod mcp;
mod report;
mod stats;

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand};
use cpu::Watched;
use drive::{Plan, Stop};
use http::{HeaderName, HeaderValue};
use mcp::{Mode, Workload};
use report::Run;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "mcp-load",
    version,
    about = "MCP Streamable HTTP load client (calls/s, p50/p99, CPU per call)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Drive one endpoint with N concurrent workers and print what the window saw.
    /// Exits 1 when a call failed (the figures are printed all the same), 2 when the
    /// run could not be made.
    Run(Box<RunArgs>),
    /// Read the JSON lines of `run --json` and print, per workload and concurrency,
    /// each target against the baseline of the same round (medians over rounds).
    Report(ReportArgs),
}

#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  mcp-load run --url http://127.0.0.1:7331/mcp/demo -H 'Authorization: Bearer KEY' \\\n    --mode stateless --tool query --arguments '{\"sql\":\"SELECT 1\"}' -c 16 --duration 3 \\\n    --cpu proxy=4242 --cpu upstream=4243"
)]
struct RunArgs {
    /// The MCP endpoint (http://).
    #[arg(long)]
    url: http::Uri,
    /// A header sent with every request, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// Sessions (initialize on 2025-06-18) or stateless (2026-07-28).
    #[arg(long, value_enum, default_value = "session")]
    mode: Mode,
    /// The tool each call runs.
    #[arg(long)]
    tool: String,
    /// The tool's arguments (a JSON object).
    #[arg(long, default_value = "{}")]
    arguments: String,
    /// Concurrent workers, each with its own connection and session.
    #[arg(short = 'c', long, default_value_t = 1)]
    concurrency: usize,
    /// Length of the measured window, seconds.
    #[arg(long, default_value_t = 3.0, conflicts_with = "calls")]
    duration: f64,
    /// Measure this many calls instead of a duration.
    #[arg(long)]
    calls: Option<u64>,
    /// Seconds of calls before the window opens.
    #[arg(long, default_value_t = 0.5)]
    warmup: f64,
    /// Threads of the load client (1: a single-threaded runtime, the least CPU).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Add up the CPU time of these processes, `LABEL=PID[,PID...]` (repeatable).
    #[arg(long = "cpu", value_name = "LABEL=PIDS")]
    watched: Vec<Watched>,
    /// Recorded in the output: what is called.
    #[arg(long, default_value = "target")]
    target: String,
    /// Recorded in the output: the name of the workload.
    #[arg(long, default_value = "workload")]
    workload: String,
    /// Recorded in the output: the round.
    #[arg(long, default_value_t = 1)]
    round: u32,
    /// Print one JSON line (for `mcp-load report`) instead of a sentence.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct ReportArgs {
    /// JSON-lines files written by `mcp-load run --json`.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The target the others are compared with.
    #[arg(long, default_value = "direct")]
    baseline: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(*args),
        Command::Report(args) => print_report(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("mcp-load: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    if args.concurrency == 0 || args.threads == 0 {
        bail!("--concurrency and --threads must be at least 1");
    }
    if !(args.duration > 0.0 && args.warmup >= 0.0) {
        bail!("--duration must be positive and --warmup not negative");
    }
    let arguments: serde_json::Value = serde_json::from_str(&args.arguments)
        .context("--arguments is not JSON: pass an object such as '{\"a\": 1}'")?;
    let headers = args
        .headers
        .iter()
        .map(|h| parse_header(h))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let workload = Workload::new(args.url.clone(), headers, args.mode, &args.tool, arguments)?;
    let plan = Plan {
        concurrency: args.concurrency,
        warmup: Duration::from_secs_f64(args.warmup),
        stop: match args.calls {
            Some(n) => Stop::Calls(n),
            None => Stop::After(Duration::from_secs_f64(args.duration)),
        },
    };
    let mut watched = args.watched.clone();
    watched.push(Watched {
        label: "client".to_owned(),
        pids: vec![std::process::id()],
    });
    let runtime = runtime(args.threads)?;
    let http = mcp::http_client(args.concurrency);
    let measured = runtime.block_on(drive::drive(http, Arc::new(workload), &plan, &watched))?;
    let record = to_run(&args, &watched, &measured);
    if args.json {
        println!("{}", serde_json::to_string(&record)?);
    } else {
        println!("{}", sentence(&record));
    }
    if measured.errors > 0 {
        eprintln!(
            "mcp-load: {} of the calls to {} failed; first failures:",
            measured.errors, args.url
        );
        for sample in &measured.error_samples {
            eprintln!("  {sample}");
        }
        return Ok(ExitCode::from(1));
    }
    if measured.calls == 0 {
        bail!("no call completed in the window: lengthen --duration or check the target");
    }
    Ok(ExitCode::SUCCESS)
}

/// One thread: a current-thread runtime, the cheapest for the load client.
fn runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .context("starting the tokio runtime")
}

fn parse_header(text: &str) -> anyhow::Result<(HeaderName, HeaderValue)> {
    let (name, value) = text
        .split_once(':')
        .with_context(|| format!("header {text:?}: expected `Name: value`"))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .with_context(|| format!("header {text:?}: bad name"))?;
    let value = HeaderValue::from_str(value.trim())
        .with_context(|| format!("header {text:?}: bad value"))?;
    Ok((name, value))
}

fn to_run(args: &RunArgs, watched: &[Watched], measured: &drive::Measured) -> Run {
    let seconds = measured.elapsed.as_secs_f64();
    let ms = |ns: u64| ns as f64 / 1e6;
    let mut cpu_ms_per_call = BTreeMap::new();
    let mut cpu_cores = BTreeMap::new();
    for (group, cpu_seconds) in watched.iter().zip(&measured.cpu_seconds) {
        if measured.calls > 0 {
            let per_call = cpu_seconds * 1e3 / measured.calls as f64;
            cpu_ms_per_call.insert(group.label.clone(), per_call);
        }
        cpu_cores.insert(group.label.clone(), cpu_seconds / seconds);
    }
    Run {
        target: args.target.clone(),
        workload: args.workload.clone(),
        round: args.round,
        concurrency: args.concurrency,
        calls: measured.calls,
        errors: measured.errors,
        seconds,
        calls_per_s: measured.calls as f64 / seconds,
        p50_ms: ms(stats::percentile(&measured.latencies_ns, 50.0)),
        p99_ms: ms(stats::percentile(&measured.latencies_ns, 99.0)),
        cpu_ms_per_call,
        cpu_cores,
    }
}

fn sentence(run: &Run) -> String {
    let cpu: Vec<String> = run
        .cpu_ms_per_call
        .iter()
        .map(|(label, ms)| format!("{label} {ms:.3} ms"))
        .collect();
    format!(
        "{} {} c={}: {} calls in {:.2} s, {:.0} calls/s, p50 {:.3} ms, p99 {:.3} ms; CPU per call: {}",
        run.target,
        run.workload,
        run.concurrency,
        run.calls,
        run.seconds,
        run.calls_per_s,
        run.p50_ms,
        run.p99_ms,
        cpu.join(", ")
    )
}

fn print_report(args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let mut runs = Vec::new();
    for file in &args.files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        runs.extend(
            report::parse_runs(&text).with_context(|| format!("reading {}", file.display()))?,
        );
    }
    if runs.is_empty() {
        bail!("no runs in {:?}", args.files);
    }
    print!("{}", report::render(&runs, &args.baseline));
    Ok(ExitCode::SUCCESS)
}
