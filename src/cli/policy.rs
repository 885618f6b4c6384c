//! `airlock policy test|eval`: run a bundle's Rego tests, or decide one input.

use airlock_policy::{testing, Bundle, CompiledPolicy, PolicyError};
use anyhow::Context;
use clap::Subcommand;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `airlock policy` subcommands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Run the Rego unit tests of a policy directory.
    ///
    /// Every rule whose name starts with `test_` (in any package, usually in
    /// `*_test.rego` files) is evaluated; it passes iff it is `true`. Mock the input
    /// and data with `with input as {...}` and `with data.x as ...`, as in `opa test`.
    /// Prints one line per failing test (every test with -v), then `N passed, N failed`.
    /// Exits 0 iff at least one test ran and none failed, 1 on failures, 2 when a
    /// module does not compile (printed as file:line).
    #[command(after_help = "Examples:\n  \
        airlock policy test                 # the default bundle in ./policies\n  \
        airlock policy test my-policies/ -v # list every test with its time")]
    Test {
        /// The policy directory (Rego files, data.json).
        #[arg(default_value = "policies")]
        dir: PathBuf,
        /// Print every test, not only failures.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Decide one input document with a policy directory and print the decision.
    ///
    /// The input is the document the proxy gives the policy for one message
    /// (`identity`, `server`, `direction`, `message`, `tool`, ...; see
    /// docs/ARCHITECTURE.md). Prints the bundle revision and the decision as JSON.
    /// Exits 0 whatever the verdict, 2 when the bundle does not compile.
    #[command(after_help = "Examples:\n  \
        airlock policy eval --input call.json             # with ./policies\n  \
        airlock policy eval --input - my-policies/ < call.json\n\n\
        An input document (call.json):\n  \
        {\"identity\": {\"subject\": \"ci-bot\", \"groups\": [\"automation\"]},\n   \
        \"server\": {\"name\": \"warehouse\", \"labels\": {\"env\": \"prod\"}},\n   \
        \"direction\": \"client_to_server\",\n   \
        \"message\": {\"method\": \"tools/call\"},\n   \
        \"tool\": {\"name\": \"execute\", \"arguments\": {\"sql\": \"DROP TABLE users\"}}}")]
    Eval {
        /// The input JSON file, or `-` for standard input.
        #[arg(long, short)]
        input: String,
        /// The policy directory (Rego files, data.json).
        #[arg(default_value = "policies")]
        dir: PathBuf,
    },
}

/// Runs a policy subcommand.
pub fn run(cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PolicyCommand::Test { dir, verbose } => test(&dir, verbose),
        PolicyCommand::Eval { input, dir } => eval(&input, &dir),
    }
}

fn test(dir: &Path, verbose: bool) -> anyhow::Result<ExitCode> {
    let report = match Bundle::from_dir(dir).and_then(|b| testing::run_tests(&b)) {
        Ok(report) => report,
        Err(err) => return Ok(bundle_failure(dir, &err)),
    };
    for result in &report.results {
        let time = result.duration.as_secs_f64() * 1000.0;
        if !result.passed {
            let why = result.error.as_deref().unwrap_or("failed");
            println!(
                "FAIL {} ({}:{}): {why}",
                result.name, result.file, result.line
            );
        } else if verbose {
            println!(
                "PASS {} ({}:{}) {time:.2}ms",
                result.name, result.file, result.line
            );
        }
    }
    if report.results.is_empty() {
        eprintln!(
            "no test ran: {} has no `test_` rule; add tests in *_test.rego files",
            dir.display()
        );
    }
    println!("{} passed, {} failed", report.passed(), report.failed());
    let ok = report.failed() == 0 && !report.results.is_empty();
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn eval(input: &str, dir: &Path) -> anyhow::Result<ExitCode> {
    let text = if input == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the input from standard input")?;
        text
    } else {
        std::fs::read_to_string(input)
            .with_context(|| format!("cannot read the input file {input}"))?
    };
    let doc: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("the input {input} is not valid JSON; fix it and retry"))?;
    let policy = match Bundle::from_dir(dir).and_then(|b| CompiledPolicy::compile(&b)) {
        Ok(policy) => policy,
        Err(err) => return Ok(bundle_failure(dir, &err)),
    };
    let decision = policy.decide_value(&doc);
    let out = serde_json::json!({"revision": policy.revision(), "decision": decision});
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}

/// A bundle that does not load or compile: print where (file:line) and exit 2.
fn bundle_failure(dir: &Path, err: &PolicyError) -> ExitCode {
    match err {
        PolicyError::Compile {
            file,
            line,
            message,
        } => {
            eprintln!("error: {}:{line}: {message}", dir.join(file).display());
        }
        _ => eprintln!("error: {err}"),
    }
    ExitCode::from(2)
}
