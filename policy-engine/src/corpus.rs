//! Inputs generated for the engine agreement proof: documents of the policy input
//! contract filled with the bundle's own vocabulary (every string and key of its
//! `data.json`) and with samples of what agents send (SQL, URLs, paths), so that rules
//! keyed on the bundle's data meet both the values they look for and near misses.
//! Deterministic for a seed.

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

/// `count` input documents for `bundle`, the same for the same seed.
pub(crate) fn generate(bundle: &Bundle, count: usize, seed: u64) -> Vec<Value> {
    let mut words = vocabulary(&bundle.data);
    words.extend(SAMPLES.iter().map(|s| (*s).to_owned()));
    words.sort();
    words.dedup();
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

fn pick<'a>(rng: &mut StdRng, words: &'a [String]) -> &'a str {
    words.choose(rng).map_or("", String::as_str)
}

fn document(rng: &mut StdRng, words: &[String]) -> Value {
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

fn tool_name(rng: &mut StdRng, words: &[String]) -> Value {
    match rng.random_range(0..20) {
        0 => Value::Null,
        1 => json!(42),
        2 => json!(""),
        _ => json!(pick(rng, words)),
    }
}

fn identity(rng: &mut StdRng, words: &[String]) -> Value {
    let groups: Vec<&str> = (0..rng.random_range(0..4))
        .map(|_| pick(rng, words))
        .collect();
    let kind = ["agent", "user", "service"]
        .choose(rng)
        .copied()
        .unwrap_or("agent");
    let subject = if rng.random_bool(0.5) {
        "agent-7"
    } else {
        pick(rng, words)
    };
    json!({"subject": subject, "groups": groups, "kind": kind, "claims": {}})
}

fn server(rng: &mut StdRng, words: &[String]) -> Value {
    let mut labels = Map::new();
    if rng.random_bool(0.9) {
        labels.insert("env".into(), json!(pick(rng, words)));
    }
    for _ in 0..rng.random_range(0..3) {
        labels.insert(pick(rng, words).to_owned(), json!(pick(rng, words)));
    }
    json!({"name": pick(rng, words), "labels": labels})
}

fn arguments(rng: &mut StdRng, words: &[String]) -> Value {
    let mut args = Map::new();
    for _ in 0..rng.random_range(0..4) {
        args.insert(pick(rng, words).to_owned(), argument(rng, words));
    }
    Value::Object(args)
}

fn argument(rng: &mut StdRng, words: &[String]) -> Value {
    match rng.random_range(0..12) {
        0 => json!(rng.random_range(-5..100_000)),
        1 => json!(rng.random_bool(0.5)),
        2 => Value::Null,
        3 => json!([pick(rng, words), pick(rng, words)]),
        4 => json!({pick(rng, words): pick(rng, words)}),
        5 => json!(format!("{} {}", pick(rng, words), pick(rng, words))),
        6 => json!(pick(rng, words).to_uppercase()),
        _ => json!(pick(rng, words)),
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
        let a = generate(&bundle, 300, 7);
        assert_eq!(a, generate(&bundle, 300, 7));
        assert_ne!(a, generate(&bundle, 300, 8));
        let text = serde_json::to_string(&a).unwrap();
        assert!(text.contains("frobnicate"));
        assert!(a.iter().any(|d| d["message"]["method"] == "tools/call"));
        assert!(a.iter().any(|d| d.get("tool").is_none()));
    }
}
