//! One parsed statement → its facts: kind, tables read and written, schemas, functions.
//!
//! The kind and the written targets come from the statement's own shape
//! ([`classify`]); the tables read come from a walk of the whole tree (every relation
//! name at any depth), less the names of CTEs in scope. Statements nested inside the
//! statement (trigger bodies, data-changing CTEs, EXPLAIN's subject) add their targets
//! to `writes`, so nothing a statement changes hides in a subtree.

use serde_json::{json, Value};
use sqlparser::ast::{
    AlterTableOperation, CopySource, Expr, FromTable, ObjectName, OnConflictAction, OnInsert,
    Query, RenameTableNameKind, SetExpr, SqliteOnConflict, Statement, TableFactor, TableObject,
    TableWithJoins, Visit, Visitor,
};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

/// What a statement is, as a policy names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Select,
    Insert,
    Replace,
    Upsert,
    Update,
    Delete,
    Create,
    Drop,
    Alter,
    Truncate,
    Attach,
    Detach,
    Pragma,
    Vacuum,
    Transaction,
    Other,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Select => "select",
            Kind::Insert => "insert",
            Kind::Replace => "replace",
            Kind::Upsert => "upsert",
            Kind::Update => "update",
            Kind::Delete => "delete",
            Kind::Create => "create",
            Kind::Drop => "drop",
            Kind::Alter => "alter",
            Kind::Truncate => "truncate",
            Kind::Attach => "attach",
            Kind::Detach => "detach",
            Kind::Pragma => "pragma",
            Kind::Vacuum => "vacuum",
            Kind::Transaction => "transaction",
            Kind::Other => "other",
        }
    }

    /// Whether the kind changes data (as opposed to reading or doing nothing to rows).
    fn changes_data(self) -> bool {
        !matches!(self, Kind::Select | Kind::Transaction | Kind::Other)
    }
}

/// The shape-level facts of one statement, before the tree walk.
struct Shape {
    kind: Kind,
    /// Objects the statement changes.
    targets: Vec<ObjectName>,
    /// Whether the targets were also walked as relations and are not reads by
    /// themselves (an INSERT's table, a created table), so one occurrence is taken off.
    targets_walked: bool,
    has_where: bool,
    replaces: bool,
    explain: bool,
    /// Schemas named outside object names (ATTACH ... AS aux).
    schemas: Vec<String>,
}

impl Shape {
    fn new(kind: Kind) -> Self {
        Shape {
            kind,
            targets: Vec::new(),
            targets_walked: false,
            has_where: false,
            replaces: false,
            explain: false,
            schemas: Vec::new(),
        }
    }

    fn targets(mut self, targets: Vec<ObjectName>, walked: bool) -> Self {
        self.targets = targets;
        self.targets_walked = walked;
        self
    }
}

/// The facts of one top-level statement, as the JSON object [`super::parse`] documents.
pub(super) fn facts(statement: &Statement) -> Value {
    let shape = classify(statement);
    let mut walk = Walk::default();
    // The walk never breaks: every node is visited.
    let _ = statement.visit(&mut walk);

    let mut reads = walk.relations;
    let mut writes = BTreeSet::new();
    let mut schemas: BTreeSet<String> = shape.schemas.iter().cloned().collect();
    for target in &shape.targets {
        let (name, qualifiers) = normalise(target);
        if shape.targets_walked {
            if let Some(count) = reads.get_mut(&name) {
                *count = count.saturating_sub(1);
            }
        }
        schemas.extend(qualifiers);
        writes.insert(name);
    }
    writes.extend(walk.nested_writes);
    schemas.extend(walk.schemas);
    let kind = match (shape.kind, walk.nested_kind) {
        (Kind::Select, Some(nested)) => nested,
        (kind, _) => kind,
    };
    let reads: Vec<&String> = reads
        .iter()
        .filter(|(_, count)| **count > 0)
        .map(|(name, _)| name)
        .collect();
    json!({
        "kind": kind.as_str(),
        "reads": reads,
        "writes": writes,
        "has_where": shape.has_where,
        "schemas": schemas,
        "functions": walk.functions,
        "replaces": shape.replaces,
        "explain": shape.explain,
    })
}

