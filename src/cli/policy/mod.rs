//! `airlock policy test|eval|input`: run a bundle's Rego tests, decide (and explain)
//! one input, print the input contract.

mod eval;
mod input;
mod test;

use super::client::GlobalArgs;
use airlock_policy::PolicyError;
use clap::{Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `airlock policy` subcommands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Run the Rego unit tests of a policy directory.
    ///
    /// Every rule whose name starts with `test_` (in any package, usually in
    /// `*_test.rego` files) is evaluated on the interpreter, the reference engine
    /// (it decides as OPA does); it passes iff it is `true`. Mock the input and data
    /// with `with input as {...}` and `with data.x as ...`, as in `opa test`.
    /// `todo_test_` rules are reported as skipped.
    ///
    /// Every decision a test makes is also replayed on the RVM, the faster engine
    /// proxies use for a bundle proven to agree with the interpreter; an input on
    /// which the two decide differently fails the test that decided it, naming the
    /// input and both results. (`--engine interpreter` skips the replay: such a bundle
    /// is served by the interpreter.)
    ///
    /// A failing test shows the statement that did not hold and the values involved.
    /// Exits 0 iff at least one test ran and none failed, 1 on failures, 2 when a
    /// module does not compile (printed as file:line).
    #[command(after_help = "Examples:\n  \
        airlock policy test                         # the default bundle in ./policies\n  \
        airlock policy test my-policies/ -v         # every test, its time and its print() output\n  \
        airlock policy test --run 'sql|egress'      # only tests whose name matches\n  \
        airlock policy test --coverage              # lines no test evaluated, per file\n  \
        airlock --output json policy test           # one JSON document for CI")]
    Test {
        /// The policy directory (Rego files, data.json).
        #[arg(default_value = "policies")]
        dir: PathBuf,
        /// Print every test (with its time and print() output), not only failures.
        #[arg(short, long)]
        verbose: bool,
        /// Run only the tests whose full name (`data.pkg.test_x`) matches this regular expression.
        #[arg(long, value_name = "REGEX")]
        run: Option<String>,
        /// Report line coverage of the policy files (test files left out).
        #[arg(long)]
        coverage: bool,
        /// `both` (default): replay every decision on the RVM too; `interpreter`: the
        /// reference engine only.
        #[arg(long, value_enum, default_value_t = Engines::Both)]
        engine: Engines,
    },
    /// Decide one input document with a policy directory and print the decision.
    ///
    /// The input is the document the proxy gives the policy for one message
    /// (`airlock policy input --schema` describes it; `--example tools/call` prints
    /// one). Prints the bundle revision, the engine that decided (and why) and the
    /// decision as JSON; `--explain` adds every rule definition that held for the
    /// input (each denial, hold and mask, with its file and line). Exits 0 whatever
    /// the verdict, 2 when the bundle does not compile.
    #[command(after_help = "Examples:\n  \
        airlock policy eval --input call.json                  # with ./policies\n  \
        airlock policy eval --input - my-policies/ < call.json\n  \
        airlock policy input --example tools/call | airlock policy eval --input - --explain")]
    Eval {
        /// The input JSON file, or `-` for standard input.
        #[arg(long, short)]
        input: String,
        /// The policy directory (Rego files, data.json).
        #[arg(default_value = "policies")]
        dir: PathBuf,
        /// Show which rules made the decision.
        #[arg(long)]
        explain: bool,
    },
    /// Print the policy input contract: its JSON Schema, or an example document.
    ///
    /// The schema documents every field of `input`, what `session.calls` and
    /// `listing` mean, and which fields exist for which messages.
    #[command(after_help = "Examples:\n  \
        airlock policy input --schema > input.schema.json\n  \
        airlock policy input --example tools/call\n  \
        airlock policy input --example tools/list     # the tools/list filtering check")]
    Input {
        /// Print the JSON Schema (draft 2020-12).
        #[arg(long, conflicts_with = "example")]
        schema: bool,
        /// Print an example input for one kind of message: tools/call, tools/list,
        /// initialize, notifications/initialized, sampling/createMessage.
        #[arg(long, value_name = "KIND")]
        example: Option<String>,
    },
}

/// Which engines `policy test` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Engines {
    /// The interpreter, and every decision replayed on the RVM.
    Both,
    /// The interpreter only.
    Interpreter,
}

/// Runs a policy subcommand.
pub fn run(cmd: PolicyCommand, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match cmd {
        PolicyCommand::Test {
            dir,
            verbose,
            run,
            coverage,
            engine,
        } => test::run(
            &dir,
            &test::Args {
                verbose,
                run,
                coverage,
                engine,
            },
            global.output,
        ),
        PolicyCommand::Eval {
            input,
            dir,
            explain,
        } => eval::run(&input, &dir, explain),
        PolicyCommand::Input { schema, example } => input::run(schema, example.as_deref()),
    }
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
