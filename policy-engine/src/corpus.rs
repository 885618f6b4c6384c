//! Inputs generated for the engine agreement proof: documents of the policy input
//! contract filled with the bundle's own vocabulary (every string and key of its
//! `data.json`, every field name and string literal of its Rego) and with samples
//! of what agents send (SQL, URLs, paths), so that the conditions a policy tests are
//! met, nearly met and missed. Deterministic for a seed.

use crate::analysis::Vocabulary;
use crate::Bundle;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom as _;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{json, Map, Value};

/// Vocabulary entries kept from data.json.
const MAX_VOCABULARY: usize = 4_000;
/// Longest data string used as a value.
const MAX_WORD: usize = 256;

const METHODS: &[&str] = &[
    "tools/call",
    "tools/call",
    "tools/call",
    "tools/list",
    "initialize",
    "notifications/initialized",
    "notifications/cancelled",
    "ping",
    "resources/read",
    "resources/list",
    "prompts/get",
    "sampling/createMessage",
    "elicitation/create",
    "roots/list",
    "completion/complete",
];

const SAMPLES: &[&str] = &[
    "SELECT name, email FROM customers",
    "select 1",
    "DROP TABLE users",
    "drop table customers; --",
    "UPDATE orders SET status='shipped' WHERE id=7",
    "UPDATE orders SET status='--' WHERE id=0;/*x*/DROP TABLE customers",
    "DELETE FROM customers",
    "DELETE FROM customers WHERE id = 3",
    "INSERT INTO orders (id) VALUES (1)",
    "REPLACE INTO orders (id) VALUES (1)",
    "PRAGMA table_info(customers)",
    "ATTACH DATABASE '/tmp/x.db' AS x",
    "VACUUM",
    "BEGIN; DELETE FROM orders; COMMIT",
    "/* c */ TRUNCATE t",
    "-- x\nALTER TABLE t ADD COLUMN c int",
    "SELECT content FROM files WHERE path='/app/.env'",
    "WITH x AS (SELECT * FROM customers) SELECT * FROM x",
    "not sql at all",
    "https://api.github.com/repos/x/y",
    "https://api.github.com\\@evil.com/x",
    "http://user:pass@pypi.org/simple",
    "https://evil.example/x",
    "https://API.GITHUB.COM./",
    "ftp://files.pythonhosted.org/x",
    "https://[::1]:8080/",
    "http://127.0.0.1/",
    "http://0x7f.1/",
    "/app/data/report.csv",
    "/app/.env",
    "/etc/passwd",
    "../../etc/shadow",
    "/app//x/./y",
    "/app/%2e%2e/etc/passwd",
    "~/.ssh/id_rsa",
    "",
    " ",
    "prod",
    "dev",
    "staging",
];

/// What inputs are made of.
struct Words {
    /// Every string of data.json, the policy's literals, and the samples.
    all: Vec<String>,
    /// The keys of data.json's objects: what lookups like
    /// `data.classes[input.tool.name]` find.
    data_keys: Vec<String>,
    /// Field names the policy reads (argument names, label keys, ...).
    fields: Vec<String>,
    /// String literals the policy compares with.
    literals: Vec<String>,
    /// Keys the policy reads under each object of the input it looks into
    /// (`["tool", "arguments"]` → `["sql", ...]`).
    keys_under: std::collections::BTreeMap<Vec<String>, Vec<String>>,
}

impl Words {
    fn new(bundle: &Bundle, policy: &Vocabulary) -> Words {
        let mut data_keys = object_keys(&bundle.data);
        data_keys.sort();
        data_keys.dedup();
        let mut all = vocabulary(&bundle.data);
        all.extend(SAMPLES.iter().map(|s| (*s).to_owned()));
        all.extend(policy.strings.iter().cloned());
        all.sort();
        all.dedup();
        let mut keys_under: std::collections::BTreeMap<Vec<String>, Vec<String>> =
            std::collections::BTreeMap::new();
        for path in &policy.input_paths {
            if let Some((last, parent)) = path.split_last() {
                keys_under
                    .entry(parent.to_vec())
                    .or_default()
                    .push(last.clone());
            }
        }
        Words {
            all,
            data_keys,
            fields: policy.fields.iter().cloned().collect(),
            literals: policy.strings.iter().cloned().collect(),
            keys_under,
        }
    }

