//! The demo's in-memory SQLite database: schema, seeding, and guarded access.

use crate::seed;
use rusqlite::limits::Limit;
use rusqlite::Connection;
use std::sync::Mutex;

const SCHEMA: &str = "
CREATE TABLE customers (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    email       TEXT NOT NULL,
    phone       TEXT NOT NULL,
    card_number TEXT NOT NULL,
    address     TEXT NOT NULL,
    city        TEXT NOT NULL,
    country     TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE TABLE orders (
    id           INTEGER PRIMARY KEY,
    customer_id  INTEGER NOT NULL,
    amount_cents INTEGER NOT NULL,
    status       TEXT NOT NULL,
    created_at   TEXT NOT NULL
);
CREATE TABLE egress_log (
    id         INTEGER PRIMARY KEY,
    method     TEXT NOT NULL,
    url        TEXT NOT NULL,
    host       TEXT NOT NULL,
    body_bytes INTEGER NOT NULL,
    created_at TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE TABLE files (
    path    TEXT PRIMARY KEY,
    content TEXT NOT NULL
);
";

/// One SQLite connection behind a mutex. Callers hold the lock only for one tool call,
/// always on a blocking thread, never across an await.
pub(crate) struct Database {
    conn: Mutex<Connection>,
}

impl Database {
    /// Opens a fresh in-memory database and fills it from `seed`.
    pub(crate) fn open(seed: u64) -> rusqlite::Result<Self> {
        let conn = Connection::open_in_memory()?;
        // ATTACH and VACUUM INTO would let SQL touch the real file system; the demo's
        // promise is that every side effect stays inside this in-memory database.
        conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)?;
        conn.execute_batch(SCHEMA)?;
        seed::populate(&conn, seed)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    /// Runs `f` with the connection locked.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&Connection) -> R) -> R {
        // A panic in another tool call cannot leave SQLite inconsistent (each statement is
        // atomic), so a poisoned lock is still safe to use.
        let guard = match self.conn.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&guard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(db: &Database, table: &str) -> i64 {
        db.with(|c| c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)))
            .unwrap()
    }

    #[test]
    fn seeded_tables_have_expected_sizes() {
        let db = Database::open(1).unwrap();
        assert_eq!(count(&db, "customers"), i64::from(seed::CUSTOMER_COUNT));
        assert_eq!(count(&db, "orders"), i64::from(seed::ORDER_COUNT));
        assert_eq!(count(&db, "files"), seed::FILES.len() as i64);
        assert_eq!(count(&db, "egress_log"), 0);
    }

    #[test]
    fn seed_is_deterministic_and_cards_are_luhn_valid() {
        let rows = |seed| {
            Database::open(seed).unwrap().with(|c| {
                let mut s = c
                    .prepare("SELECT name, email, card_number FROM customers ORDER BY id")
                    .unwrap();
                s.query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                })
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap()
            })
        };
        let a = rows(42);
        assert_eq!(a, rows(42));
        assert_ne!(a, rows(43));
        for (_, email, card) in &a {
            assert!(seed::luhn_valid(card), "{card} is not Luhn-valid");
            assert!(email.contains("@example."), "{email}");
        }
    }

    #[test]
    fn sql_cannot_reach_the_real_file_system() {
        let db = Database::open(1).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("escape.db");
        let target = target.to_string_lossy();
        for sql in [
            format!("ATTACH DATABASE '{target}' AS escape"),
            format!("VACUUM INTO '{target}'"),
        ] {
            assert!(db.with(|c| c.execute_batch(&sql)).is_err(), "{sql} ran");
        }
        assert!(!dir.path().join("escape.db").exists());
    }
}
