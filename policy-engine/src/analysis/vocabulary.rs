//! The words a policy is written in: every field name it reads (`input.tool.
//! arguments.sql` gives `tool`, `arguments`, `sql`) and every string literal it
//! compares with. The agreement corpus ([`crate::corpus`]) fills inputs with them,
//! so that the conditions a policy tests are met, and nearly met, in the corpus.

use regorus::unstable::{Expr, Literal, Query, Rule, RuleHead};
use std::collections::BTreeSet;

/// Longest string literal kept.
const MAX_LITERAL: usize = 256;

/// Field names and string literals of one module.
#[derive(Debug, Clone, Default)]
pub(crate) struct Vocabulary {
    /// Names after a `.` or in a `["..."]` index.
    pub fields: BTreeSet<String>,
    /// String literals.
    pub strings: BTreeSet<String>,
    /// Paths the policy reads under `input` (`["tool", "arguments", "sql"]`).
    pub input_paths: BTreeSet<Vec<String>>,
}

impl Vocabulary {
    /// Adds what `rule` reads and compares with.
    pub(super) fn add_rule(&mut self, rule: &Rule) {
        match rule {
            Rule::Default { args, value, .. } => {
                args.iter().for_each(|a| self.expr(a));
                self.expr(value);
            }
            Rule::Spec { head, bodies, .. } => {
                match head {
                    RuleHead::Compr { refr, assign, .. } => {
                        self.expr(refr);
                        if let Some(a) = assign {
                            self.expr(&a.value);
                        }
                    }
                    RuleHead::Set { refr, key, .. } => {
                        self.expr(refr);
                        if let Some(k) = key {
                            self.expr(k);
                        }
                    }
                    RuleHead::Func {
                        refr, args, assign, ..
                    } => {
                        self.expr(refr);
                        args.iter().for_each(|a| self.expr(a));
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

    fn query(&mut self, query: &Query) {
        for stmt in &query.stmts {
            match &stmt.literal {
                Literal::SomeVars { .. } => {}
                Literal::SomeIn {
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
                Literal::Expr { expr, .. } | Literal::NotExpr { expr, .. } => self.expr(expr),
                Literal::Every { domain, query, .. } => {
                    self.expr(domain);
                    self.query(query);
                }
            }
            for with in &stmt.with_mods {
                self.expr(&with.refr);
                self.expr(&with.r#as);
            }
        }
    }

    fn expr(&mut self, expr: &Expr) {
        if let Some(path) = input_path(expr) {
            if !path.is_empty() {
                self.input_paths.insert(path);
            }
        }
        match expr {
            Expr::String { value, .. } | Expr::RawString { value, .. } => {
                if let Ok(s) = value.as_string() {
                    if s.len() <= MAX_LITERAL {
                        self.strings.insert(s.to_string());
                    }
                }
            }
            Expr::RefDot { refr, field, .. } => {
                self.fields.insert(field.0.text().to_owned());
                self.expr(refr);
            }
            Expr::RefBrack { refr, index, .. } => {
                if let Expr::String { value, .. } = index.as_ref() {
                    if let Ok(s) = value.as_string() {
                        self.fields.insert(s.to_string());
                    }
                }
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
                self.expr(term);
                self.query(query);
            }
            Expr::ObjectCompr {
                key, value, query, ..
            } => {
                self.expr(key);
                self.expr(value);
                self.query(query);
            }
            Expr::Call { params, .. } => params.iter().for_each(|e| self.expr(e)),
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

/// `input.a.b["c"]` as `["a", "b", "c"]`; a non-literal index ends the path.
fn input_path(expr: &Expr) -> Option<Vec<String>> {
    match expr {
        Expr::Var { span, .. } => (span.text() == "input").then(Vec::new),
        Expr::RefDot { refr, field, .. } => {
            let mut path = input_path(refr)?;
            path.push(field.0.text().to_owned());
            Some(path)
        }
        Expr::RefBrack { refr, index, .. } => {
            let mut path = input_path(refr)?;
            if let Expr::String { value, .. } = index.as_ref() {
                path.push(value.as_string().ok()?.to_string());
            }
            Some(path)
        }
        _ => None,
    }
}
