use super::*;

#[test]
fn scratch() {
    for sql in [
        "UPDATE orders SET status='--' WHERE id=0;/*x*/DROP TABLE customers",
        "SELECT content FROM files WHERE path='/app/.env'",
        "DETACH aux",
        "DETACH DATABASE aux",
        "VACUUM",
        "VACUUM INTO 'x.db'",
        "ATTACH ':memory:' AS aux",
        "PRAGMA main.writable_schema = 1",
        "CREATE TRIGGER t AFTER INSERT ON orders BEGIN DELETE FROM customers; END",
        "WITH files AS (SELECT * FROM files) SELECT * FROM files",
        "WITH c AS (SELECT * FROM customers) SELECT * FROM c",
        "INSERT INTO orders SELECT * FROM orders",
        "INSERT OR REPLACE INTO orders VALUES (1)",
        "REPLACE INTO orders VALUES (1)",
        "INSERT INTO orders VALUES (1) ON CONFLICT DO UPDATE SET a = 2",
        "DROP INDEX i",
        "ALTER TABLE orders RENAME TO o2",
        "EXPLAIN DELETE FROM orders",
        "EXPLAIN QUERY PLAN SELECT 1",
        "SELECT * FROM \"Main\".[Orders] JOIN `files` ON 1",
        "SELECT x IN orders FROM customers",
        "BEGIN; COMMIT; SAVEPOINT a; RELEASE a; ROLLBACK",
        "ANALYZE",
        "REINDEX",
        "CREATE TABLE x AS SELECT * FROM orders",
        "SELECT * FROM pragma_table_info('files')",
        "DELETE FROM 'customers'",
        "SELECT load_extension('x')",
        "",
        "-- only",
    ] {
        println!("{sql}\n  {}", parse(sql, "sqlite"));
    }
}
