//! SQLite as the oracle: runs a SQL text the way the demo's `execute` does
//! (`execute_batch`: prepare one statement, run it, go on from the tail) on a fresh
//! in-memory copy of the demo's schema, and records every action SQLite's authorizer is
//! asked about. Then [`uncovered`] names each action the facts do not report.

use fallible_iterator::FallibleIterator;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::{Batch, Connection};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// The demo's tables (demo/src/database.rs), with a few rows so statements have work.
const SCHEMA: &str = "
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL,
    phone TEXT NOT NULL DEFAULT '', card_number TEXT NOT NULL DEFAULT '');
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL DEFAULT 1,
    amount_cents INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL DEFAULT 'new');
CREATE TABLE egress_log (id INTEGER PRIMARY KEY, method TEXT NOT NULL DEFAULT 'GET',
    url TEXT NOT NULL DEFAULT '', host TEXT NOT NULL DEFAULT '');
CREATE TABLE files (path TEXT PRIMARY KEY, content TEXT NOT NULL DEFAULT '');
INSERT INTO customers (id, name, email) VALUES (1, 'Ada', 'ada@example.com'), (2, 'Bo', 'bo@example.com');
INSERT INTO orders (id, status) VALUES (7, 'new'), (8, 'shipped');
INSERT INTO files (path, content) VALUES ('/app/.env', 'SECRET=1');
";

/// One action SQLite's authorizer was asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// The action, as `AuthAction`'s variant name.
    pub what: String,
    /// The object acted on (table, index, trigger, view, pragma, function), lower-cased.
    pub object: String,
    /// The second argument (an index's or trigger's table), lower-cased.
    pub table: String,
    /// The trigger or view whose body caused it.
    pub accessor: Option<String>,
    /// Asked while a statement ran rather than while it was prepared: SQLite's own
    /// housekeeping SQL during DDL (ALTER TABLE re-reads the schema with `printf`,
    /// `substr`...). Everything a statement's text asks for is asked at prepare time,
    /// trigger and view bodies included.
    pub running: bool,
}

