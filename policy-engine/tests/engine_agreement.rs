//! The agreement proof is only as good as its corpus. This generates policies from a
//! grammar of Rego shapes (`else` chains, functions with `else`, partial sets and
//! objects, `some ... in`, `every`, defaults, clashing definitions), lets
//! `proof::prove` decide whether each may run on the RVM, then decides a fresh set
//! of inputs (another seed, plus hand-made edge inputs) on both engines: a bundle
//! marked RVM-safe on which the engines disagree fails the test.
//!
//! Deterministic: policy `i` comes from seed `i`. `AIRLOCK_DIFF_CASES=N` checks N
//! policies (default 48).

use airlock_policy::proof::{prove, ProofOptions};
use airlock_policy::{Backend, Bundle, CompiledPolicy, Module};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom as _;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{json, Value};
use std::time::Duration;

const TOOLS: &[&str] = &["query", "execute", "http_request", "read_file", "other"];
const ENVS: &[&str] = &["prod", "dev", "staging"];
const GROUPS: &[&str] = &["dba", "readonly", "automation"];
const FIELDS: &[&str] = &["sql", "url", "path", "mode"];
const WORDS: &[&str] = &["drop", "select", "http", "etc", "safe"];

struct Grammar {
    rng: StdRng,
    rules: Vec<String>,
    /// Names of rules with a scalar value, to use in conditions.
    scalars: Vec<String>,
    /// Names of partial set rules.
    sets: Vec<String>,
}

impl Grammar {
    fn new(seed: u64) -> Grammar {
        Grammar {
            rng: StdRng::seed_from_u64(seed),
            rules: Vec::new(),
            scalars: Vec::new(),
            sets: Vec::new(),
        }
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from.choose(&mut self.rng).copied().unwrap_or("x")
    }

    fn lit(&mut self) -> String {
        let from = match self.rng.random_range(0..4) {
            0 => TOOLS,
            1 => ENVS,
            2 => GROUPS,
            _ => WORDS,
        };
        format!("\"{}\"", self.pick(from))
    }

    /// A condition over the input, data and earlier rules.
    fn cond(&mut self, depth: u32) -> String {
        let choice = self.rng.random_range(0..if depth > 1 { 8 } else { 11 });
        match choice {
            0 => format!("input.tool.name == \"{}\"", self.pick(TOOLS)),
            1 => format!("input.server.labels.env == \"{}\"", self.pick(ENVS)),
            2 => format!("\"{}\" in input.identity.groups", self.pick(GROUPS)),
            3 => format!(
                "contains(lower(input.tool.arguments.{}), \"{}\")",
                self.pick(FIELDS),
                self.pick(WORDS)
            ),
            4 => "data.classes[input.tool.name] == \"write\"".to_owned(),
            5 => format!(
                "input.server.labels.{}",
                self.pick(&["tier", "env", "team"])
            ),
            6 => "input.listing".to_owned(),
            7 => format!(
                "count(input.tool.arguments) > {}",
                self.rng.random_range(0..3)
            ),
            8 => format!("not {}", self.cond(depth + 1)),
            9 if !self.scalars.is_empty() => {
                let r = self
                    .scalars
                    .choose(&mut self.rng)
                    .cloned()
                    .unwrap_or_default();
                format!("{r} == {}", self.lit())
            }
            _ if !self.sets.is_empty() => {
                let s = self.sets.choose(&mut self.rng).cloned().unwrap_or_default();
                format!("count({s}) > 0")
            }
            _ => self.cond(depth + 1),
        }
    }

    fn body(&mut self) -> String {
        let n = self.rng.random_range(1..3);
        (0..n).map(|_| self.cond(0)).collect::<Vec<_>>().join("; ")
    }

    /// One helper rule of a random shape.
    fn rule(&mut self, i: usize) -> String {
        let name = format!("r{i}");
        let rule = match self.rng.random_range(0..10) {
            0 => {
                let (a, b, c) = (self.lit(), self.lit(), self.lit());
                let (x, y) = (self.body(), self.body());
                format!("{name} := {a} if {{ {x} }} else := {b} if {{ {y} }} else := {c}")
            }
            1 => format!(
                "{name} := v if {{ v := input.server.labels.{} }} else := \"none\"",
                self.pick(&["tier", "env", "team"])
            ),
            2 => format!("{name} := x if {{ some x in data.empty }} else := \"none\""),
            3 => {
                let f = format!("f{i}");
                self.rules.push(format!(
                    "{f}(n) := c if {{ c := data.classes[n] }} else := \"unknown\""
                ));
                format!("{name} := {f}(input.tool.name)")
            }
            4 => {
                let (a, b) = (self.lit(), self.lit());
                let (x, y) = (self.body(), self.body());
                self.sets.push(name.clone());
                format!("{name} contains {a} if {{ {x} }}\n\n{name} contains {b} if {{ {y} }}")
            }
            5 => {
                self.sets.push(name.clone());
                format!("{name} contains g if {{ some g in input.identity.groups; data.privileged[g] }}")
            }
            6 => {
                let cond = self.body();
                format!(
                    "{name} := \"all\" if {{ every g in input.identity.groups {{ g != \"readonly\" }}; {cond} }}"
                )
            }
            7 => {
                let (a, b) = (self.lit(), self.lit());
                let x = self.body();
                format!("default {name} := {a}\n\n{name} := {b} if {{ {x} }}")
            }
            8 => {
                // Clashing definitions: never RVM-safe.
                let (a, b) = (self.lit(), self.lit());
                let (x, y) = (self.body(), self.body());
                format!("{name} := {a} if {{ {x} }}\n\n{name} := {b} if {{ {y} }}")
            }
            _ => format!("{name} := k if {{ some k, v in data.classes; v == \"write\"; k == input.tool.name }}"),
        };
        if !rule.contains(" contains ") {
            self.scalars.push(name);
        }
        rule
    }

