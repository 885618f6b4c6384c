//! The Rego test runner, after OPA's `opa test`: every rule whose name starts with
//! `test_`, in any package and file, is evaluated; it passes iff it is `true`.
//! Tests mock with `with input as ...` and `with data.x as ...`, so they run on the
//! interpreter (the RVM does not support `with`).

use crate::compiled::load_engine;
use crate::{Bundle, PolicyError};
use regorus::Value;
use std::time::{Duration, Instant};

/// The outcome of one Rego test.
#[derive(Debug, Clone)]
pub struct TestResult {
    /// Full rule path, e.g. `data.airlock_test.test_ddl_denied`.
    pub name: String,
    /// The module that defines it, relative to the bundle root.
    pub file: String,
    /// 1-based line of its first definition.
    pub line: u32,
    /// True iff the rule evaluated to `true`.
    pub passed: bool,
    /// Why it failed (`false`, undefined, an evaluation error).
    pub error: Option<String>,
    /// Evaluation time.
    pub duration: Duration,
}

/// All test outcomes of a bundle, in file then line order.
#[derive(Debug, Clone, Default)]
pub struct TestReport {
    /// One entry per test rule.
    pub results: Vec<TestResult>,
}

impl TestReport {
    /// Tests that passed.
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.passed).count()
    }

    /// Tests that failed.
    pub fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }

    /// The failing tests.
    pub fn failures(&self) -> impl Iterator<Item = &TestResult> {
        self.results.iter().filter(|r| !r.passed)
    }
}

/// Compiles every module of the bundle (tests included) and runs every `test_` rule.
/// A module that does not compile is an error naming its file and line.
pub fn run_tests(bundle: &Bundle) -> Result<TestReport, PolicyError> {
    let engine = load_engine(bundle, true)?;
    let mut report = TestReport::default();
    for test in discover(bundle) {
        let started = Instant::now();
        // As in `opa test`, `input` is undefined unless a test mocks it with `with`.
        let mut run = engine.clone();
        let outcome = run.eval_rule(test.name.clone());
        let (passed, error) = match outcome {
            Ok(Value::Bool(true)) => (true, None),
            Ok(Value::Undefined) => (
                false,
                Some("undefined (a condition did not hold)".to_owned()),
            ),
            Ok(other) => (false, Some(format!("evaluated to {other}, not true"))),
            Err(err) => (false, Some(format!("error: {err}"))),
        };
        report.results.push(TestResult {
            name: test.name,
            file: test.file,
            line: test.line,
            passed,
            error,
            duration: started.elapsed(),
        });
    }
    Ok(report)
}

struct Discovered {
    name: String,
    file: String,
    line: u32,
}

/// Finds `test_` rule heads: a line that starts (unindented) with `test_name` followed
/// by ` if`, `{`, `:=`, `=` or the end of the line.
fn discover(bundle: &Bundle) -> Vec<Discovered> {
    let mut found: Vec<Discovered> = Vec::new();
    for module in &bundle.modules {
        let mut package = None;
        for (index, line) in module.source.lines().enumerate() {
            if let Some(rest) = line.strip_prefix("package ") {
                package = Some(rest.trim().to_owned());
                continue;
            }
            let (Some(pkg), Some(name)) = (&package, test_rule_name(line)) else {
                continue;
            };
            let full = format!("data.{pkg}.{name}");
            if found.iter().all(|t| t.name != full) {
                found.push(Discovered {
                    name: full,
                    file: module.path.clone(),
                    line: u32::try_from(index + 1).unwrap_or(u32::MAX),
                });
            }
        }
    }
    found
}

fn test_rule_name(line: &str) -> Option<&str> {
    if !line.starts_with("test_") {
        return None;
    }
    let end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(line.len());
    let rest = line[end..].trim_start();
    let head_ends = rest.is_empty()
        || rest.starts_with("if")
        || rest.starts_with('{')
        || rest.starts_with(":=")
        || rest.starts_with('=');
    head_ends.then(|| &line[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Module;

    fn bundle(files: &[(&str, &str)]) -> Bundle {
        let modules = files
            .iter()
            .map(|(p, s)| Module {
                path: (*p).to_owned(),
                source: (*s).to_owned(),
            })
            .collect();
        Bundle::from_parts(modules, serde_json::json!({"limits": {"max": 3}}))
    }

    #[test]
    fn runs_test_rules_with_mocks_and_reports_failures() {
        let b = bundle(&[
            ("airlock.rego", "package airlock\n\nbig if input.n > data.limits.max\n"),
            (
                "airlock_test.rego",
                "package airlock_test\n\nimport data.airlock\n\n\
                 test_big if airlock.big with input as {\"n\": 4}\n\
                 test_mocked_data if airlock.big with input as {\"n\": 2} with data.limits.max as 1\n\
                 test_small_fails if airlock.big with input as {\"n\": 1}\n\
                 test_false := false\n\
                 not_a_test if true\n",
            ),
        ]);
        let report = run_tests(&b).unwrap();
        let names: Vec<_> = report.results.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "data.airlock_test.test_big",
                "data.airlock_test.test_mocked_data",
                "data.airlock_test.test_small_fails",
                "data.airlock_test.test_false"
            ]
        );
        assert_eq!((report.passed(), report.failed()), (2, 2));
        let failed: Vec<_> = report
            .failures()
            .map(|r| (r.file.as_str(), r.line))
            .collect();
        assert_eq!(failed, [("airlock_test.rego", 7), ("airlock_test.rego", 8)]);
    }

    #[test]
    fn a_compile_error_names_the_file_and_line() {
        let b = bundle(&[("x_test.rego", "package x\n\ntest_a if {\n  input.a ==\n}\n")]);
        match run_tests(&b).unwrap_err() {
            PolicyError::Compile { file, line, .. } => {
                assert_eq!(file, "x_test.rego");
                assert!(line >= 4, "line {line}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
