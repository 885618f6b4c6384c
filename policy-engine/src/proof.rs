//! Which engine a bundle runs on, and the proof that lets it run on the RVM.
//!
//! The interpreter is the reference: it decides what OPA decides. The RVM is several
//! times faster but differs from OPA on some Rego (tests/rvm_differences.rs). A
//! bundle runs on the RVM only when:
//! 1. no rule of it can produce two clashing values (the RVM turns a conflict into
//!    `undefined`, where OPA raises an error; see [`crate::analysis`]),
//! 2. the RVM compiles it, and
//! 3. it carries an [`EngineProof`] for its exact content, this regorus version and
//!    these built-ins: the publisher replayed every decision its Rego tests make, a
//!    corpus generated from its own data and the input contract ([`crate::corpus`]),
//!    and any recorded inputs on both engines, and they agreed on every one.
//!
//! `airlock bundle build` makes the proof ([`prove`]) and signs it into the
//! manifest; proxies check it ([`choose`]) and otherwise use the interpreter, saying
//! why (`/readyz`, `airlock nodes list`, `airlock bundle push`).

use crate::analysis::{self, Parsed};
use crate::engine::{Backend, EngineChoice, RuleProbe};
use crate::testing::{self, TestOptions};
use crate::{Bundle, CompiledPolicy, PolicyError};
use regorus::Value;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// The regorus version this build evaluates with (checked against Cargo.lock by a
/// test): a proof made with another version proves nothing here.
pub const REGORUS_VERSION: &str = "0.14.1";

/// Evaluation budget while comparing engines: correctness, not speed, is measured,
/// and a slow debug build must not turn into a timeout on one side only.
const COMPARE_TIMEOUT: Duration = Duration::from_secs(10);

/// Disagreements kept in a report (the first ones found).
const MAX_REPORTED: usize = 10;

/// Generated inputs on which every rule's value is compared too (beyond them, the
/// decision only): rule values find an engine difference with far fewer inputs,
/// and cost a full evaluation per rule.
const RULE_PROBE_INPUTS: usize = 500;

/// The publisher's evidence that the RVM decides this bundle as the interpreter does,
/// stored in `.manifest` as `metadata.airlock.engine_proof` (covered by the bundle
/// signature).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineProof {
    /// The engine proven: `rvm`.
    pub engine: String,
    /// The regorus version both engines came from.
    pub regorus: String,
    /// The `airlock.*` built-ins available (`name/arity`, comma-separated).
    pub builtins: String,
    /// [`Bundle::digest`] of the content proven.
    pub content: String,
    /// Distinct inputs decided by the bundle's Rego tests.
    pub test_decisions: usize,
    /// Inputs generated from the bundle's data and the input contract.
    pub generated: usize,
    /// Recorded inputs replayed.
    pub recorded: usize,
    /// Seed of the generated corpus (to reproduce it).
    pub seed: u64,
}

/// One input on which the engines disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Disagreement {
    /// The rule whose value differs (`data.airlock.decision`, or a rule it may use).
    pub rule: String,
    /// The input document.
    pub input: serde_json::Value,
    /// What the interpreter (the reference) evaluated `data.airlock.decision` to.
    pub interpreter: String,
    /// What the RVM evaluated it to.
    pub rvm: String,
}

impl Disagreement {
    /// One line: both results and a shortened input.
    pub fn summary(&self) -> String {
        let mut input = self.input.to_string();
        if input.chars().count() > 300 {
            input = input.chars().take(300).collect::<String>() + "…";
        }
        format!(
            "{}: interpreter: {}; rvm: {}; input: {input}",
            self.rule, self.interpreter, self.rvm
        )
    }
}

/// What to replay when proving.
#[derive(Debug, Clone)]
pub struct ProofOptions {
    /// How many inputs to generate.
    pub generated: usize,
    /// The generator's seed.
    pub seed: u64,
    /// Recorded input documents to replay too.
    pub recorded: Vec<serde_json::Value>,
}

impl Default for ProofOptions {
    fn default() -> Self {
        ProofOptions {
            generated: 2_000,
            seed: 0x41_49_52_4c_4f_43_4b,
            recorded: Vec::new(),
        }
    }
}

