//! Airlock's Rego built-ins (`airlock.*`): one registry, registered on both engines.
//!
//! The interpreter calls them as regorus extensions; the RVM compiles their calls to
//! `HostAwait` instructions and the evaluator answers each suspension from this same
//! table, so both engines run the same Rust function. Built-ins are pure and never
//! fail: bad arguments give a value that says so (`{"ok": false, "error": ...}`), so an
//! engine that turns a built-in error into `undefined` cannot disagree with one that
//! raises it, and a policy can fail closed on `ok == false`.

use regorus::Value;

/// One built-in function.
#[derive(Clone, Copy)]
pub struct Builtin {
    /// The name policies call, e.g. `airlock.sql.parse`.
    pub name: &'static str,
    /// How many arguments it takes.
    pub arity: u8,
    /// The function, over JSON values (arguments already checked for count).
    pub call: fn(&[serde_json::Value]) -> serde_json::Value,
}

impl std::fmt::Debug for Builtin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.name, self.arity)
    }
}

/// Every `airlock.*` built-in (documented in policies/README.md, "Facts").
pub fn all() -> &'static [Builtin] {
    &[
        Builtin {
            name: "airlock.sql.parse",
            arity: 2,
            call: sql_parse,
        },
        Builtin {
            name: "airlock.url.parse",
            arity: 1,
            call: url_parse,
        },
        Builtin {
            name: "airlock.path.normalize",
            arity: 1,
            call: path_normalize,
        },
    ]
}

fn text<'a>(
    args: &'a [serde_json::Value],
    index: usize,
    what: &str,
) -> Result<&'a str, serde_json::Value> {
    match args.get(index) {
        Some(serde_json::Value::String(s)) => Ok(s),
        Some(other) => Err(serde_json::json!({
            "ok": false,
            "error": format!("the {what} must be a string, not {}", kind(other)),
        })),
        None => Err(serde_json::json!({"ok": false, "error": format!("missing the {what}")})),
    }
}

fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// `airlock.sql.parse(text, dialect)`: the statements of a SQL text.
fn sql_parse(args: &[serde_json::Value]) -> serde_json::Value {
    let shape = |mut refusal: serde_json::Value| {
        // The same empty facts as an unparsable text: no statement is ever "safe".
        refusal["count"] = serde_json::json!(0);
        refusal["statements"] = serde_json::json!([]);
        refusal
    };
    match (text(args, 0, "SQL text"), text(args, 1, "dialect")) {
        (Ok(sql), Ok(dialect)) => crate::facts::sql::parse(sql, dialect),
        (Err(e), _) | (_, Err(e)) => shape(e),
    }
}

/// `airlock.url.parse(text)`: a URL as WHATWG clients read it.
fn url_parse(args: &[serde_json::Value]) -> serde_json::Value {
    match text(args, 0, "URL") {
        Ok(url) => crate::facts::url::parse(url),
        Err(mut e) => {
            e["canonical"] = serde_json::json!(false);
            e
        }
    }
}

/// `airlock.path.normalize(text)`: a path normalised lexically.
fn path_normalize(args: &[serde_json::Value]) -> serde_json::Value {
    match text(args, 0, "path") {
        Ok(path) => crate::facts::path::normalize(path),
        Err(mut e) => {
            e["was_normal"] = serde_json::json!(false);
            e
        }
    }
}

/// Calls `builtin` on regorus values: converts the arguments, checks their count,
/// converts the result back. Never fails.
pub(crate) fn invoke(builtin: &Builtin, args: &[Value]) -> Value {
    if args.len() != usize::from(builtin.arity) {
        return failure(&format!(
            "{} takes {} argument(s), got {}",
            builtin.name,
            builtin.arity,
            args.len()
        ));
    }
    let mut json = Vec::with_capacity(args.len());
    for arg in args {
        match serde_json::to_value(arg) {
            Ok(value) => json.push(value),
            Err(err) => {
                return failure(&format!(
                    "{}: an argument is not plain JSON ({err})",
                    builtin.name
                ))
            }
        }
    }
    Value::from((builtin.call)(&json))
}

/// The value every built-in returns for unusable input.
pub fn failure(message: &str) -> Value {
    Value::from(serde_json::json!({"ok": false, "error": message}))
}

/// Looks a built-in up by name in `set`.
pub(crate) fn find<'a>(set: &'a [Builtin], name: &str) -> Option<&'a Builtin> {
    set.iter().find(|b| b.name == name)
}

#[cfg(test)]
mod tests {
    use crate::{Backend, Bundle, CompiledPolicy, Module};
    use serde_json::json;

    /// Both engines call the same functions: a policy reading facts decides the same.
    #[test]
    fn the_facts_are_built_ins_on_both_engines() {
        let rego = "package airlock\n\nimport rego.v1\n\n\
            sql := airlock.sql.parse(input.sql, \"sqlite\")\n\n\
            url := airlock.url.parse(input.url)\n\n\
            path := airlock.path.normalize(input.path)\n\n\
            decision := {\"verdict\": \"allow\", \"reasons\": [\n\
              sprintf(\"%v\", [count(sql.statements)]),\n\
              sql.statements[1].kind,\n\
              url.host,\n\
              sprintf(\"%v\", [url.canonical]),\n\
              path.normalized,\n\
              sprintf(\"%v\", [airlock.sql.parse(42, \"sqlite\").ok]),\n\
            ]}\n";
        let bundle = Bundle::from_parts(
            vec![Module {
                path: "airlock.rego".into(),
                source: rego.into(),
            }],
            json!({}),
        );
        let input = json!({
            "sql": "UPDATE orders SET status='--' WHERE id=0;/*x*/DROP TABLE customers",
            "url": "https://api.github.com\\@evil.com/x",
            "path": "/app/../etc//passwd",
        });
        for backend in [Backend::Interpreter, Backend::Vm] {
            let policy = CompiledPolicy::compile_with(&bundle, backend).unwrap();
            let d = policy.decide_value(&input);
            assert_eq!(
                d.reasons,
                [
                    "2",
                    "drop",
                    "api.github.com",
                    "false",
                    "/etc/passwd",
                    "false"
                ],
                "{backend:?}: {d:?}"
            );
        }
    }
}
