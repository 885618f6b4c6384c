//! The JSON line each run prints, and the report over many of them: per workload
//! and concurrency, each target against the baseline measured in the same round
//! (calls/s ratio, added p50/p99), then the median over the rounds.

use crate::stats::median;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One measured run (one target, one workload, one concurrency, one round).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    /// What was called (`direct`, `nginx`, `airlock`...).
    pub target: String,
    /// What was sent (`everything-get-sum`...).
    pub workload: String,
    /// The round; ratios compare runs of the same round.
    pub round: u32,
    /// Workers.
    pub concurrency: usize,
    /// Successful calls in the window.
    pub calls: u64,
    /// Failed calls.
    pub errors: u64,
    /// Length of the window.
    pub seconds: f64,
    /// `calls / seconds`.
    pub calls_per_s: f64,
    /// Median latency.
    pub p50_ms: f64,
    /// 99th percentile latency.
    pub p99_ms: f64,
    /// CPU milliseconds per successful call, per watched group.
    pub cpu_ms_per_call: BTreeMap<String, f64>,
    /// Cores each watched group kept busy on average (CPU seconds / window).
    pub cpu_cores: BTreeMap<String, f64>,
}

/// Why a results file could not be read.
#[derive(Debug)]
pub struct BadLine {
    line: usize,
    detail: String,
}

impl std::fmt::Display for BadLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}: not a run of mcp-load ({}); pass the file `mcp-load run --json` wrote",
            self.line, self.detail
        )
    }
}

impl std::error::Error for BadLine {}

/// The runs of a JSON-lines file (blank lines skipped).
pub fn parse_runs(text: &str) -> Result<Vec<Run>, BadLine> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            serde_json::from_str(line).map_err(|e| BadLine {
                line: n + 1,
                detail: e.to_string(),
            })
        })
        .collect()
}

/// One row of the report: a target at one concurrency, over its rounds.
struct Row<'a> {
    target: &'a str,
    concurrency: usize,
    runs: Vec<&'a Run>,
    /// This is the baseline's own row.
    baseline: bool,
    /// Per round, against the baseline of that round.
    against_baseline: Vec<Versus>,
}

/// One run against the baseline's run of the same round.
struct Versus {
    /// Calls/s over the baseline's.
    ratio: f64,
    /// What the target adds to the median latency, ms.
    added_p50: f64,
    /// What the target adds to the 99th percentile, ms.
    added_p99: f64,
    /// The baseline's CPU per call (every watched process) over the target's: the
    /// calls/s ratio the cores would allow if nothing else ran on them.
    cpu_ratio: f64,
}

/// Markdown tables, one per workload; `baseline` names the target the others are
/// divided by.
pub fn render(runs: &[Run], baseline: &str) -> String {
    let mut out = String::new();
    for workload in in_order(runs.iter().map(|r| r.workload.as_str())) {
        let of_workload: Vec<&Run> = runs.iter().filter(|r| r.workload == workload).collect();
        let rounds = in_order(of_workload.iter().map(|r| r.round)).len();
        let _ = writeln!(
            out,
            "\n### {workload} ({rounds} round{}; ratio = calls/s over {baseline}'s in the same round, median [min-max]; CPU ratio = {baseline}'s CPU per call over the target's, all processes)\n",
            if rounds == 1 { "" } else { "s" }
        );
        out.push_str("| target | conc. | calls/s | ratio | p50 ms | added p50 | p99 ms | added p99 | CPU ratio | CPU ms per call |\n");
        out.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
        let mut concurrencies = in_order(of_workload.iter().map(|r| r.concurrency));
        concurrencies.sort_unstable();
        for concurrency in concurrencies {
            for target in in_order(of_workload.iter().map(|r| r.target.as_str())) {
                let row = row(&of_workload, target, concurrency, baseline);
                if !row.runs.is_empty() {
                    out.push_str(&render_row(&row));
                }
            }
        }
        out.push_str(&saturation_notes(&of_workload));
        out.push_str(&error_notes(&of_workload));
    }
    out
}

fn row<'a>(runs: &[&'a Run], target: &'a str, concurrency: usize, baseline: &str) -> Row<'a> {
    let mine: Vec<&Run> = runs
        .iter()
        .copied()
        .filter(|r| r.target == target && r.concurrency == concurrency)
        .collect();
    let against_baseline = mine
        .iter()
        .filter_map(|run| {
            let base = runs.iter().find(|b| {
                b.target == baseline && b.concurrency == concurrency && b.round == run.round
            })?;
            Some(Versus {
                ratio: run.calls_per_s / base.calls_per_s,
                added_p50: run.p50_ms - base.p50_ms,
                added_p99: run.p99_ms - base.p99_ms,
                cpu_ratio: total_cpu(base) / total_cpu(run),
            })
        })
        .collect();
    Row {
        target,
        baseline: target == baseline,
        concurrency,
        runs: mine,
        against_baseline,
    }
}