/// What proving found.
#[derive(Debug, Clone, Serialize)]
pub struct ProofReport {
    /// The proof, when the engines agreed on everything (and the RVM may run it).
    pub proof: Option<EngineProof>,
    /// Why the bundle runs on the interpreter, when it does.
    pub interpreter_only: Option<String>,
    /// Distinct inputs decided by the Rego tests.
    pub test_decisions: usize,
    /// Generated inputs replayed.
    pub generated: usize,
    /// Recorded inputs replayed.
    pub recorded: usize,
    /// The first disagreements found.
    pub disagreements: Vec<Disagreement>,
    /// The reviewer groups the bundle's decisions asked for (on the tests' inputs
    /// and the generated ones): who must exist for its held calls to be approved.
    pub reviewer_groups: std::collections::BTreeSet<String>,
    /// How long proving took.
    #[serde(skip)]
    pub elapsed: Duration,
}

impl ProofReport {
    /// A report without a proof, for the given reason.
    pub fn not_proved(why: String) -> ProofReport {
        ProofReport {
            proof: None,
            interpreter_only: Some(why),
            test_decisions: 0,
            generated: 0,
            recorded: 0,
            disagreements: Vec::new(),
            reviewer_groups: std::collections::BTreeSet::new(),
            elapsed: Duration::ZERO,
        }
    }

    /// The engine a proxy will choose for the bundle, in words.
    pub fn engine_line(&self) -> String {
        match (&self.proof, &self.interpreter_only) {
            (Some(p), _) => format!(
                "rvm (proved: {} test decisions, {} generated and {} recorded inputs agree with the interpreter)",
                p.test_decisions, p.generated, p.recorded
            ),
            (None, Some(why)) => format!("interpreter ({why})"),
            (None, None) => "interpreter".to_owned(),
        }
    }
}

/// The two engines compiled for one bundle, to compare decisions and the values of
/// every rule.
pub(crate) struct EnginePair {
    interpreter: CompiledPolicy,
    rvm: CompiledPolicy,
    rules: Option<RuleProbe>,
}

impl EnginePair {
    /// Both engines for `bundle`, or why the RVM may not run it at all.
    pub(crate) fn for_bundle(bundle: &Bundle, parsed: &[Parsed]) -> Result<EnginePair, String> {
        rvm_eligible(parsed)?;
        let compile = |backend| {
            CompiledPolicy::compile_with(bundle, backend).map(|mut p| {
                p.set_eval_timeout(COMPARE_TIMEOUT);
                p
            })
        };
        let interpreter = compile(Backend::Interpreter).map_err(|e| e.to_string())?;
        let rvm = compile(Backend::Vm).map_err(|e| e.to_string())?;
        let rules = RuleProbe::new(bundle, rules_by_package(parsed), COMPARE_TIMEOUT)
            .map_err(|e| format!("the RVM cannot compile every rule of this bundle ({e})"))?;
        Ok(EnginePair {
            interpreter,
            rvm,
            rules: Some(rules),
        })
    }

    /// Decides `input` on both and compares every rule's value too; `Some` when
    /// anything differs.
    pub(crate) fn compare(&self, input: &Value) -> Option<Disagreement> {
        self.compare_with(input, true)
    }

    /// Decides `input` on both; `Some` when they differ. An error and an undefined
    /// decision agree, whatever their messages: either way there is no decision
    /// and the call is denied (regorus's interpreter raises a built-in's type error
    /// where the RVM, like OPA, makes the expression undefined).
    fn compare_with(&self, input: &Value, rules: bool) -> Option<Disagreement> {
        let reference = self.interpreter.raw_value(input.clone());
        let rvm = self.rvm.raw_value(input.clone());
        let no_decision = |r: &Result<Value, String>| matches!(r, Err(_) | Ok(Value::Undefined));
        let same = match (&reference, &rvm) {
            (Ok(a), Ok(b)) => a == b,
            (a, b) => no_decision(a) && no_decision(b),
        };
        let json = || serde_json::to_value(input).unwrap_or(serde_json::Value::Null);
        if !same {
            return Some(Disagreement {
                rule: crate::DECISION_RULE.to_owned(),
                input: json(),
                interpreter: render(&reference),
                rvm: render(&rvm),
            });
        }
        if !rules {
            return None;
        }
        let (rule, reference, rvm) = self.rules.as_ref()?.first_difference(input)?;
        Some(Disagreement {
            rule,
            input: json(),
            interpreter: render(&reference),
            rvm: render(&rvm),
        })
    }
}

