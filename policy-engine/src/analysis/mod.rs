//! What the policy engine learns from a bundle's syntax tree (regorus's parser):
//! rules whose definitions can produce more than one value (which the RVM does not
//! report as a conflict), rule definitions with their source (for explanations), and
//! where the decision rule's names are (to watch what the Rego tests decide).

mod body;
mod recursion;
mod vocabulary;

pub(crate) use recursion::References;
pub(crate) use vocabulary::Vocabulary;

use crate::{Bundle, Module, PolicyError};
use body::{collect_vars, query_iterates, statement};
use regorus::unstable::{Expr, Parser, Rule, RuleHead, Source};
use std::collections::{BTreeMap, BTreeSet};

/// A parsed module with the facts later stages need.
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    /// The module's path in the bundle.
    pub path: String,
    /// The package, e.g. `airlock` (without `data.`).
    pub package: String,
    /// The source text of the `package` line and every import, to open a module
    /// that resolves names the same way.
    pub preamble: String,
    /// Every rule definition, in source order.
    pub rules: Vec<Definition>,
    /// The field names and string literals the module uses.
    pub vocabulary: Vocabulary,
    /// Which rules each of its rules refers to.
    pub references: References,
}

/// One rule definition (`default`, complete, partial set or object, function).
#[derive(Debug, Clone)]
pub(crate) struct Definition {
    /// The rule's name (the first component of its head).
    pub name: String,
    /// What kind of head it has.
    pub kind: HeadKind,
    /// 1-based line of the head.
    pub line: u32,
    /// Byte range of the name in the module source.
    pub name_span: (usize, usize),
    /// The whole definition's source text (head, bodies, `else` chain).
    pub text: String,
    /// Byte offset of `text` in the module source.
    pub start: usize,
    /// The head's value when it is a literal constant (`true` for `x if ...`).
    pub constant_value: Option<String>,
    /// True when a body binds variables by iteration (`some`, `_`, an unbound index),
    /// so a single definition may produce several values.
    pub iterates: bool,
    /// The statements of the first body (to show which one failed in a test).
    pub statements: Vec<Statement>,
}

/// One statement of a rule body.
#[derive(Debug, Clone)]
pub(crate) struct Statement {
    /// Its source text, without `with` modifiers.
    pub text: String,
    /// Its `with` modifiers' source text (` with input as x ...`), or empty.
    pub with_text: String,
    /// 1-based line.
    pub line: u32,
    /// Variables it binds (`x := ...`, `some x`, `some x in ...`).
    pub binds: Vec<String>,
    /// Variables it mentions.
    pub mentions: Vec<String>,
    /// For a comparison (`a == b`, `a != b`, `a < b`, ...), the two sides' text.
    pub sides: Option<(String, String)>,
}

/// The shape of a rule head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeadKind {
    /// `default x := v`.
    Default,
    /// `x := v if ...`, `x if ...`.
    Complete,
    /// `x contains v if ...`.
    Set,
    /// `x[k] := v if ...`.
    Object,
    /// `f(a) := v if ...`.
    Function,
}

/// A rule the RVM may evaluate differently from the interpreter because two of its
/// values could clash (OPA: a conflict error; regorus's RVM: undefined).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictRisk {
    /// `package.rule`.
    pub rule: String,
    /// `file:line` of each definition involved.
    pub at: Vec<String>,
    /// Why it may clash, in words.
    pub why: String,
}

impl std::fmt::Display for ConflictRisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rule `{}` ({}): {}",
            self.rule,
            self.at.join(", "),
            self.why
        )
    }
}

/// Parses every module of the bundle (tests included when `with_tests`) and
/// refuses rules that depend on themselves.
pub(crate) fn parse_bundle(bundle: &Bundle, with_tests: bool) -> Result<Vec<Parsed>, PolicyError> {
    let parsed: Vec<Parsed> = bundle
        .modules
        .iter()
        .filter(|m| with_tests || !m.is_test())
        .map(parse_module)
        .collect::<Result<_, _>>()?;
    let mut all = References::default();
    parsed.iter().for_each(|m| all.merge(&m.references));
    if let Some((cycle, at)) = all.cycle() {
        let (file, line) = at.rsplit_once(':').unwrap_or((at.as_str(), "0"));
        return Err(PolicyError::Compile {
            file: file.to_owned(),
            line: line.parse().unwrap_or(0),
            message: format!(
                "recursion: {cycle}; a rule may not depend on itself (OPA: rego_recursion_error). \
                 Compute the value from other rules or data instead"
            ),
        });
    }
    Ok(parsed)
}