fn render_row(row: &Row<'_>) -> String {
    let of = |f: fn(&Run) -> f64| median(&row.runs.iter().map(|r| f(r)).collect::<Vec<_>>());
    let ratio = |pick: fn(&Versus) -> f64| {
        let ratios: Vec<f64> = row.against_baseline.iter().map(pick).collect();
        match (median(&ratios), min_max(&ratios)) {
            (Some(_), _) if row.baseline => "1".to_owned(),
            (Some(m), Some((lo, hi))) if ratios.len() > 1 => {
                format!("{m:.2} [{lo:.2}-{hi:.2}]")
            }
            (Some(m), _) => format!("{m:.2}"),
            _ => "-".to_owned(),
        }
    };
    let added = |pick: fn(&Versus) -> f64| match median(
        &row.against_baseline.iter().map(pick).collect::<Vec<_>>(),
    ) {
        Some(v) if !row.baseline => format!("{v:+.3}"),
        _ => "-".to_owned(),
    };
    format!(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
        row.target,
        row.concurrency,
        of(|r| r.calls_per_s).map_or("-".to_owned(), |v| format!("{v:.0}")),
        ratio(|v| v.ratio),
        of(|r| r.p50_ms).map_or("-".to_owned(), |v| format!("{v:.3}")),
        added(|v| v.added_p50),
        of(|r| r.p99_ms).map_or("-".to_owned(), |v| format!("{v:.3}")),
        added(|v| v.added_p99),
        ratio(|v| v.cpu_ratio),
        cpu_cell(&row.runs),
    )
}

/// CPU ms per call of every watched process (load client included) added up.
fn total_cpu(run: &Run) -> f64 {
    run.cpu_ms_per_call.values().sum()
}

/// `proxy 0.291, upstream 0.120`: the median over rounds of each group.
fn cpu_cell(runs: &[&Run]) -> String {
    let labels = in_order(
        runs.iter()
            .flat_map(|r| r.cpu_ms_per_call.keys().map(String::as_str)),
    );
    let cells: Vec<String> = labels
        .into_iter()
        .filter_map(|label| {
            let values: Vec<f64> = runs
                .iter()
                .filter_map(|r| r.cpu_ms_per_call.get(label).copied())
                .collect();
            median(&values).map(|v| format!("{label} {v:.3}"))
        })
        .collect();
    if cells.is_empty() {
        "-".to_owned()
    } else {
        cells.join(", ")
    }
}

/// Warns when the load client itself kept a core busy: the figures then measure it.
fn saturation_notes(runs: &[&Run]) -> String {
    let mut notes = String::new();
    for run in runs {
        if let Some(cores) = run.cpu_cores.get("client").filter(|c| **c > 0.9) {
            let _ = writeln!(
                notes,
                "\nnote: the load client used {cores:.2} cores in round {} of {} at concurrency {}: that run may be client-bound",
                run.round, run.target, run.concurrency
            );
        }
    }
    notes
}

/// Failed calls are not in the figures, but they must not go unnoticed.
fn error_notes(runs: &[&Run]) -> String {
    let mut notes = String::new();
    for run in runs.iter().filter(|r| r.errors > 0) {
        let _ = writeln!(
            notes,
            "\nnote: {} call{} failed in round {} of {} at concurrency {} (the bench output shows why)",
            run.errors,
            if run.errors == 1 { "" } else { "s" },
            run.round,
            run.target,
            run.concurrency
        );
    }
    notes
}

fn min_max(values: &[f64]) -> Option<(f64, f64)> {
    let lo = values.iter().copied().reduce(f64::min)?;
    let hi = values.iter().copied().reduce(f64::max)?;
    Some((lo, hi))
}

/// Distinct values in order of first appearance.
fn in_order<T: PartialEq>(values: impl Iterator<Item = T>) -> Vec<T> {
    let mut seen = Vec::new();
    for value in values {
        if !seen.contains(&value) {
            seen.push(value);
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(target: &str, round: u32, calls_per_s: f64, p50_ms: f64) -> Run {
        Run {
            target: target.to_owned(),
            workload: "w".to_owned(),
            round,
            concurrency: 1,
            calls: 100,
            errors: 0,
            seconds: 1.0,
            calls_per_s,
            p50_ms,
            p99_ms: p50_ms * 2.0,
            cpu_ms_per_call: if target == "direct" {
                BTreeMap::from([("upstream".to_owned(), 0.5)])
            } else {
                BTreeMap::from([("proxy".to_owned(), 0.25), ("upstream".to_owned(), 0.5)])
            },
            cpu_cores: BTreeMap::new(),
        }
    }

    #[test]
    fn ratios_compare_runs_of_the_same_round() {
        // Round 2 is twice as fast for both: the ratio stays 0.5, the raw medians do not.
        let runs = vec![
            run("direct", 1, 1000.0, 1.0),
            run("proxy", 1, 500.0, 2.0),
            run("direct", 2, 2000.0, 0.5),
            run("proxy", 2, 1000.0, 1.0),
            run("direct", 3, 1000.0, 1.0),
            run("proxy", 3, 500.0, 2.0),
        ];
        let text = render(&runs, "direct");
        assert!(
            text.contains("| proxy | 1 | 500 | 0.50 [0.50-0.50] | 2.000 | +1.000 |"),
            "{text}"
        );
        assert!(
            text.contains("| direct | 1 | 1000 | 1 | 1.000 | - |"),
            "{text}"
        );
        // CPU ratio: 0.5 ms of upstream directly, 0.75 ms of proxy and upstream through it.
        assert!(
            text.contains("| 0.67 [0.67-0.67] | proxy 0.250, upstream 0.500 |"),
            "{text}"
        );
    }

    #[test]
    fn lines_round_trip() {
        let line = serde_json::to_string(&run("direct", 1, 10.0, 1.0)).unwrap();
        let runs = parse_runs(&format!("{line}\n\n{line}\n")).unwrap();
        assert_eq!(runs.len(), 2);
        let err = parse_runs("{\"target\": 1}\n").unwrap_err();
        assert!(err.to_string().starts_with("line 1:"), "{err}");
    }
}