/// A name as SQLite resolves it: the last part, ASCII-lower-cased (SQLite folds only
/// ASCII), and the qualifiers before it other than `main`. The schema table's aliases
/// become its classic names: `sqlite_schema` is `sqlite_master`, `temp.sqlite_master`
/// and `sqlite_temp_schema` are `sqlite_temp_master`.
fn normalise(name: &ObjectName) -> (String, Vec<String>) {
    let mut parts: Vec<String> = name
        .0
        .iter()
        .map(|part| match part.as_ident() {
            Some(ident) => ident.value.to_ascii_lowercase(),
            None => part.to_string().to_ascii_lowercase(),
        })
        .collect();
    let last = parts.pop().unwrap_or_default();
    parts.retain(|qualifier| qualifier != "main");
    // SQLite's schema table answers to several names: report the one a rule names.
    let temp = parts.iter().any(|qualifier| qualifier == "temp");
    let last = match last.as_str() {
        "sqlite_schema" | "sqlite_master" if temp => "sqlite_temp_master".to_owned(),
        "sqlite_schema" => "sqlite_master".to_owned(),
        "sqlite_temp_schema" => "sqlite_temp_master".to_owned(),
        _ => last,
    };
    (last, parts)
}

/// Kind, targets and flags from the statement's own shape.
fn classify(statement: &Statement) -> Shape {
    match statement {
        Statement::Query(query) => {
            let mut shape = Shape::new(Kind::Select);
            shape.has_where = query_has_where(query);
            shape
        }
        Statement::Insert(insert) => {
            let replaces = insert.replace_into || insert.or == Some(SqliteOnConflict::Replace);
            let upsert = match &insert.on {
                Some(OnInsert::DuplicateKeyUpdate(_)) => true,
                Some(OnInsert::OnConflict(conflict)) => {
                    matches!(conflict.action, OnConflictAction::DoUpdate(_))
                }
                _ => false,
            };
            let kind = match (replaces, upsert) {
                (true, _) => Kind::Replace,
                (false, true) => Kind::Upsert,
                (false, false) => Kind::Insert,
            };
            let targets = match &insert.table {
                TableObject::TableName(name) => vec![name.clone()],
                _ => Vec::new(),
            };
            // An upsert reads the row it conflicts with: its target stays in `reads`.
            let mut shape = Shape::new(kind).targets(targets, !upsert);
            shape.replaces = replaces;
            shape
        }
        Statement::Update(update) => {
            let mut shape = Shape::new(Kind::Update).targets(joined_tables(&update.table), false);
            shape.has_where = update.selection.is_some();
            shape.replaces = update.or == Some(SqliteOnConflict::Replace);
            shape
        }
        Statement::Delete(delete) => {
            let targets = if delete.tables.is_empty() {
                let from = match &delete.from {
                    FromTable::WithFromKeyword(tables) | FromTable::WithoutKeyword(tables) => {
                        tables
                    }
                };
                from.iter().flat_map(joined_tables).collect()
            } else {
                delete.tables.clone()
            };
            let mut shape = Shape::new(Kind::Delete).targets(targets, false);
            shape.has_where = delete.selection.is_some();
            shape
        }
        Statement::Explain { statement, .. } => {
            let mut shape = classify(statement);
            shape.explain = true;
            shape
        }
        other => classify_schema(other),
    }
}