    fn policy(&mut self) -> String {
        let n = self.rng.random_range(2..6);
        for i in 0..n {
            let rule = self.rule(i);
            self.rules.push(rule);
        }
        let deny = self.body();
        let reasons: Vec<String> = self
            .scalars
            .iter()
            .take(2)
            .map(|s| format!("sprintf(\"%v\", [{s}])"))
            .collect();
        let reasons = if reasons.is_empty() {
            "\"x\"".to_owned()
        } else {
            reasons.join(", ")
        };
        let default = if self.rng.random_bool(0.7) {
            "default decision := {\"verdict\": \"allow\", \"reasons\": [\"default\"]}\n\n"
        } else {
            ""
        };
        format!(
            "package airlock\n\nimport rego.v1\n\n{default}{}\n\n\
             decision := {{\"verdict\": \"deny\", \"reasons\": [{reasons}]}} if {{ {deny} }}\n",
            self.rules.join("\n\n")
        )
    }
}

fn data() -> Value {
    json!({
        "classes": {"query": "read", "execute": "write", "http_request": "egress"},
        "privileged": {"dba": true},
        "empty": [],
    })
}

/// Edge inputs the random corpus may miss: empty, no tool, no labels.
fn edge_inputs() -> Vec<Value> {
    let mut out = vec![
        json!({}),
        json!({"tool": {"name": "execute", "arguments": {}}}),
    ];
    for tool in TOOLS {
        for env in ENVS {
            out.push(json!({
                "identity": {"subject": "a", "groups": ["readonly", "dba"], "kind": "agent", "claims": {}},
                "server": {"name": "s", "labels": {"env": env}},
                "direction": "client_to_server",
                "message": {"method": "tools/call", "params": {}},
                "tool": {"name": tool, "arguments": {"sql": "DROP TABLE t", "path": "/etc/x"}},
            }));
        }
    }
    out
}

fn raw(policy: &CompiledPolicy, input: &Value) -> String {
    // Compare decisions: both engines go through the same decision checks. No
    // decision (an error or undefined) is a deny either way; the reason may differ.
    let decision = policy.decide_value(input);
    if matches!(decision.reasons.as_slice(), [r] if r == "policy.error" || r == "policy.undefined")
    {
        return "no decision (deny)".to_owned();
    }
    serde_json::to_string(&decision).unwrap_or_default()
}

#[test]
fn bundles_proved_for_the_rvm_agree_with_the_interpreter_on_fresh_inputs() {
    let cases: u64 = std::env::var("AIRLOCK_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48);
    let (mut proved, mut refused, mut failures) = (0, 0, Vec::new());
    for seed in 0..cases {
        let source = Grammar::new(seed).policy();
        let bundle = Bundle::from_parts(
            vec![Module {
                path: "airlock.rego".into(),
                source: source.clone(),
            }],
            data(),
        );
        // A grammar slip the interpreter refuses is not what this test is about.
        let Ok(report) = prove(&bundle, &ProofOptions::default()) else {
            continue;
        };
        if report.proof.is_none() {
            refused += 1;
            continue;
        }
        proved += 1;
        let compile = |backend| {
            let mut p = CompiledPolicy::compile_with(&bundle, backend).unwrap();
            p.set_eval_timeout(Duration::from_secs(10));
            p
        };
        let (interpreter, rvm) = (compile(Backend::Interpreter), compile(Backend::Vm));
        let fresh = airlock_policy::proof::generated_inputs(&bundle, 1_000, 0xF0E5 + seed).unwrap();
        for input in fresh.iter().chain(edge_inputs().iter()) {
            let (a, b) = (raw(&interpreter, input), raw(&rvm, input));
            if a != b {
                failures.push(format!(
                    "seed {seed}: proved, yet on {input}\n  interpreter: {a}\n  rvm:         {b}\n{source}"
                ));
                break;
            }
        }
    }
    eprintln!("{proved} policies proved for the RVM, {refused} kept on the interpreter");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(
        proved > 0 && refused > 0,
        "the grammar should produce both kinds ({proved}, {refused})"
    );
}