    /// The keys the policy reads under `parent` (an input path).
    fn read_under(&self, parent: &[&str]) -> &[String] {
        let parent: Vec<String> = parent.iter().map(|s| (*s).to_owned()).collect();
        self.keys_under.get(&parent).map_or(&[], Vec::as_slice)
    }

    /// An object with each key the policy reads under `parent` present half the
    /// time, plus up to `extra` other keys.
    fn object(
        &self,
        rng: &mut StdRng,
        parent: &[&str],
        extra: usize,
        value: fn(&Words, &mut StdRng) -> Value,
    ) -> Map<String, Value> {
        let mut map = Map::new();
        for key in self.read_under(parent) {
            if rng.random_bool(0.5) {
                map.insert(key.clone(), value(self, rng));
            }
        }
        for _ in 0..rng.random_range(0..=extra) {
            map.insert(self.key(rng), value(self, rng));
        }
        map
    }

    /// A word, often one the policy itself names.
    fn any(&self, rng: &mut StdRng) -> String {
        let roll: f64 = rng.random();
        if !self.literals.is_empty() && roll < 0.4 {
            return pick(rng, &self.literals).to_owned();
        }
        if !self.data_keys.is_empty() && roll < 0.65 {
            return pick(rng, &self.data_keys).to_owned();
        }
        pick(rng, &self.all).to_owned()
    }

    /// A key: mostly a field name the policy reads.
    fn key(&self, rng: &mut StdRng) -> String {
        if !self.fields.is_empty() && rng.random_bool(0.7) {
            return pick(rng, &self.fields).to_owned();
        }
        self.any(rng)
    }

    /// A text value: a word, a word inside other text, a case variant.
    fn text(&self, rng: &mut StdRng) -> String {
        let word = self.any(rng);
        match rng.random_range(0..8) {
            0 => word.to_uppercase(),
            1 => format!("{} {word}", pick(rng, &self.all)),
            2 => format!("{word}; {}", pick(rng, &self.all)),
            3 => format!("{word} TABLE {}", pick(rng, &self.all)),
            _ => word,
        }
    }
}

/// `count` input documents for `bundle` (whose policy modules read `policy`), the
/// same for the same seed.
pub(crate) fn generate(
    bundle: &Bundle,
    policy: &Vocabulary,
    count: usize,
    seed: u64,
) -> Vec<Value> {
    let words = Words::new(bundle, policy);
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count).map(|_| document(&mut rng, &words)).collect()
}

/// Every string value and object key in `data`, bounded.
fn vocabulary(data: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![data];
    while let Some(value) = stack.pop() {
        if out.len() >= MAX_VOCABULARY {
            break;
        }
        match value {
            Value::String(s) if s.len() <= MAX_WORD => out.push(s.clone()),
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => {
                for (key, item) in map {
                    if key.len() <= MAX_WORD {
                        out.push(key.clone());
                    }
                    stack.push(item);
                }
            }
            _ => {}
        }
    }
    out
}

/// Every object key in `data`, bounded.
fn object_keys(data: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![data];
    while let Some(value) = stack.pop() {
        if out.len() >= MAX_VOCABULARY {
            break;
        }
        match value {
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => {
                out.extend(map.keys().filter(|k| k.len() <= MAX_WORD).cloned());
                stack.extend(map.values());
            }
            _ => {}
        }
    }
    out
}

fn pick<'a>(rng: &mut StdRng, words: &'a [String]) -> &'a str {
    words.choose(rng).map_or("", String::as_str)
}

