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

/// Every `airlock.*` built-in.
pub fn all() -> &'static [Builtin] {
    &[]
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
