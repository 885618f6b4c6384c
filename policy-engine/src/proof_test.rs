use super::*;
use crate::Module;
use serde_json::json;

fn bundle(rego: &str) -> Bundle {
    Bundle::from_parts(
        vec![
            Module {
                path: "airlock.rego".to_owned(),
                source: rego.to_owned(),
            },
            Module {
                path: "airlock_test.rego".to_owned(),
                source: "package airlock_test\n\nimport rego.v1\nimport data.airlock\n\n\
                         test_q if airlock.decision.verdict == \"allow\" with input as {\"tool\": {\"name\": \"q\"}}\n"
                    .to_owned(),
            },
        ],
        json!({"classes": {"q": "read", "x": "write"}}),
    )
}

const AGREES: &str = "package airlock\n\nimport rego.v1\n\n\
    default class := \"unknown\"\n\nclass := c if { c := data.classes[input.tool.name] }\n\n\
    decision := {\"verdict\": \"allow\", \"reasons\": [class]} if class == \"read\" else := {\"verdict\": \"deny\", \"reasons\": [class]}\n";

/// regorus 0.14's RVM skips an `else` after a body that only binds an undefined lookup.
const DISAGREES: &str = "package airlock\n\nimport rego.v1\n\n\
    class := c if { c := data.classes[input.tool.name] } else := \"unknown\"\n\n\
    decision := {\"verdict\": \"allow\", \"reasons\": [class]} if class == \"read\" else := {\"verdict\": \"deny\", \"reasons\": [class]}\n";

fn with_proof(mut b: Bundle, proof: &EngineProof) -> Bundle {
    b.engine_proof = Some(serde_json::to_value(proof).unwrap());
    b
}

#[test]
fn a_bundle_the_engines_agree_on_is_proved_and_runs_on_the_rvm() {
    let b = bundle(AGREES);
    let report = prove(&b, &ProofOptions::default()).unwrap();
    let proof = report.proof.clone().expect("a proof");
    assert_eq!(report.disagreements, []);
    assert_eq!(proof.content, b.digest);
    assert_eq!(proof.test_decisions, 1);
    assert_eq!(proof.generated, 2_000);
    assert!(
        report.engine_line().starts_with("rvm (proved"),
        "{}",
        report.engine_line()
    );
    let proved = with_proof(b.clone(), &proof);
    let choice = choose(&proved);
    assert_eq!(choice.backend, Backend::Vm, "{}", choice.reason);
    assert_eq!(
        CompiledPolicy::compile(&proved).unwrap().backend(),
        Backend::Vm
    );
    // Without the proof, the interpreter, and the reason says so.
    let choice = choose(&b);
    assert_eq!(choice.backend, Backend::Interpreter);
    assert!(
        choice.reason.contains("no engine proof"),
        "{}",
        choice.reason
    );
}

#[test]
fn a_disagreement_found_by_the_corpus_means_no_proof() {
    let b = bundle(DISAGREES);
    let report = prove(&b, &ProofOptions::default()).unwrap();
    assert!(report.proof.is_none());
    let d = &report.disagreements[0];
    assert_eq!(d.rvm, "undefined");
    assert!(d.interpreter.contains("unknown"), "{d:?}");
    let why = report.interpreter_only.unwrap();
    assert!(why.contains("disagrees"), "{why}");
}

#[test]
fn a_proof_for_other_content_or_another_engine_version_is_not_trusted() {
    let b = bundle(AGREES);
    let proof = prove(&b, &ProofOptions::default()).unwrap().proof.unwrap();
    // The same proof on changed content.
    let mut changed = with_proof(bundle(DISAGREES), &proof);
    changed.engine_proof = Some(serde_json::to_value(&proof).unwrap());
    let choice = choose(&changed);
    assert_eq!(choice.backend, Backend::Interpreter);
    assert!(
        choice.reason.contains("different content"),
        "{}",
        choice.reason
    );
    let old = EngineProof {
        regorus: "0.13.0".to_owned(),
        ..proof.clone()
    };
    let choice = choose(&with_proof(b.clone(), &old));
    assert!(
        choice.reason.contains("regorus 0.13.0"),
        "{}",
        choice.reason
    );
    let mut malformed = b.clone();
    malformed.engine_proof = Some(json!({"engine": "rvm"}));
    assert!(choose(&malformed).reason.contains("malformed"));
}

#[test]
fn clashing_rules_keep_a_bundle_on_the_interpreter_even_with_a_proof() {
    let clashing = "package airlock\n\nimport rego.v1\n\ndefault risk := 0\n\nrisk := 3 if input.a\n\nrisk := 2 if input.b\n\ndecision := {\"verdict\": \"allow\"} if risk < 3\n";
    let b = bundle(clashing);
    let report = prove(&b, &ProofOptions::default()).unwrap();
    assert!(report.proof.is_none());
    assert!(report.interpreter_only.unwrap().contains("airlock.risk"));
    // A forged proof for the right content does not help.
    let forged = EngineProof {
        engine: "rvm".into(),
        regorus: REGORUS_VERSION.into(),
        builtins: builtin_signature(),
        content: b.digest.clone(),
        test_decisions: 1,
        generated: 1,
        recorded: 0,
        seed: 1,
    };
    let b = with_proof(b, &forged);
    assert_eq!(choose(&b).backend, Backend::Interpreter);
    // And the conflict is a policy.error deny, never an allow.
    let policy = CompiledPolicy::compile(&b).unwrap();
    let d = policy.decide_value(&json!({"a": true, "b": true}));
    assert_eq!(d.verdict, crate::Verdict::Deny);
    assert_eq!(d.reasons, [crate::ERROR]);
}

#[test]
fn recorded_inputs_are_replayed_too() {
    let b = bundle(DISAGREES);
    let options = ProofOptions {
        generated: 0,
        recorded: vec![json!({"tool": {"name": "nope"}})],
        ..ProofOptions::default()
    };
    let report = prove(&b, &options).unwrap();
    assert_eq!(report.recorded, 1);
    assert!(report
        .disagreements
        .iter()
        .any(|d| d.input == json!({"tool": {"name": "nope"}})));
}

#[test]
fn the_regorus_version_constant_matches_cargo_lock() {
    let lock =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock")).unwrap();
    let at = lock.find("name = \"regorus\"\nversion = \"").unwrap();
    let rest = &lock[at + "name = \"regorus\"\nversion = \"".len()..];
    let version = &rest[..rest.find('"').unwrap()];
    assert_eq!(
        version, REGORUS_VERSION,
        "update proof::REGORUS_VERSION with regorus"
    );
}
