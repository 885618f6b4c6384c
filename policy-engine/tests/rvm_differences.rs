//! Where regorus's RVM decides differently from OPA (and from regorus's own
//! interpreter), kept as minimal reproducers.
//!
//! Each case records what each engine gives today. When a regorus upgrade changes
//! one, this test fails and shows what changed: update the table (and, if the RVM
//! now agrees everywhere, the advice in policies/README.md). Airlock does not depend
//! on these being fixed: a bundle runs on the RVM only with a proof that the engines
//! agree on it, and never with a rule whose values could clash
//! (`airlock_policy::proof`).

use airlock_policy::{Backend, Bundle, CompiledPolicy, Module, Verdict};
use serde_json::{json, Value};

struct Case {
    name: &'static str,
    rego: &'static str,
    input: Value,
    data: Value,
    /// What OPA and the interpreter give for `data.airlock.decision.reasons`.
    interpreter: Outcome,
    /// What the RVM gives today.
    rvm: Outcome,
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Allowed with these reasons.
    Allow(&'static [&'static str]),
    /// Denied with this first reason.
    Deny(&'static str),
}

fn decide(case: &Case, backend: Backend) -> Outcome {
    let source = format!(
        "package airlock\n\nimport rego.v1\n\n{}\n\ndefault decision := {{\"verdict\": \"allow\", \"reasons\": [\"default\"]}}\n",
        case.rego
    );
    let bundle = Bundle::from_parts(
        vec![Module {
            path: "airlock.rego".into(),
            source,
        }],
        case.data.clone(),
    );
    let policy = CompiledPolicy::compile_with(&bundle, backend).unwrap();
    let d = policy.decide_value(&case.input);
    match d.verdict {
        Verdict::Allow => Outcome::Allow(leak(d.reasons)),
        _ => Outcome::Deny(leak(d.reasons).first().copied().unwrap_or("")),
    }
}

fn leak(reasons: Vec<String>) -> &'static [&'static str] {
    Box::leak(
        reasons
            .into_iter()
            .map(|r| &*Box::leak(r.into_boxed_str()))
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    )
}

fn cases() -> Vec<Case> {
    use Outcome::*;
    vec![
        Case {
            name: "a conflict between two values of a complete rule",
            rego: "risk := 3 if input.tool == \"execute\"\nrisk := 2 if contains(input.sql, \"drop\")\ndecision := {\"verdict\": \"deny\", \"reasons\": [\"risky\"]} if risk > 2",
            input: json!({"tool": "execute", "sql": "drop table x"}),
            data: json!({}),
            // OPA: eval_conflict_error; the decision fails: a policy.error deny.
            interpreter: Deny("policy.error"),
            // RVM: `risk` is undefined, the default decision allows.
            rvm: Allow(&["default"]),
        },
        Case {
            name: "a conflict in the decision rule itself",
            rego: "decision := {\"verdict\": \"allow\", \"reasons\": [\"a\"]} if input.a\ndecision := {\"verdict\": \"deny\", \"reasons\": [\"b\"]} if input.b",
            input: json!({"a": true, "b": true}),
            data: json!({}),
            interpreter: Deny("policy.error"),
            // The RVM reads the clash as undefined, default included: the deny says
            // "add a default decision", which is wrong advice.
            rvm: Deny("policy.undefined"),
        },
        Case {
            name: "else after a body that binds an undefined lookup",
            rego: "env := v if { v := input.labels.env } else := \"none\"\ndecision := {\"verdict\": \"allow\", \"reasons\": [env]}",
            input: json!({}),
            data: json!({}),
            interpreter: Allow(&["none"]),
            rvm: Allow(&["default"]),
        },
        Case {
            name: "else after `some x in` over an empty collection",
            rego: "first := x if { some x in data.empty } else := \"none\"\ndecision := {\"verdict\": \"allow\", \"reasons\": [first]}",
            input: json!({}),
            data: json!({"empty": []}),
            interpreter: Allow(&["none"]),
            rvm: Allow(&["default"]),
        },
        Case {
            name: "a function whose else follows an undefined lookup",
            rego: "g(name) := c if { c := data.classes[name] } else := \"unknown\"\ndecision := {\"verdict\": \"allow\", \"reasons\": [g(\"zz\")]}",
            input: json!({}),
            data: json!({"classes": {"a": "read"}}),
            interpreter: Allow(&["unknown"]),
            rvm: Allow(&["default"]),
        },
        Case {
            name: "an else chain whose later condition holds (agrees today)",
            rego: "level := 1 if { input.x == 1 } else := 2 if { input.x == 2 } else := 3 if { input.y } else := 4\ndecision := {\"verdict\": \"allow\", \"reasons\": [sprintf(\"%v\", [level])]}",
            input: json!({"x": 5, "y": true}),
            data: json!({}),
            interpreter: Allow(&["3"]),
            rvm: Allow(&["3"]),
        },
        Case {
            name: "a complete rule that iterates to two values",
            rego: "pick := x if { some x in input.xs }\ndecision := {\"verdict\": \"allow\", \"reasons\": [sprintf(\"%v\", [pick])]}",
            input: json!({"xs": [1, 2]}),
            data: json!({}),
            interpreter: Deny("policy.error"),
            // The RVM keeps the last value it saw.
            rvm: Allow(&["2"]),
        },
    ]
}

#[test]
fn the_known_rvm_differences_are_as_recorded() {
    let mut changed = Vec::new();
    for case in cases() {
        let interpreter = decide(&case, Backend::Interpreter);
        let rvm = decide(&case, Backend::Vm);
        if interpreter != case.interpreter || rvm != case.rvm {
            changed.push(format!(
                "{}: interpreter {:?} (recorded {:?}), rvm {:?} (recorded {:?})",
                case.name, interpreter, case.interpreter, rvm, case.rvm
            ));
        }
    }
    assert!(
        changed.is_empty(),
        "regorus behaves differently than recorded (an upgrade?):\n{}",
        changed.join("\n")
    );
}

#[test]
fn no_known_difference_can_reach_the_rvm_in_a_proxy() {
    // Each reproducer, compiled the way a proxy compiles it (with a proof made by
    // the publisher), runs on the interpreter: either a clashing rule keeps it
    // there, or the corpus finds the difference and no proof is made.
    for case in cases().into_iter().filter(|c| c.interpreter != c.rvm) {
        let source = format!(
            "package airlock\n\nimport rego.v1\n\n{}\n\ndefault decision := {{\"verdict\": \"allow\", \"reasons\": [\"default\"]}}\n",
            case.rego
        );
        let test = format!(
            "package airlock_test\n\nimport rego.v1\nimport data.airlock\n\ntest_decides if airlock.decision with input as {}\n",
            case.input
        );
        let mut bundle = Bundle::from_parts(
            vec![
                Module {
                    path: "airlock.rego".into(),
                    source,
                },
                Module {
                    path: "airlock_test.rego".into(),
                    source: test,
                },
            ],
            case.data.clone(),
        );
        let report = airlock_policy::proof::prove(&bundle, &Default::default()).unwrap();
        assert!(report.proof.is_none(), "{}: proved", case.name);
        bundle.engine_proof = report.proof.map(|p| serde_json::to_value(p).unwrap());
        let policy = CompiledPolicy::compile(&bundle).unwrap();
        assert_eq!(policy.backend(), Backend::Interpreter, "{}", case.name);
        assert_eq!(decide(&case, Backend::Interpreter), case.interpreter);
    }
}