fn document(rng: &mut StdRng, words: &Words) -> Value {
    let method = METHODS.choose(rng).copied().unwrap_or("tools/call");
    let listing = method == "tools/list" || rng.random_bool(0.1);
    let tool_name = tool_name(rng, words);
    let arguments = if listing {
        json!({})
    } else {
        arguments(rng, words)
    };
    let mut doc = Map::new();
    doc.insert("identity".into(), identity(rng, words));
    doc.insert("server".into(), server(rng, words));
    let direction = if rng.random_bool(0.85) {
        "client_to_server"
    } else {
        "server_to_client"
    };
    doc.insert("direction".into(), json!(direction));
    let mut params = json!({"name": tool_name.clone(), "arguments": arguments.clone()});
    if rng.random_bool(0.1) {
        params = json!({});
    }
    doc.insert(
        "message".into(),
        json!({"method": method, "id": rng.random_range(0..100), "params": params}),
    );
    let tool_call = method == "tools/call" || listing;
    if tool_call && rng.random_bool(0.95) {
        doc.insert(
            "tool".into(),
            json!({"name": tool_name, "arguments": arguments}),
        );
    }
    doc.insert(
        "session".into(),
        json!({"id": format!("s{}", rng.random_range(0..5)), "calls": rng.random_range(0..50)}),
    );
    doc.insert("time".into(), json!({"unix_ms": 1_764_000_000_000_u64}));
    if listing {
        doc.insert("listing".into(), json!(true));
    } else if rng.random_bool(0.5) {
        doc.insert("listing".into(), json!(false));
    }
    Value::Object(doc)
}

fn tool_name(rng: &mut StdRng, words: &Words) -> Value {
    match rng.random_range(0..20) {
        0 => Value::Null,
        1 => json!(42),
        2 => json!(""),
        _ => json!(words.any(rng)),
    }
}

fn identity(rng: &mut StdRng, words: &Words) -> Value {
    // Each literal the policy names is one of the groups a quarter of the time.
    let mut groups: Vec<String> = words
        .literals
        .iter()
        .filter(|_| rng.random_bool(0.25))
        .cloned()
        .collect();
    groups.extend((0..rng.random_range(0..3)).map(|_| words.any(rng)));
    let kind = ["agent", "user", "service"]
        .choose(rng)
        .copied()
        .unwrap_or("agent");
    let subject = if rng.random_bool(0.5) {
        "agent-7".to_owned()
    } else {
        words.any(rng)
    };
    let claims = words.object(rng, &["identity", "claims"], 1, |w, r| json!(w.any(r)));
    json!({"subject": subject, "groups": groups, "kind": kind, "claims": claims})
}

fn server(rng: &mut StdRng, words: &Words) -> Value {
    let mut labels = words.object(rng, &["server", "labels"], 2, |w, r| json!(w.any(r)));
    if rng.random_bool(0.5) {
        labels.insert("env".into(), json!(words.any(rng)));
    }
    json!({"name": words.any(rng), "labels": labels})
}

fn arguments(rng: &mut StdRng, words: &Words) -> Value {
    Value::Object(words.object(rng, &["tool", "arguments"], 2, argument))
}

fn argument(words: &Words, rng: &mut StdRng) -> Value {
    match rng.random_range(0..14) {
        0 => json!(rng.random_range(-5..100_000)),
        1 => json!(rng.random_bool(0.5)),
        2 => Value::Null,
        3 => json!([words.any(rng), words.any(rng)]),
        4 => json!({words.key(rng): words.text(rng)}),
        5 => json!([]),
        _ => json!(words.text(rng)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_corpus_is_deterministic_and_uses_the_bundle_vocabulary() {
        let bundle = Bundle::from_parts(
            vec![crate::Module {
                path: "a.rego".into(),
                source: "package airlock\n".into(),
            }],
            json!({"classes": {"frobnicate": "write"}}),
        );
        let mut policy = Vocabulary::default();
        policy.fields.insert("tier".into());
        policy.strings.insert("gold".into());
        let a = generate(&bundle, &policy, 300, 7);
        assert_eq!(a, generate(&bundle, &policy, 300, 7));
        assert_ne!(a, generate(&bundle, &policy, 300, 8));
        let text = serde_json::to_string(&a).unwrap();
        assert!(text.contains("frobnicate"));
        assert!(
            text.contains("\"tier\":\"gold\""),
            "the policy's own words meet"
        );
        assert!(a.iter().any(|d| d["message"]["method"] == "tools/call"));
        assert!(a.iter().any(|d| d.get("tool").is_none()));
    }
}