/// CREATE, DROP, ALTER, RENAME and TRUNCATE; the rest goes on to [`classify_other`].
fn classify_schema(statement: &Statement) -> Shape {
    match statement {
        Statement::CreateTable(create) => {
            Shape::new(Kind::Create).targets(vec![create.name.clone()], true)
        }
        Statement::CreateView(create) => {
            Shape::new(Kind::Create).targets(vec![create.name.clone()], true)
        }
        Statement::CreateVirtualTable { name, .. } => {
            Shape::new(Kind::Create).targets(vec![name.clone()], true)
        }
        Statement::CreateIndex(create) => {
            let mut targets: Vec<ObjectName> = create.name.iter().cloned().collect();
            targets.push(create.table_name.clone());
            Shape::new(Kind::Create).targets(targets, false)
        }
        Statement::CreateTrigger(create) => Shape::new(Kind::Create)
            .targets(vec![create.name.clone(), create.table_name.clone()], false),
        Statement::Drop { names, .. } => Shape::new(Kind::Drop).targets(names.clone(), false),
        Statement::DropTrigger(drop) => {
            let mut targets = vec![drop.trigger_name.clone()];
            targets.extend(drop.table_name.iter().cloned());
            Shape::new(Kind::Drop).targets(targets, false)
        }
        Statement::AlterTable(alter) => {
            let mut targets = vec![alter.name.clone()];
            for operation in &alter.operations {
                if let AlterTableOperation::RenameTable { table_name } = operation {
                    let (RenameTableNameKind::As(name) | RenameTableNameKind::To(name)) =
                        table_name;
                    targets.push(name.clone());
                }
            }
            Shape::new(Kind::Alter).targets(targets, true)
        }
        Statement::RenameTable(renames) => {
            let targets = renames
                .iter()
                .flat_map(|rename| [rename.old_name.clone(), rename.new_name.clone()])
                .collect();
            Shape::new(Kind::Alter).targets(targets, false)
        }
        Statement::Truncate(truncate) => {
            let targets = truncate
                .table_names
                .iter()
                .map(|t| t.name.clone())
                .collect();
            Shape::new(Kind::Truncate).targets(targets, true)
        }
        other => classify_other(other),
    }
}

/// ATTACH, PRAGMA, VACUUM, transactions, MERGE and, by first keyword, everything else.
fn classify_other(statement: &Statement) -> Shape {
    match statement {
        Statement::AttachDatabase { schema_name, .. } => {
            let mut shape = Shape::new(Kind::Attach);
            shape.schemas.push(schema_name.value.to_ascii_lowercase());
            shape
        }
        Statement::AttachDuckDBDatabase { .. } => Shape::new(Kind::Attach),
        Statement::DetachDuckDBDatabase { .. } => Shape::new(Kind::Detach),
        Statement::Pragma { name, .. } => {
            let mut shape = Shape::new(Kind::Pragma);
            shape.schemas = normalise(name).1;
            shape
        }
        Statement::Vacuum(_) => Shape::new(Kind::Vacuum),
        Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. } => Shape::new(Kind::Transaction),
        // COPY ... FROM fills a table from a file (COPY ... TO writes a file): `other`,
        // with the table it fills.
        Statement::Copy {
            source: CopySource::Table { table_name, .. },
            to: false,
            ..
        } => Shape::new(Kind::Other).targets(vec![table_name.clone()], false),
        Statement::Merge(merge) => {
            let targets = match &merge.table {
                TableFactor::Table { name, .. } => vec![name.clone()],
                _ => Vec::new(),
            };
            Shape::new(Kind::Other).targets(targets, false)
        }
        other => Shape::new(kind_by_keyword(other)),
    }
}

/// The kind of a statement this module has no shape for, from its first keyword as
/// `sqlparser` prints it: a CREATE of anything is `create`, never `other`.
fn kind_by_keyword(statement: &Statement) -> Kind {
    let printed = statement.to_string();
    let first = printed.split_whitespace().next().unwrap_or_default();
    match first.to_ascii_uppercase().as_str() {
        "CREATE" => Kind::Create,
        "DROP" => Kind::Drop,
        "ALTER" | "RENAME" => Kind::Alter,
        "TRUNCATE" => Kind::Truncate,
        "INSERT" => Kind::Insert,
        "UPDATE" => Kind::Update,
        "DELETE" => Kind::Delete,
        _ => Kind::Other,
    }
}

fn query_has_where(query: &Query) -> bool {
    match query.body.as_ref() {
        SetExpr::Select(select) => select.selection.is_some(),
        _ => false,
    }
}