fn render(result: &Result<Value, String>) -> String {
    match result {
        Ok(Value::Undefined) => "undefined".to_owned(),
        Ok(value) => value.to_string(),
        Err(err) => format!(
            "error ({})",
            err.lines()
                .find(|l| l.trim_start().starts_with("error:"))
                .unwrap_or_else(|| err.lines().next().unwrap_or(""))
                .trim()
        ),
    }
}

/// The non-function rules of the policy modules, by package.
fn rules_by_package(parsed: &[Parsed]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for module in parsed.iter().filter(|m| !m.path.ends_with("_test.rego")) {
        let names = module
            .rules
            .iter()
            .filter(|d| d.kind != analysis::HeadKind::Function)
            .map(|d| d.name.clone());
        match out.iter_mut().find(|(p, _)| *p == module.package) {
            Some((_, list)) => list.extend(names),
            None => out.push((module.package.clone(), names.collect())),
        }
    }
    for (_, names) in &mut out {
        names.sort();
        names.dedup();
    }
    out
}

/// Why the RVM may never run this bundle, if it may not.
fn rvm_eligible(parsed: &[Parsed]) -> Result<(), String> {
    let policy: Vec<Parsed> = parsed
        .iter()
        .filter(|m| !m.path.ends_with("_test.rego"))
        .cloned()
        .collect();
    match analysis::conflict_risks(&policy).first() {
        Some(risk) => Err(format!(
            "{risk}; the RVM would read a clash as undefined where OPA raises a conflict"
        )),
        None => Ok(()),
    }
}

/// The `name/arity` list the proof binds.
fn builtin_signature() -> String {
    crate::builtins::all()
        .iter()
        .map(|b| format!("{}/{}", b.name, b.arity))
        .collect::<Vec<_>>()
        .join(",")
}

