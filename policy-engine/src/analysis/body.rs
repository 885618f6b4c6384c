//! Facts about rule bodies: the statements of a body (for test failure details),
//! the variables they bind and mention, and whether a body iterates.

use super::{full_text, Statement};
use regorus::unstable::{Expr, Literal, Query};
use std::collections::BTreeSet;

pub(super) fn statement(stmt: &regorus::unstable::LiteralStmt) -> Statement {
    let mut binds = BTreeSet::new();
    let mut mentions = BTreeSet::new();
    let mut sides = None;
    let span = match &stmt.literal {
        Literal::SomeVars { span, vars } => {
            binds.extend(vars.iter().map(|v| v.text().to_owned()));
            span
        }
        Literal::SomeIn {
            span,
            key,
            value,
            collection,
        } => {
            if let Some(key) = key {
                collect_vars(key, &mut binds);
            }
            collect_vars(value, &mut binds);
            mentioned_vars(collection, &mut mentions);
            span
        }
        Literal::Expr { span, expr } | Literal::NotExpr { span, expr } => {
            match expr.as_ref() {
                Expr::AssignExpr { lhs, rhs, .. } => {
                    collect_vars(lhs, &mut binds);
                    mentioned_vars(rhs, &mut mentions);
                }
                Expr::BoolExpr { lhs, rhs, .. } => {
                    sides = Some((full_text(lhs.span()), full_text(rhs.span())));
                    mentioned_vars(expr, &mut mentions);
                }
                _ => mentioned_vars(expr, &mut mentions),
            }
            span
        }
        Literal::Every { span, domain, .. } => {
            mentioned_vars(domain, &mut mentions);
            span
        }
    };
    let with_text = stmt
        .with_mods
        .iter()
        .map(|w| format!(" {}", full_text(&w.span)))
        .collect::<String>();
    Statement {
        text: full_text(span),
        with_text,
        line: stmt.span.line,
        binds: binds.into_iter().collect(),
        mentions: mentions.into_iter().collect(),
        sides,
    }
}

/// Every variable an expression mentions (outside comprehensions).
fn mentioned_vars(expr: &Expr, out: &mut BTreeSet<String>) {
    match expr {
        Expr::Var { span, .. } => {
            out.insert(span.text().to_owned());
        }
        Expr::RefDot { refr, .. } | Expr::UnaryExpr { expr: refr, .. } => mentioned_vars(refr, out),
        Expr::RefBrack { refr, index, .. } => {
            mentioned_vars(refr, out);
            mentioned_vars(index, out);
        }
        Expr::Array { items, .. } | Expr::Set { items, .. } => {
            items.iter().for_each(|e| mentioned_vars(e, out));
        }
        Expr::Object { fields, .. } => fields.iter().for_each(|(_, k, v)| {
            mentioned_vars(k, out);
            mentioned_vars(v, out);
        }),
        Expr::Call { params, .. } => params.iter().for_each(|e| mentioned_vars(e, out)),
        Expr::BinExpr { lhs, rhs, .. }
        | Expr::BoolExpr { lhs, rhs, .. }
        | Expr::ArithExpr { lhs, rhs, .. }
        | Expr::AssignExpr { lhs, rhs, .. } => {
            mentioned_vars(lhs, out);
            mentioned_vars(rhs, out);
        }
        Expr::Membership {
            key,
            value,
            collection,
            ..
        } => {
            if let Some(key) = key {
                mentioned_vars(key, out);
            }
            mentioned_vars(value, out);
            mentioned_vars(collection, out);
        }
        _ => {}
    }
}

/// True when a rule body can bind its variables more than one way: a `some`
/// declaration, a `some ... in`, or a reference indexed by `_` or by a variable the
/// body has not bound before. Comprehensions and `every` do not count: their
/// iteration stays inside them.
pub(super) fn query_iterates(query: &Query, args: &BTreeSet<String>) -> bool {
    let mut bound: BTreeSet<String> = args.clone();
    for stmt in &query.stmts {
        match &stmt.literal {
            Literal::SomeVars { .. } | Literal::SomeIn { .. } => return true,
            Literal::Every { .. } => {}
            Literal::Expr { expr, .. } | Literal::NotExpr { expr, .. } => {
                if expr_iterates(expr, &bound) {
                    return true;
                }
                if let Expr::AssignExpr { lhs, .. } = expr.as_ref() {
                    collect_vars(lhs, &mut bound);
                }
            }
        }
    }
    false
}

fn expr_iterates(expr: &Expr, bound: &BTreeSet<String>) -> bool {
    match expr {
        Expr::RefBrack { refr, index, .. } => {
            let open_index = match index.as_ref() {
                Expr::Var { span, .. } => {
                    let name = span.text();
                    name == "_" || (!bound.contains(name) && !is_global_name(name))
                }
                _ => false,
            };
            open_index || expr_iterates(refr, bound) || expr_iterates(index, bound)
        }
        Expr::RefDot { refr, .. } | Expr::UnaryExpr { expr: refr, .. } => {
            expr_iterates(refr, bound)
        }
        Expr::Array { items, .. } | Expr::Set { items, .. } => {
            items.iter().any(|e| expr_iterates(e, bound))
        }
        Expr::Object { fields, .. } => fields
            .iter()
            .any(|(_, k, v)| expr_iterates(k, bound) || expr_iterates(v, bound)),
        Expr::Call { params, .. } => params.iter().any(|e| expr_iterates(e, bound)),
        Expr::BinExpr { lhs, rhs, .. }
        | Expr::BoolExpr { lhs, rhs, .. }
        | Expr::ArithExpr { lhs, rhs, .. }
        | Expr::AssignExpr { lhs, rhs, .. } => {
            expr_iterates(lhs, bound) || expr_iterates(rhs, bound)
        }
        Expr::Membership {
            value, collection, ..
        } => expr_iterates(value, bound) || expr_iterates(collection, bound),
        _ => false,
    }
}

/// Names that are never local variables in an index position.
fn is_global_name(name: &str) -> bool {
    matches!(name, "input" | "data")
}

pub(super) fn collect_vars(expr: &Expr, out: &mut BTreeSet<String>) {
    match expr {
        Expr::Var { span, .. } => {
            out.insert(span.text().to_owned());
        }
        Expr::Array { items, .. } => items.iter().for_each(|e| collect_vars(e, out)),
        Expr::Object { fields, .. } => fields.iter().for_each(|(_, _, v)| collect_vars(v, out)),
        _ => {}
    }
}
