//! The Rego test runner, after OPA's `opa test`: every rule whose name starts with
//! `test_`, in any package and file, is evaluated on the interpreter (the reference
//! engine, which supports `with`); it passes iff it is `true`. `todo_test_` rules are
//! reported as skipped. Each decision a test makes (`data.airlock.decision` under the
//! test's mocked input) is also replayed on the RVM, and an input on which the two
//! engines disagree fails the test that decided it ([`capture`]). A failing test
//! names the statement that did not hold and the values involved ([`detail`]);
//! `print()` output is kept per test; line coverage is optional ([`coverage`]).

mod capture;
mod coverage;
mod detail;

pub use coverage::FileCoverage;
pub use detail::FailureDetail;

use crate::analysis::{self, Definition, Parsed};
use crate::engine::load_engine;
use crate::proof::{Disagreement, EnginePair};
use crate::{Bundle, PolicyError};
use regorus::Value;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// How to run a bundle's tests.
#[derive(Debug, Clone)]
pub struct TestOptions {
    /// Run only the tests whose full name (`data.pkg.test_x`) this matches.
    pub run: Option<regex::Regex>,
    /// Replay every decision on the RVM and fail a test whose decisions differ
    /// (default on; off means the bundle is meant for the interpreter only).
    pub compare_engines: bool,
    /// Collect line coverage of the policy files.
    pub coverage: bool,
}

impl Default for TestOptions {
    fn default() -> Self {
        TestOptions {
            run: None,
            compare_engines: true,
            coverage: false,
        }
    }
}

/// How one test ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It evaluated to `true` and the engines agreed on its decisions.
    Passed,
    /// It did not evaluate to `true`, raised an error, or the engines disagreed.
    Failed,
    /// A `todo_test_` rule: not run.
    Skipped,
}

/// The outcome of one Rego test.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TestResult {
    /// Full rule path, e.g. `data.airlock_test.test_ddl_denied`.
    pub name: String,
    /// The module that defines it, relative to the bundle root.
    pub file: String,
    /// 1-based line of its first definition.
    pub line: u32,
    /// Passed, failed or skipped.
    pub outcome: Outcome,
    /// True iff it passed (kept for callers that only ask that).
    pub passed: bool,
    /// Why it failed (`false`, undefined, an evaluation error, an engine disagreement).
    pub error: Option<String>,
    /// The statement that did not hold and its values, when it can be found.
    pub failure: Option<FailureDetail>,
    /// The first decision on which the RVM disagreed with the interpreter.
    pub disagreement: Option<Disagreement>,
    /// What the test printed with `print()`.
    pub prints: Vec<String>,
    /// Evaluation time.
    #[serde(serialize_with = "millis")]
    pub duration: Duration,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

/// All test outcomes of a bundle, in file then line order.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TestReport {
    /// One entry per test rule.
    pub results: Vec<TestResult>,
    /// How the decisions were compared across engines.
    pub engines: EngineCheck,
    /// Line coverage of the policy files, when asked for.
    pub coverage: Option<Vec<FileCoverage>>,
    /// Every distinct input the tests decided, for the agreement proof.
    #[serde(skip)]
    pub(crate) decided_inputs: Vec<Value>,
}

/// What comparing the two engines on the tests' decisions found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct EngineCheck {
    /// Whether decisions were replayed on the RVM.
    pub compared: bool,
    /// Distinct inputs the tests decided.
    pub decisions: usize,
    /// Inputs on which the engines disagreed.
    pub disagreements: usize,
    /// Why the bundle can only run on the interpreter, when it can.
    pub interpreter_only: Option<String>,
}

impl TestReport {
    /// Tests that passed.
    pub fn passed(&self) -> usize {
        self.count(Outcome::Passed)
    }

    /// Tests that failed.
    pub fn failed(&self) -> usize {
        self.count(Outcome::Failed)
    }

    /// `todo_test_` rules.
    pub fn skipped(&self) -> usize {
        self.count(Outcome::Skipped)
    }

    fn count(&self, outcome: Outcome) -> usize {
        self.results.iter().filter(|r| r.outcome == outcome).count()
    }

    /// The failing tests.
    pub fn failures(&self) -> impl Iterator<Item = &TestResult> {
        self.results.iter().filter(|r| r.outcome == Outcome::Failed)
    }
}

/// Runs every test with the default options (engines compared, no coverage).
pub fn run_tests(bundle: &Bundle) -> Result<TestReport, PolicyError> {
    run_tests_with(bundle, &TestOptions::default())
}