fn parse_module(module: &Module) -> Result<Parsed, PolicyError> {
    let source = Source::from_contents(module.path.clone(), module.source.clone())
        .map_err(|e| PolicyError::from_regorus(&module.path, &e))?;
    let mut parser =
        Parser::new(&source).map_err(|e| PolicyError::from_regorus(&module.path, &e))?;
    // As the engine reads it: Rego v1 unless the module says otherwise.
    parser
        .enable_rego_v1()
        .map_err(|e| PolicyError::from_regorus(&module.path, &e))?;
    let parsed = parser
        .parse()
        .map_err(|e| PolicyError::from_regorus(&module.path, &e))?;
    let package = parsed
        .package
        .refr
        .span()
        .text()
        .trim_start_matches("data.")
        .to_owned();
    let mut preamble = parsed.package.span.text().to_owned();
    for import in &parsed.imports {
        preamble.push('\n');
        preamble.push_str(import.span.text());
    }
    preamble.push('\n');
    let rules = parsed.policy.iter().filter_map(|r| definition(r)).collect();
    let mut vocabulary = Vocabulary::default();
    parsed.policy.iter().for_each(|r| vocabulary.add_rule(r));
    let mut references = References::default();
    references.add_module(&module.path, &package, &parsed);
    Ok(Parsed {
        path: module.path.clone(),
        package,
        preamble,
        rules,
        vocabulary,
        references,
    })
}

fn definition(rule: &Rule) -> Option<Definition> {
    let statements = match rule {
        Rule::Spec { bodies, .. } => bodies
            .first()
            .map(|b| b.query.stmts.iter().map(statement).collect())
            .unwrap_or_default(),
        Rule::Default { .. } => Vec::new(),
    };
    let (kind, refr, constant_value, iterates) = match rule {
        Rule::Default { refr, value, .. } => (HeadKind::Default, refr, literal(value), false),
        Rule::Spec { head, bodies, .. } => {
            let mut args = BTreeSet::new();
            if let RuleHead::Func { args: params, .. } = head {
                params.iter().for_each(|p| collect_vars(p, &mut args));
            }
            let iterates = bodies.iter().any(|b| query_iterates(&b.query, &args));
            match head {
                RuleHead::Compr { refr, assign, .. } => {
                    let kind = if matches!(refr.as_ref(), Expr::RefBrack { .. }) {
                        HeadKind::Object
                    } else {
                        HeadKind::Complete
                    };
                    let constant = match assign {
                        Some(a) => literal(&a.value),
                        None => Some("true".to_owned()),
                    };
                    // Every `else` value must be the same constant too.
                    let constant = constant.filter(|c| {
                        bodies.iter().all(|b| match &b.assign {
                            Some(a) => literal(&a.value).as_deref() == Some(c.as_str()),
                            None => true,
                        })
                    });
                    (kind, refr, constant, iterates)
                }
                RuleHead::Set { refr, .. } => (HeadKind::Set, refr, None, iterates),
                RuleHead::Func { refr, assign, .. } => {
                    let constant = match assign {
                        Some(a) => literal(&a.value),
                        None => Some("true".to_owned()),
                    };
                    (HeadKind::Function, refr, constant, iterates)
                }
            }
        }
    };
    let root = root_var(refr)?;
    let span = root.span();
    Some(Definition {
        name: span.text().to_owned(),
        kind,
        line: rule.span().line,
        name_span: (span.start as usize, span.end as usize),
        text: full_text(rule.span()),
        start: rule.span().start as usize,
        constant_value,
        iterates,
        statements,
    })
}