/// Replays the tests' decisions, a generated corpus and any recorded inputs on both
/// engines. The report carries a proof only when they agreed on every input.
pub fn prove(bundle: &Bundle, options: &ProofOptions) -> Result<ProofReport, PolicyError> {
    let started = Instant::now();
    let parsed = analysis::parse_bundle(bundle, true)?;
    let mut report = ProofReport::not_proved(String::new());
    report.interpreter_only = None;
    let tests = testing::run_tests_with(bundle, &TestOptions::default())?;
    let generated = corpus(bundle, &parsed, options.generated, options.seed);
    report.reviewer_groups = reviewer_groups(
        bundle,
        tests.decided_inputs.iter().cloned().chain(
            generated
                .iter()
                .take(RULE_PROBE_INPUTS)
                .map(|i| Value::from(i.clone())),
        ),
    );
    let pair = match EnginePair::for_bundle(bundle, &parsed) {
        Ok(pair) => pair,
        Err(why) => {
            report.interpreter_only = Some(why);
            report.elapsed = started.elapsed();
            return Ok(report);
        }
    };
    report.test_decisions = tests.engines.decisions;
    report
        .disagreements
        .extend(tests.results.iter().filter_map(|r| r.disagreement.clone()));
    report.generated = generated.len();
    report.recorded = options.recorded.len();
    let replay = options.recorded.iter().chain(generated.iter());
    for (index, input) in replay.enumerate() {
        if report.disagreements.len() >= MAX_REPORTED {
            break;
        }
        let rules = index < options.recorded.len() + RULE_PROBE_INPUTS;
        if let Some(d) = pair.compare_with(&Value::from(input.clone()), rules) {
            report.disagreements.push(d);
        }
    }
    if report.disagreements.is_empty() {
        report.proof = Some(EngineProof {
            engine: Backend::Vm.as_str().to_owned(),
            regorus: REGORUS_VERSION.to_owned(),
            builtins: builtin_signature(),
            content: bundle.digest.clone(),
            test_decisions: report.test_decisions,
            generated: report.generated,
            recorded: report.recorded,
            seed: options.seed,
        });
    } else {
        report.interpreter_only = Some(format!(
            "the RVM disagrees with the interpreter on {} input(s); first: {}",
            report.disagreements.len(),
            report.disagreements[0].summary()
        ));
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The reviewer groups `bundle`'s decisions ask for, on the inputs its Rego tests
/// decide and a small generated corpus (what `airlock dev` creates reviewers for).
pub fn reviewer_groups_of(
    bundle: &Bundle,
) -> Result<std::collections::BTreeSet<String>, PolicyError> {
    let parsed = analysis::parse_bundle(bundle, false)?;
    let tests = testing::run_tests_with(
        bundle,
        &TestOptions {
            compare_engines: false,
            ..TestOptions::default()
        },
    )?;
    let generated = corpus(
        bundle,
        &parsed,
        RULE_PROBE_INPUTS,
        ProofOptions::default().seed,
    );
    Ok(reviewer_groups(
        bundle,
        tests
            .decided_inputs
            .into_iter()
            .chain(generated.into_iter().map(Value::from)),
    ))
}

/// The reviewer groups `bundle`'s decisions ask for on `inputs` (interpreter).
fn reviewer_groups(
    bundle: &Bundle,
    inputs: impl Iterator<Item = Value>,
) -> std::collections::BTreeSet<String> {
    let Ok(mut policy) = CompiledPolicy::compile_with(bundle, Backend::Interpreter) else {
        return Default::default();
    };
    policy.set_eval_timeout(COMPARE_TIMEOUT);
    let mut groups = std::collections::BTreeSet::new();
    for input in inputs {
        if let Ok(value) = policy.raw_value(input) {
            let decision = crate::engine::to_decision(&value);
            if let Some(approval) = decision.approval {
                groups.extend(approval.reviewers);
            }
        }
    }
    groups
}

/// The inputs a proof of `bundle` replays with this seed (generated from its data,
/// its Rego's field names and literals, and the input contract).
pub fn generated_inputs(
    bundle: &Bundle,
    count: usize,
    seed: u64,
) -> Result<Vec<serde_json::Value>, PolicyError> {
    let parsed = analysis::parse_bundle(bundle, false)?;
    Ok(corpus(bundle, &parsed, count, seed))
}

fn corpus(bundle: &Bundle, parsed: &[Parsed], count: usize, seed: u64) -> Vec<serde_json::Value> {
    let mut words = analysis::Vocabulary::default();
    for module in parsed.iter().filter(|m| !m.path.ends_with("_test.rego")) {
        words
            .fields
            .extend(module.vocabulary.fields.iter().cloned());
        words
            .strings
            .extend(module.vocabulary.strings.iter().cloned());
        words
            .input_paths
            .extend(module.vocabulary.input_paths.iter().cloned());
    }
    crate::corpus::generate(bundle, &words, count, seed)
}

/// The engine a node uses for `bundle`: the RVM only with a valid proof (see the
/// module docs), else the interpreter, with the reason either way.
pub fn choose(bundle: &Bundle) -> EngineChoice {
    let interpreter = |reason: String| EngineChoice {
        backend: Backend::Interpreter,
        reason,
    };
    let Some(raw) = &bundle.engine_proof else {
        return interpreter(
            "the bundle carries no engine proof (`airlock bundle build` adds one when the RVM agrees with the interpreter)".to_owned(),
        );
    };
    let proof: EngineProof = match serde_json::from_value(raw.clone()) {
        Ok(proof) => proof,
        Err(err) => return interpreter(format!("the bundle's engine proof is malformed ({err})")),
    };
    let problem = if proof.engine != Backend::Vm.as_str() {
        Some(format!(
            "the proof is for engine {:?}, not rvm",
            proof.engine
        ))
    } else if proof.content != bundle.digest {
        Some("the proof was made for different content (the modules or data.json changed after it was made)".to_owned())
    } else if proof.regorus != REGORUS_VERSION {
        Some(format!(
            "the proof was made with regorus {}, this node runs {REGORUS_VERSION}",
            proof.regorus
        ))
    } else if proof.builtins != builtin_signature() {
        Some("the proof was made with different airlock.* built-ins".to_owned())
    } else {
        analysis::parse_bundle(bundle, false)
            .map_err(|e| e.to_string())
            .and_then(|parsed| rvm_eligible(&parsed))
            .err()
    };
    match problem {
        Some(why) => interpreter(why),
        None => EngineChoice {
            backend: Backend::Vm,
            reason: format!(
                "proved: {} test decisions, {} generated and {} recorded inputs agree with the interpreter",
                proof.test_decisions, proof.generated, proof.recorded
            ),
        },
    }
}

#[cfg(test)]
#[path = "proof_test.rs"]
mod tests;