/// Compiles every module of the bundle (tests included) and runs the `test_` rules
/// that `options.run` selects. A module that does not compile is an error naming its
/// file and line.
pub fn run_tests_with(bundle: &Bundle, options: &TestOptions) -> Result<TestReport, PolicyError> {
    let parsed = analysis::parse_bundle(bundle, true)?;
    let instrumented = capture::instrument(bundle, &parsed);
    let mut engine = load_engine(&instrumented, true, crate::builtins::all())?;
    let sink = capture::register(&mut engine)?;
    engine.set_gather_prints(true);
    engine.set_enable_coverage(options.coverage);
    let pair = if options.compare_engines {
        EnginePair::for_bundle(bundle, &parsed)
    } else {
        Err("engine comparison is off (--engine interpreter)".to_owned())
    };
    let mut report = TestReport::default();
    let mut coverage = coverage::Accumulator::default();
    let mut seen: HashSet<String> = HashSet::new();
    for (module, test) in discover(&parsed) {
        let name = format!("data.{}.{}", module.package, test.name);
        if options.run.as_ref().is_some_and(|re| !re.is_match(&name)) {
            continue;
        }
        if test.name.starts_with("todo_") {
            report.results.push(skipped(name, module, test));
            continue;
        }
        let started = Instant::now();
        let mut run = engine.clone();
        let outcome = run.eval_rule(name.clone());
        let duration = started.elapsed();
        let prints = run.take_prints().unwrap_or_default();
        if options.coverage {
            if let Ok(cov) = run.get_coverage_report() {
                coverage.add(&cov, &|p| {
                    p != capture::WRAPPER_PATH && !p.ends_with("_test.rego")
                });
            }
        }
        let mut result = verdict(name, module, test, outcome, duration, prints);
        if result.outcome == Outcome::Failed {
            result.failure = detail::explain(&engine, module, test);
        }
        for input in sink.take() {
            if !seen.insert(input.to_string()) {
                continue;
            }
            if let Some(d) = pair.as_ref().ok().and_then(|pair| pair.compare(&input)) {
                report.engines.disagreements += 1;
                if result.disagreement.is_none() {
                    fail_on_disagreement(&mut result, d);
                }
            }
            report.decided_inputs.push(input);
        }
        report.results.push(result);
    }
    report.engines.compared = pair.is_ok();
    report.engines.decisions = seen.len();
    report.engines.interpreter_only = pair.err();
    if options.coverage {
        report.coverage = Some(coverage.finish());
    }
    Ok(report)
}

fn fail_on_disagreement(result: &mut TestResult, d: Disagreement) {
    if result.outcome == Outcome::Passed {
        result.outcome = Outcome::Failed;
        result.passed = false;
        result.error = Some(format!(
            "the RVM decides differently from the interpreter (the reference) on an input this test decided: {}",
            d.summary()
        ));
    }
    result.disagreement = Some(d);
}

fn verdict(
    name: String,
    module: &Parsed,
    test: &Definition,
    outcome: anyhow::Result<Value>,
    duration: Duration,
    prints: Vec<String>,
) -> TestResult {
    let error = match outcome {
        Ok(Value::Bool(true)) => None,
        Ok(Value::Undefined) => Some("undefined (a condition did not hold)".to_owned()),
        Ok(other) => Some(format!("evaluated to {other}, not true")),
        Err(err) => Some(format!("error: {err}")),
    };
    let passed = error.is_none();
    TestResult {
        name,
        file: module.path.clone(),
        line: test.line,
        outcome: if passed {
            Outcome::Passed
        } else {
            Outcome::Failed
        },
        passed,
        error,
        failure: None,
        disagreement: None,
        prints,
        duration,
    }
}

fn skipped(name: String, module: &Parsed, test: &Definition) -> TestResult {
    TestResult {
        name,
        file: module.path.clone(),
        line: test.line,
        outcome: Outcome::Skipped,
        passed: false,
        error: None,
        failure: None,
        disagreement: None,
        prints: Vec::new(),
        duration: Duration::ZERO,
    }
}

/// Every `test_` and `todo_test_` rule, once per name (the first definition), in
/// file then line order.
fn discover(parsed: &[Parsed]) -> Vec<(&Parsed, &Definition)> {
    let mut seen = HashSet::new();
    let mut found = Vec::new();
    for module in parsed {
        for def in &module.rules {
            let is_test = def.name.starts_with("test_") || def.name.starts_with("todo_test_");
            if is_test && seen.insert((module.package.clone(), def.name.clone())) {
                found.push((module, def));
            }
        }
    }
    found
}

#[cfg(test)]
#[path = "runner_test.rs"]
mod tests;