/// Every named table of a FROM item: the relation and the tables it joins.
fn joined_tables(table: &TableWithJoins) -> Vec<ObjectName> {
    std::iter::once(&table.relation)
        .chain(table.joins.iter().map(|join| &join.relation))
        .filter_map(|factor| match factor {
            TableFactor::Table { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

/// The tree walk: relation names (with CTE scopes), functions, nested statements.
#[derive(Default)]
struct Walk {
    /// Relation name → how often it is named outside a CTE scope of that name.
    relations: BTreeMap<String, usize>,
    schemas: BTreeSet<String>,
    functions: BTreeSet<String>,
    /// WITH scopes open at this point of the walk, innermost last.
    scopes: Vec<Scope>,
    /// CTE bodies being walked: (body address, the enclosing scope's visible count to
    /// restore when the body ends).
    bodies: Vec<(usize, usize)>,
    /// How deep in statements the walk is (1 = the top-level statement).
    depth: usize,
    nested_writes: BTreeSet<String>,
    nested_kind: Option<Kind>,
}

/// The CTE names a query's WITH introduces.
struct Scope {
    query: usize,
    aliases: Vec<String>,
    /// The address of each CTE's body, in order.
    bodies: Vec<usize>,
    /// How many aliases are visible: all of them in the main body; inside the body of
    /// the i-th CTE only the ones before it, so `WITH files AS (SELECT * FROM files)`
    /// reads the real `files` (and a recursive CTE over-reports its own name as a read).
    visible: usize,
}

fn address(query: &Query) -> usize {
    std::ptr::from_ref(query) as usize
}

impl Walk {
    fn is_cte(&self, name: &ObjectName) -> bool {
        let [only] = name.0.as_slice() else {
            return false;
        };
        let Some(ident) = only.as_ident() else {
            return false;
        };
        let name = ident.value.to_ascii_lowercase();
        self.scopes.iter().any(|scope| {
            scope
                .aliases
                .iter()
                .take(scope.visible)
                .any(|alias| *alias == name)
        })
    }
}

impl Visitor for Walk {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        let here = address(query);
        if let Some(scope) = self.scopes.last_mut() {
            if let Some(index) = scope.bodies.iter().position(|body| *body == here) {
                self.bodies.push((here, scope.visible));
                scope.visible = index;
            }
        }
        if let Some(with) = &query.with {
            let aliases: Vec<String> = with
                .cte_tables
                .iter()
                .map(|cte| cte.alias.name.value.to_ascii_lowercase())
                .collect();
            self.scopes.push(Scope {
                query: here,
                visible: aliases.len(),
                aliases,
                bodies: with
                    .cte_tables
                    .iter()
                    .map(|cte| address(&cte.query))
                    .collect(),
            });
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        let here = address(query);
        if self.scopes.last().is_some_and(|scope| scope.query == here) {
            self.scopes.pop();
        }
        if self.bodies.last().is_some_and(|(body, _)| *body == here) {
            if let (Some((_, visible)), Some(scope)) = (self.bodies.pop(), self.scopes.last_mut()) {
                scope.visible = visible;
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        if !self.is_cte(relation) {
            let (name, qualifiers) = normalise(relation);
            *self.relations.entry(name).or_default() += 1;
            self.schemas.extend(qualifiers);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if let Expr::Function(function) = expr {
            let (name, _) = normalise(&function.name);
            self.functions.insert(name);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<()> {
        self.depth += 1;
        if self.depth > 1 {
            let shape = classify(statement);
            for target in &shape.targets {
                let (name, qualifiers) = normalise(target);
                self.nested_writes.insert(name);
                self.schemas.extend(qualifiers);
            }
            if shape.kind.changes_data() && self.nested_kind.is_none() {
                self.nested_kind = Some(shape.kind);
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_statement(&mut self, _statement: &Statement) -> ControlFlow<()> {
        self.depth = self.depth.saturating_sub(1);
        ControlFlow::Continue(())
    }
}