/// The variable a head reference starts with (`x` in `x.y[z]`).
fn root_var(expr: &Expr) -> Option<&Expr> {
    match expr {
        Expr::Var { .. } => Some(expr),
        Expr::RefDot { refr, .. } | Expr::RefBrack { refr, .. } => root_var(refr),
        _ => None,
    }
}

/// The text of a scalar literal, for comparing definitions' values.
fn literal(expr: &Expr) -> Option<String> {
    match expr {
        Expr::String { value, .. }
        | Expr::RawString { value, .. }
        | Expr::Number { value, .. }
        | Expr::Bool { value, .. }
        | Expr::Null { value, .. } => Some(value.to_string()),
        _ => None,
    }
}

/// A span's text, with the closing quote a string literal's span leaves out when
/// the span ends with one (regorus's string spans exclude their quotes).
fn full_text(span: &regorus::unstable::Span) -> String {
    let source = span.source.get_contents();
    let end = span.end as usize;
    let extended = match source.as_bytes().get(end) {
        Some(b'"' | b'`') => end + 1,
        _ => end,
    };
    source
        .get(span.start as usize..extended)
        .map_or_else(|| span.text().to_owned(), str::to_owned)
}

/// Rules whose definitions may produce clashing values. The RVM turns such a clash
/// into `undefined` (a `default` may then allow), where OPA and the interpreter
/// raise a conflict error; a bundle with any of them runs on the interpreter.
pub(crate) fn conflict_risks(parsed: &[Parsed]) -> Vec<ConflictRisk> {
    let mut by_rule: BTreeMap<(String, String), Vec<(&Parsed, &Definition)>> = BTreeMap::new();
    for module in parsed {
        for def in &module.rules {
            by_rule
                .entry((module.package.clone(), def.name.clone()))
                .or_default()
                .push((module, def));
        }
    }
    let mut risks = Vec::new();
    for ((package, name), defs) in by_rule {
        let at = |d: &[(&Parsed, &Definition)]| {
            d.iter()
                .map(|(m, def)| format!("{}:{}", m.path, def.line))
                .collect::<Vec<_>>()
        };
        let valued: Vec<_> = defs
            .iter()
            .copied()
            .filter(|(_, d)| d.kind != HeadKind::Default && d.kind != HeadKind::Set)
            .collect();
        let why = if valued.iter().any(|(_, d)| d.kind == HeadKind::Object) {
            Some("a partial object rule may give one key two values".to_owned())
        } else if valued.len() > 1 && !same_constant(&valued) {
            Some(format!(
                "{} definitions can produce different values",
                valued.len()
            ))
        } else {
            valued
                .iter()
                .find(|(_, d)| d.iterates && d.constant_value.is_none())
                .map(|_| "its body iterates, so it can produce more than one value".to_owned())
        };
        if let Some(why) = why {
            risks.push(ConflictRisk {
                rule: format!("{package}.{name}"),
                at: at(&valued),
                why,
            });
        }
    }
    risks
}

fn same_constant(defs: &[(&Parsed, &Definition)]) -> bool {
    let mut values = defs.iter().map(|(_, d)| d.constant_value.as_deref());
    match values.next() {
        Some(Some(first)) => values.all(|v| v == Some(first)),
        _ => false,
    }
}

/// The module's source with every head of rule `name` renamed to `to` (byte ranges
/// from the parser, so comments and strings that mention the name are untouched).
pub(crate) fn rename_rule(source: &str, parsed: &Parsed, name: &str, to: &str) -> String {
    let mut spans: Vec<(usize, usize)> = parsed
        .rules
        .iter()
        .filter(|d| d.name == name)
        .map(|d| d.name_span)
        .collect();
    spans.sort_unstable();
    let mut out = String::with_capacity(source.len() + spans.len() * to.len());
    let mut at = 0;
    for (start, end) in spans {
        if start < at || end > source.len() {
            continue;
        }
        out.push_str(source.get(at..start).unwrap_or_default());
        out.push_str(to);
        at = end;
    }
    out.push_str(source.get(at..).unwrap_or_default());
    out
}

#[cfg(test)]
#[path = "mod_test.rs"]
mod tests;
