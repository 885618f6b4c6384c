//! Rules that depend on themselves. OPA refuses them at compile time
//! (`rego_recursion_error`); regorus 0.14 does not, and evaluating one overflows the
//! stack, which aborts the whole process (a proxy, a control plane). So a bundle
//! with a cycle is refused here, naming the cycle.
//!
//! A reference is a variable named like a rule of the same package (and not bound
//! locally), or a `data.pkg.rule` path, directly or through an import alias.

use regorus::unstable::{Expr, Literal, Module, Query, Rule, RuleHead};
use std::collections::{BTreeMap, BTreeSet};

/// Rule keys (`pkg.rule`) each rule refers to, per module.
#[derive(Debug, Clone, Default)]
pub(crate) struct References {
    /// `pkg.rule` → the rules (or paths into them) it refers to.
    pub edges: BTreeMap<String, BTreeSet<String>>,
    /// Where each rule is first defined (`file:line`).
    pub at: BTreeMap<String, String>,
}

impl References {
    /// Adds the rules of one parsed module.
    pub(super) fn add_module(&mut self, path: &str, package: &str, module: &Module) {
        let names: BTreeSet<String> = module.policy.iter().filter_map(|r| rule_name(r)).collect();
        let aliases: BTreeMap<String, String> = module
            .imports
            .iter()
            .filter_map(|i| {
                let target = i.refr.span().text().to_owned();
                let alias = match &i.r#as {
                    Some(span) => span.text().to_owned(),
                    None => target.rsplit('.').next()?.to_owned(),
                };
                target.starts_with("data.").then_some((alias, target))
            })
            .collect();
        for rule in &module.policy {
            let Some(name) = rule_name(rule) else {
                continue;
            };
            let key = format!("{package}.{name}");
            self.at
                .entry(key.clone())
                .or_insert_with(|| format!("{path}:{}", rule.span().line));
            let mut walk = Walk::default();
            walk.rule(rule);
            let targets = self.edges.entry(key).or_default();
            for var in walk.vars.difference(&walk.locals) {
                if names.contains(var) {
                    targets.insert(format!("{package}.{var}"));
                }
            }
            for path in &walk.paths {
                if let Some(target) = resolve(path, &aliases) {
                    targets.insert(target);
                }
            }
        }
    }

    /// Adds another module's references.
    pub(crate) fn merge(&mut self, other: &References) {
        for (key, targets) in &other.edges {
            self.edges
                .entry(key.clone())
                .or_default()
                .extend(targets.iter().cloned());
        }
        for (key, at) in &other.at {
            self.at.entry(key.clone()).or_insert_with(|| at.clone());
        }
    }

    /// The first cycle found, as `a -> b -> a`, with where its first rule is.
    pub(crate) fn cycle(&self) -> Option<(String, String)> {
        // A path such as `airlock.decision.verdict` refers to the rule it starts with.
        let known = |path: &String| -> Option<String> {
            let parts: Vec<&str> = path.split('.').collect();
            (2..=parts.len())
                .rev()
                .map(|n| parts[..n].join("."))
                .find(|prefix| self.at.contains_key(prefix))
        };
        let resolved = References {
            edges: self
                .edges
                .iter()
                .map(|(k, targets)| (k.clone(), targets.iter().filter_map(known).collect()))
                .collect(),
            at: self.at.clone(),
        };
        let mut done = BTreeSet::new();
        for start in resolved.edges.keys() {
            let mut stack = Vec::new();
            if let Some(cycle) = resolved.visit(start, &mut stack, &mut done) {
                let at = self.at.get(&cycle[0]).cloned().unwrap_or_default();
                return Some((cycle.join(" -> "), at));
            }
        }
        None
    }

    fn visit(
        &self,
        node: &str,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for next in self.edges.get(node).into_iter().flatten() {
            if let Some(cycle) = self.visit(next, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
}

fn rule_name(rule: &Rule) -> Option<String> {
    let refr = match rule {
        Rule::Default { refr, .. } => refr,
        Rule::Spec { head, .. } => match head {
            RuleHead::Compr { refr, .. }
            | RuleHead::Set { refr, .. }
            | RuleHead::Func { refr, .. } => refr,
        },
    };
    let mut expr = refr.as_ref();
    loop {
        match expr {
            Expr::Var { span, .. } => return Some(span.text().to_owned()),
            Expr::RefDot { refr, .. } | Expr::RefBrack { refr, .. } => expr = refr,
            _ => return None,
        }
    }
}

/// `data.pkg.rule...` (or `alias.rule...`) as `pkg.rule...`; which prefix names a
/// rule is settled once every module is known ([`References::cycle`]).
fn resolve(path: &[String], aliases: &BTreeMap<String, String>) -> Option<String> {
    let first = path.first()?;
    let full: Vec<String> = if first == "data" {
        path[1..].to_vec()
    } else {
        let target = aliases.get(first)?;
        let mut parts: Vec<String> = target.split('.').skip(1).map(str::to_owned).collect();
        parts.extend(path[1..].iter().cloned());
        parts
    };
    (full.len() >= 2).then(|| full.join("."))
}

/// Variables and dotted paths a rule mentions, and the variables it binds.
#[derive(Default)]
struct Walk {
    vars: BTreeSet<String>,
    locals: BTreeSet<String>,
    paths: Vec<Vec<String>>,
}

impl Walk {
    fn rule(&mut self, rule: &Rule) {
        match rule {
            Rule::Default { value, .. } => self.expr(value),
            Rule::Spec { head, bodies, .. } => {
                match head {
                    RuleHead::Compr { assign, .. } => {
                        if let Some(a) = assign {
                            self.expr(&a.value);
                        }
                    }
                    RuleHead::Set { key, .. } => {
                        if let Some(k) = key {
                            self.expr(k);
                        }
                    }
                    RuleHead::Func { args, assign, .. } => {
                        args.iter().for_each(|a| self.bind(a));
                        if let Some(a) = assign {
                            self.expr(&a.value);
                        }
                    }
                }
                for body in bodies {
                    if let Some(a) = &body.assign {
                        self.expr(&a.value);
                    }
                    self.query(&body.query);
                }
            }
        }
    }

    fn bind(&mut self, expr: &Expr) {
        match expr {
            Expr::Var { span, .. } => {
                self.locals.insert(span.text().to_owned());
            }
            Expr::Array { items, .. } => items.iter().for_each(|e| self.bind(e)),
            Expr::Object { fields, .. } => fields.iter().for_each(|(_, _, v)| self.bind(v)),
            _ => {}
        }
    }

    fn query(&mut self, query: &Query) {
        for stmt in &query.stmts {
            match &stmt.literal {
                Literal::SomeVars { vars, .. } => {
                    self.locals.extend(vars.iter().map(|v| v.text().to_owned()));
                }
                Literal::SomeIn {
                    key,
                    value,
                    collection,
                    ..
                } => {
                    if let Some(k) = key {
                        self.bind(k);
                    }
                    self.bind(value);
                    self.expr(collection);
                }
                Literal::Expr { expr, .. } | Literal::NotExpr { expr, .. } => {
                    if let Expr::AssignExpr { lhs, rhs, .. } = expr.as_ref() {
                        self.bind(lhs);
                        self.expr(rhs);
                    } else {
                        self.expr(expr);
                    }
                }
                Literal::Every {
                    key,
                    value,
                    domain,
                    query,
                    ..
                } => {
                    if let Some(k) = key {
                        self.locals.insert(k.text().to_owned());
                    }
                    self.locals.insert(value.text().to_owned());
                    self.expr(domain);
                    self.query(query);
                }
            }
            for with in &stmt.with_mods {
                self.expr(&with.r#as);
            }
        }
    }

    fn expr(&mut self, expr: &Expr) {
        if let Some(path) = dotted(expr) {
            if path.len() > 1 {
                self.paths.push(path.clone());
            }
            if let Some(root) = path.first() {
                self.vars.insert(root.clone());
            }
        }
        match expr {
            Expr::Var { span, .. } => {
                self.vars.insert(span.text().to_owned());
            }
            Expr::RefDot { refr, .. } => self.expr(refr),
            Expr::RefBrack { refr, index, .. } => {
                self.expr(refr);
                self.expr(index);
            }
            Expr::Array { items, .. } | Expr::Set { items, .. } => {
                items.iter().for_each(|e| self.expr(e));
            }
            Expr::Object { fields, .. } => fields.iter().for_each(|(_, k, v)| {
                self.expr(k);
                self.expr(v);
            }),
            Expr::ArrayCompr { term, query, .. } | Expr::SetCompr { term, query, .. } => {
                self.query(query);
                self.expr(term);
            }
            Expr::ObjectCompr {
                key, value, query, ..
            } => {
                self.query(query);
                self.expr(key);
                self.expr(value);
            }
            Expr::Call { fcn, params, .. } => {
                self.expr(fcn);
                params.iter().for_each(|e| self.expr(e));
            }
            Expr::UnaryExpr { expr, .. } => self.expr(expr),
            Expr::BinExpr { lhs, rhs, .. }
            | Expr::BoolExpr { lhs, rhs, .. }
            | Expr::ArithExpr { lhs, rhs, .. }
            | Expr::AssignExpr { lhs, rhs, .. } => {
                self.expr(lhs);
                self.expr(rhs);
            }
            Expr::Membership {
                key,
                value,
                collection,
                ..
            } => {
                if let Some(k) = key {
                    self.expr(k);
                }
                self.expr(value);
                self.expr(collection);
            }
            _ => {}
        }
    }
}

/// `a.b.c` (or `a["b"].c`) as its components; `None` for anything else.
fn dotted(expr: &Expr) -> Option<Vec<String>> {
    match expr {
        Expr::Var { span, .. } => Some(vec![span.text().to_owned()]),
        Expr::RefDot { refr, field, .. } => {
            let mut path = dotted(refr)?;
            path.push(field.0.text().to_owned());
            Some(path)
        }
        Expr::RefBrack { refr, index, .. } => {
            let mut path = dotted(refr)?;
            match index.as_ref() {
                Expr::String { value, .. } => path.push(value.as_string().ok()?.to_string()),
                _ => return Some(path),
            }
            Some(path)
        }
        _ => None,
    }
}
