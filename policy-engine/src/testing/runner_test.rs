use super::*;
use crate::Module;
use serde_json::json;

fn bundle(files: &[(&str, &str)]) -> Bundle {
    let modules = files
        .iter()
        .map(|(p, s)| Module {
            path: (*p).to_owned(),
            source: (*s).to_owned(),
        })
        .collect();
    Bundle::from_parts(
        modules,
        json!({"limits": {"max": 3}, "classes": {"q": "read"}}),
    )
}

fn names(report: &TestReport, outcome: Outcome) -> Vec<String> {
    report
        .results
        .iter()
        .filter(|r| r.outcome == outcome)
        .map(|r| r.name.rsplit('.').next().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn runs_test_rules_with_mocks_and_reports_failures() {
    let b = bundle(&[
        ("airlock.rego", "package airlock\n\nimport rego.v1\n\ndecision := {\"verdict\": \"allow\"}\n\nbig if input.n > data.limits.max\n"),
        (
            "airlock_test.rego",
            "package airlock_test\n\nimport data.airlock\nimport rego.v1\n\n\
             test_big if airlock.big with input as {\"n\": 4}\n\
             test_mocked_data if airlock.big with input as {\"n\": 2} with data.limits.max as 1\n\
             test_small_fails if airlock.big with input as {\"n\": 1}\n\
             test_false := false\n\
             todo_test_later if false\n\
             not_a_test if true\n",
        ),
    ]);
    let report = run_tests(&b).unwrap();
    assert_eq!(
        names(&report, Outcome::Passed),
        ["test_big", "test_mocked_data"]
    );
    assert_eq!(
        names(&report, Outcome::Failed),
        ["test_small_fails", "test_false"]
    );
    assert_eq!(names(&report, Outcome::Skipped), ["todo_test_later"]);
    assert_eq!(
        (report.passed(), report.failed(), report.skipped()),
        (2, 2, 1)
    );
    let failed: Vec<_> = report
        .failures()
        .map(|r| (r.file.as_str(), r.line))
        .collect();
    assert_eq!(failed, [("airlock_test.rego", 8), ("airlock_test.rego", 9)]);
}

#[test]
fn a_failing_test_names_the_statement_and_its_values() {
    let b = bundle(&[
        ("airlock.rego", "package airlock\n\nimport rego.v1\n\ndecision := {\"verdict\": \"deny\", \"reasons\": [\"x\"]} if input.tool == \"drop\"\n\ndecision := {\"verdict\": \"allow\"} if input.tool != \"drop\"\n"),
        (
            "airlock_test.rego",
            "package airlock_test\n\nimport data.airlock\nimport rego.v1\n\n\
             test_drop_is_denied if {\n\
             \tdoc := {\"tool\": \"drop\"}\n\
             \td := airlock.decision with input as doc\n\
             \td.verdict == \"allow\"\n\
             \tcount(d.reasons) == 1\n\
             }\n",
        ),
    ]);
    let report = run_tests(&b).unwrap();
    let result = &report.results[0];
    assert_eq!(result.outcome, Outcome::Failed);
    let detail = result.failure.as_ref().expect("a failure detail");
    assert_eq!(detail.statement, "d.verdict == \"allow\"");
    assert_eq!(detail.line, 9);
    let values: Vec<_> = detail
        .values
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    assert!(
        values.contains(&("d", "{\"reasons\":[\"x\"],\"verdict\":\"deny\"}")),
        "{values:?}"
    );
    assert!(values.contains(&("d.verdict", "\"deny\"")), "{values:?}");
}

#[test]
fn prints_are_kept_per_test_and_run_filters() {
    let b = bundle(&[
        (
            "airlock.rego",
            "package airlock\n\nimport rego.v1\n\ndecision := {\"verdict\": \"allow\"}\n",
        ),
        (
            "airlock_test.rego",
            "package airlock_test\n\nimport rego.v1\n\n\
             test_one if { print(\"one says\", 1); true }\n\
             test_two if { print(\"two says\", 2); true }\n",
        ),
    ]);
    let report = run_tests(&b).unwrap();
    let prints: Vec<_> = report.results.iter().map(|r| r.prints.clone()).collect();
    assert_eq!(prints[0].len(), 1);
    assert!(prints[0][0].contains("one says 1"), "{prints:?}");
    assert!(prints[1][0].contains("two says 2"), "{prints:?}");
    let options = TestOptions {
        run: Some(regex::Regex::new("two").unwrap()),
        ..TestOptions::default()
    };
    let report = run_tests_with(&b, &options).unwrap();
    assert_eq!(names(&report, Outcome::Passed), ["test_two"]);
}

#[test]
fn engines_that_disagree_fail_the_test_that_decided() {
    // regorus 0.14's RVM skips this `else` (tests/rvm_differences.rs): the
    // interpreter says "none", the RVM undefined.
    let b = bundle(&[
        ("airlock.rego", "package airlock\n\nimport rego.v1\n\nenv := v if { v := input.labels.env } else := \"none\"\n\ndecision := {\"verdict\": \"allow\", \"reasons\": [env]}\n"),
        (
            "airlock_test.rego",
            "package airlock_test\n\nimport data.airlock\nimport rego.v1\n\n\
             test_no_env if airlock.decision.reasons == [\"none\"] with input as {}\n\
             test_env if airlock.decision.reasons == [\"prod\"] with input as {\"labels\": {\"env\": \"prod\"}}\n",
        ),
    ]);
    let report = run_tests(&b).unwrap();
    assert_eq!(names(&report, Outcome::Failed), ["test_no_env"]);
    assert_eq!(names(&report, Outcome::Passed), ["test_env"]);
    let d = report.results[0].disagreement.as_ref().unwrap();
    assert_eq!(d.rvm, "undefined");
    assert!(d.interpreter.contains("none"), "{d:?}");
    assert_eq!(report.engines.decisions, 2);
    assert_eq!(report.engines.disagreements, 1);
    // With the comparison off (a bundle meant for the interpreter), both pass.
    let options = TestOptions {
        compare_engines: false,
        ..TestOptions::default()
    };
    assert_eq!(run_tests_with(&b, &options).unwrap().failed(), 0);
}

#[test]
fn a_bundle_with_clashing_rules_is_interpreter_only_and_its_conflict_is_an_error() {
    let b = bundle(&[
        ("airlock.rego", "package airlock\n\nimport rego.v1\n\ndefault risk := 0\n\nrisk := 3 if input.tool == \"execute\"\n\nrisk := 2 if contains(input.sql, \"drop\")\n\ndefault decision := {\"verdict\": \"allow\"}\n\ndecision := {\"verdict\": \"deny\"} if risk > 2\n"),
        (
            "airlock_test.rego",
            "package airlock_test\n\nimport data.airlock\nimport rego.v1\n\n\
             test_conflict_is_an_error if not airlock.decision with input as {\"tool\": \"execute\", \"sql\": \"drop t\"}\n",
        ),
    ]);
    let report = run_tests(&b).unwrap();
    assert!(!report.engines.compared);
    let why = report.engines.interpreter_only.as_deref().unwrap();
    assert!(why.contains("airlock.risk"), "{why}");
    // The conflict is an evaluation error: `not` of an error is still an error.
    assert_eq!(report.failed(), 1);
    assert!(report.results[0]
        .error
        .as_deref()
        .unwrap()
        .contains("error"));
}

#[test]
fn coverage_names_the_lines_no_test_reached() {
    let b = bundle(&[
        ("airlock.rego", "package airlock\n\nimport rego.v1\n\ndecision := {\"verdict\": \"allow\"} if input.a\n\ndecision := {\"verdict\": \"deny\"} if {\n\tnot input.a\n\tinput.b\n}\n"),
        (
            "airlock_test.rego",
            "package airlock_test\n\nimport data.airlock\nimport rego.v1\n\n\
             test_a if airlock.decision.verdict == \"allow\" with input as {\"a\": true}\n",
        ),
    ]);
    let options = TestOptions {
        coverage: true,
        ..TestOptions::default()
    };
    let report = run_tests_with(&b, &options).unwrap();
    let coverage = report.coverage.unwrap();
    assert_eq!(coverage.len(), 1, "test files are left out: {coverage:?}");
    assert_eq!(coverage[0].path, "airlock.rego");
    assert!(coverage[0].covered.contains(&5), "{coverage:?}");
    assert!(coverage[0].not_covered.contains(&9), "{coverage:?}");
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