/// Runs `sql` on a fresh database and returns the actions of every statement SQLite
/// prepared (a statement that failed to prepare did nothing), in order.
pub fn actions(sql: &str) -> Vec<Action> {
    // Whatever slips past the ATTACH refusal writes into a scratch directory, never
    // into the source tree.
    static SCRATCH: OnceLock<tempfile::TempDir> = OnceLock::new();
    SCRATCH.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a scratch directory");
        std::env::set_current_dir(dir.path()).expect("enter the scratch directory");
        dir
    });
    let conn = Connection::open_in_memory().expect("in-memory SQLite");
    conn.execute_batch(SCHEMA).expect("the schema");
    let log: Arc<Mutex<Vec<(Action, bool)>>> = Arc::default();
    let running = Arc::new(AtomicBool::new(false));
    let sink = Arc::clone(&log);
    let phase = Arc::clone(&running);
    conn.authorizer(Some(move |ctx: AuthContext<'_>| {
        let (mut action, refuse) = describe(&ctx);
        action.running = phase.load(Ordering::Relaxed);
        sink.lock().unwrap().push((action, refuse));
        if refuse {
            Authorization::Deny
        } else {
            Authorization::Allow
        }
    }));
    // Bounded work per statement: a generated recursive query must not run away.
    conn.progress_handler(100_000, Some(|| true));
    let mut batch = Batch::new(&conn, sql);
    loop {
        let before = log.lock().unwrap().len();
        match batch.next() {
            Ok(Some(mut statement)) => {
                // One step, as `execute_batch` does. A failing step does not stop us
                // (the demo stops there, but with other data it would not have failed):
                // every later statement's actions count.
                running.store(true, Ordering::Relaxed);
                let _ = statement.raw_query().next();
                running.store(false, Ordering::Relaxed);
            }
            Ok(None) => break,
            Err(_) => {
                // The statement did not prepare, so its actions did not happen, except
                // the ones we refused ourselves (an ATTACH of a real file), which
                // SQLite would have done. SQLite cannot go on past a text it cannot
                // prepare: neither can the server.
                let mut log = log.lock().unwrap();
                let tail: Vec<(Action, bool)> = log
                    .drain(before..)
                    .filter(|(_, refused)| *refused)
                    .collect();
                log.extend(tail);
                break;
            }
        }
    }
    conn.authorizer(None::<fn(AuthContext<'_>) -> Authorization>);
    let log = log.lock().unwrap();
    log.iter().map(|(action, _)| action.clone()).collect()
}

/// `SQLITE_ATTACH`.
const ATTACH: i32 = 24;

/// The action and whether to refuse it: attaching anything but an in-memory database
/// would write a file into the working directory.
fn describe(ctx: &AuthContext<'_>) -> (Action, bool) {
    let low = |s: &str| s.to_ascii_lowercase();
    let (what, object, table) = match ctx.action {
        AuthAction::Attach { filename } => {
            let action = ("Attach".to_owned(), filename.to_owned(), String::new());
            let in_memory = filename.is_empty() || filename == ":memory:";
            return (with_accessor(action, ctx), !in_memory);
        }
        // An ATTACH whose file name is an expression (`ATTACH 0 AS aux`): SQLite does not
        // tell the authorizer the name, so it is refused (it would create a file).
        AuthAction::Unknown { code: ATTACH, .. } => {
            let action = ("Attach".to_owned(), String::new(), String::new());
            return (with_accessor(action, ctx), true);
        }
        AuthAction::CreateIndex {
            index_name,
            table_name,
        }
        | AuthAction::CreateTempIndex {
            index_name,
            table_name,
        }
        | AuthAction::DropIndex {
            index_name,
            table_name,
        }
        | AuthAction::DropTempIndex {
            index_name,
            table_name,
        } => (variant(&ctx.action), low(index_name), low(table_name)),
        AuthAction::CreateTrigger {
            trigger_name,
            table_name,
        }
        | AuthAction::CreateTempTrigger {
            trigger_name,
            table_name,
        }
        | AuthAction::DropTrigger {
            trigger_name,
            table_name,
        }
        | AuthAction::DropTempTrigger {
            trigger_name,
            table_name,
        } => (variant(&ctx.action), low(trigger_name), low(table_name)),
        AuthAction::CreateTable { table_name }
        | AuthAction::CreateTempTable { table_name }
        | AuthAction::DropTable { table_name }
        | AuthAction::DropTempTable { table_name }
        | AuthAction::Delete { table_name }
        | AuthAction::Insert { table_name }
        | AuthAction::Read { table_name, .. }
        | AuthAction::Update { table_name, .. }
        | AuthAction::AlterTable { table_name, .. }
        | AuthAction::Analyze { table_name }
        | AuthAction::CreateVtable { table_name, .. }
        | AuthAction::DropVtable { table_name, .. } => {
            (variant(&ctx.action), low(table_name), String::new())
        }
        AuthAction::CreateView { view_name }
        | AuthAction::CreateTempView { view_name }
        | AuthAction::DropView { view_name }
        | AuthAction::DropTempView { view_name } => {
            (variant(&ctx.action), low(view_name), String::new())
        }
        AuthAction::Pragma { pragma_name, .. } => {
            ("Pragma".to_owned(), low(pragma_name), String::new())
        }
        AuthAction::Function { function_name } => {
            ("Function".to_owned(), low(function_name), String::new())
        }
        AuthAction::Detach { database_name } => {
            ("Detach".to_owned(), low(database_name), String::new())
        }
        AuthAction::Reindex { index_name } => {
            ("Reindex".to_owned(), low(index_name), String::new())
        }
        _ => (variant(&ctx.action), String::new(), String::new()),
    };
    (with_accessor((what, object, table), ctx), false)
}

fn with_accessor((what, object, table): (String, String, String), ctx: &AuthContext<'_>) -> Action {
    Action {
        what,
        object,
        table,
        accessor: ctx.accessor.map(str::to_ascii_lowercase),
        running: false,
    }
}

/// `AuthAction`'s variant name, from its Debug form.
fn variant(action: &AuthAction<'_>) -> String {
    let debug = format!("{action:?}");
    debug
        .split([' ', '{', '('])
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The facts of one statement, as sets.
struct Facts {
    kind: String,
    reads: BTreeSet<String>,
    writes: BTreeSet<String>,
    functions: BTreeSet<String>,
}

fn facts_of(parsed: &Value) -> Vec<Facts> {
    let set = |s: &Value, key: &str| -> BTreeSet<String> {
        s[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    parsed["statements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| Facts {
            kind: s["kind"].as_str().unwrap().to_owned(),
            reads: set(s, "reads"),
            writes: set(s, "writes"),
            functions: set(s, "functions"),
        })
        .collect()
}

/// Functions SQLite's authorizer reports for operators: `x LIKE y` calls `like`.
const OPERATOR_FUNCTIONS: &[&str] = &["like", "glob", "regexp", "match", "->", "->>"];

/// Every action in `actions` that the facts (`sql::parse`'s answer, `ok` true) do not
/// report, described for a failure message. Empty when the facts cover all of them.
pub fn uncovered(parsed: &Value, actions: &[Action]) -> Vec<String> {
    let facts = facts_of(parsed);
    actions
        .iter()
        .filter(|action| !covers(&facts, action))
        .map(|action| format!("{action:?}"))
        .collect()
}

/// Whether the facts report `action`.
fn covers(facts: &[Facts], action: &Action) -> bool {
    let has = |kinds: &[&str], name: &str| {
        facts
            .iter()
            .any(|f| kinds.contains(&f.kind.as_str()) && f.writes.contains(name))
    };
    let any_kind = |kinds: &[&str]| facts.iter().any(|f| kinds.contains(&f.kind.as_str()));
    let name = action.object.as_str();
    let ddl = any_kind(&["create", "drop", "alter", "vacuum", "other"]);
    if action.running && ddl {
        return true;
    }
    if let (Some(accessor), true) = (&action.accessor, is_write(&action.what)) {
        // Run by a trigger body: that trigger must be one the text creates (the schema
        // has none), with this table among its targets or reads.
        return facts.iter().any(|f| {
            f.kind == "create"
                && f.writes.contains(accessor)
                && (name.is_empty() || f.writes.contains(name) || f.reads.contains(name))
        });
    }
    let bookkeeping = is_write(&action.what) && action.what != "Pragma";
    if name.starts_with("sqlite_") && bookkeeping {
        // SQLite's own tables (sqlite_schema, sqlite_sequence, sqlite_stat1): changed
        // or created by DDL, AUTOINCREMENT inserts, ANALYZE.
        return any_kind(&[
            "create", "drop", "alter", "insert", "replace", "upsert", "other",
        ]);
    }
    if name.starts_with("sqlite_") && action.what == "Read" && ddl {
        // DROP reads the schema table to find what to drop.
        return true;
    }
    match action.what.as_str() {
        "Insert" => has(&["insert", "replace", "upsert"], name),
        "Update" => has(&["update", "upsert"], name),
        "Delete" => has(&["delete", "drop", "truncate"], name),
        "Read" => facts
            .iter()
            .any(|f| f.reads.contains(name) || f.writes.contains(name)),
        "CreateTable" | "CreateTempTable" | "CreateView" | "CreateTempView" | "CreateIndex"
        | "CreateTempIndex" | "CreateTrigger" | "CreateTempTrigger" | "CreateVtable" => {
            has(&["create"], name)
        }
        "DropTable" | "DropTempTable" | "DropView" | "DropTempView" | "DropIndex"
        | "DropTempIndex" | "DropTrigger" | "DropTempTrigger" | "DropVtable" => {
            // Dropping a table drops its indexes and triggers with it.
            has(&["drop"], name) || has(&["drop"], &action.table)
        }
        "AlterTable" => has(&["alter"], name),
        "Attach" => any_kind(&["attach"]),
        "Detach" => any_kind(&["detach"]),
        "Pragma" => {
            any_kind(&["pragma"])
                || facts
                    .iter()
                    .any(|f| f.reads.contains(&format!("pragma_{name}")))
        }
        "Transaction" | "Savepoint" => any_kind(&["transaction"]),
        // ANALYZE and REINDEX are `other`; CREATE INDEX also asks for REINDEX.
        "Analyze" | "Reindex" => ddl,
        // DDL runs SQLite's own SQL (ALTER TABLE calls printf, substr...).
        "Function" => {
            ddl || OPERATOR_FUNCTIONS.contains(&name)
                || facts.iter().any(|f| f.functions.contains(name))
        }
        "Select" | "Recursive" => true,
        _ => false,
    }
}

fn is_write(what: &str) -> bool {
    !matches!(what, "Read" | "Select" | "Function" | "Recursive")
}
