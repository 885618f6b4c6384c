//! `airlock policy test`: the Rego tests, as lines for people or JSON for CI.

use super::{bundle_failure, Engines};
use crate::cli::client::Output;
use airlock_policy::testing::{self, Outcome, TestOptions, TestReport, TestResult};
use airlock_policy::Bundle;
use anyhow::Context as _;
use std::path::Path;
use std::process::ExitCode;

/// The flags of `policy test`.
pub struct Args {
    pub verbose: bool,
    pub run: Option<String>,
    pub coverage: bool,
    pub engine: Engines,
}

/// Runs the tests of `dir` and prints the report.
pub fn run(dir: &Path, args: &Args, output: Output) -> anyhow::Result<ExitCode> {
    let run = args
        .run
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .context("--run is not a valid regular expression")?;
    let options = TestOptions {
        run,
        compare_engines: args.engine == Engines::Both,
        coverage: args.coverage,
    };
    let report = match Bundle::from_dir(dir).and_then(|b| testing::run_tests_with(&b, &options)) {
        Ok(report) => report,
        Err(err) => return Ok(bundle_failure(dir, &err)),
    };
    if output == Output::Json {
        let doc = serde_json::json!({
            "passed": report.passed(),
            "failed": report.failed(),
            "skipped": report.skipped(),
            "report": report,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print_report(dir, &report, args.verbose);
    }
    let ok = report.failed() == 0 && report.passed() > 0;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_report(dir: &Path, report: &TestReport, verbose: bool) {
    for result in &report.results {
        match result.outcome {
            Outcome::Failed => print_failure(result),
            Outcome::Skipped => println!("SKIP {} ({}:{})", result.name, result.file, result.line),
            Outcome::Passed if verbose => {
                let time = result.duration.as_secs_f64() * 1000.0;
                println!(
                    "PASS {} ({}:{}) {time:.2}ms",
                    result.name, result.file, result.line
                );
                print_prints(result);
            }
            Outcome::Passed => {}
        }
    }
    if report.results.is_empty() {
        eprintln!(
            "no test ran: {} has no `test_` rule (or --run matched none); add tests in *_test.rego files",
            dir.display()
        );
    }
    let engines = &report.engines;
    match &engines.interpreter_only {
        None => println!(
            "engines: {} decisions replayed on the RVM, {} disagreement(s)",
            engines.decisions, engines.disagreements
        ),
        Some(why) => println!("engines: interpreter only ({why})"),
    }
    if let Some(coverage) = &report.coverage {
        println!("coverage:");
        for file in coverage {
            let missing = if file.not_covered.is_empty() {
                String::new()
            } else {
                format!("  not covered: {}", file.uncovered_ranges())
            };
            println!("  {:<32} {:>5.1}%{missing}", file.path, file.percent());
        }
    }
    println!(
        "{} passed, {} failed, {} skipped",
        report.passed(),
        report.failed(),
        report.skipped()
    );
    if engines.disagreements > 0 {
        println!(
            "hint: the RVM decides these inputs differently from the interpreter (the reference). \
             Proxies will run this bundle on the interpreter (slower) unless the rules are rewritten \
             (policies/README.md, \"Writing rules both engines agree on\"); \
             `--engine interpreter` accepts that."
        );
    }
}

fn print_failure(result: &TestResult) {
    let why = result.error.as_deref().unwrap_or("failed");
    println!(
        "FAIL {} ({}:{}): {why}",
        result.name, result.file, result.line
    );
    if let Some(detail) = &result.failure {
        println!("  failed: {}  (line {})", detail.statement, detail.line);
        for (name, value) in &detail.values {
            println!("    {name} = {value}");
        }
    }
    if let Some(d) = &result.disagreement {
        println!("  engines disagree on input: {}", d.input);
        println!("    interpreter (reference): {}", d.interpreter);
        println!("    rvm:                     {}", d.rvm);
    }
    print_prints(result);
}

fn print_prints(result: &TestResult) {
    for line in &result.prints {
        println!("  print: {line}");
    }
}
