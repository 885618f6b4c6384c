# Tests of sql.rego: the rules read the statements as SQLite does (airlock.sql.parse),
# so comments, quotes and several statements cannot hide a statement from them.
package airlock_test

import rego.v1

import data.airlock

execute(sql) := call("execute", {"sql": sql})

query(sql) := call("query", {"sql": sql})

test_ddl_is_denied_on_any_env if {
	every doc in [execute("DROP TABLE users"), on_prod(execute("drop table users")), query("CREATE TABLE t (id int)")] {
		d := airlock.decision with input as doc
		d.verdict == "deny"
		"sql.ddl" in d.reasons
	}
	d := airlock.decision with input as execute("DROP TABLE users")
	contains(d.message, "DROP")
}

test_ddl_is_found_however_it_is_written if {
	every sql in [
		"  \n\tDrop Table users",
		"TRUNCATE orders",
		"alter table users add column x int",
		"/* harmless */ DROP TABLE users",
		"-- comment\nDROP TABLE users",
		"/**/drop table users",
		"select 1; DROP TABLE users",
		"select 1 --; x\n; drop table t",
		"create index i on orders(id)",
		"UPDATE orders SET status='--' WHERE id=0;/*x*/DROP TABLE customers",
		"UPDATE orders SET status='/*' WHERE id=0;DROP TABLE customers; -- */",
	] {
		reasons := airlock.decision.reasons with input as execute(sql)
		"sql.ddl" in reasons
	}
}

test_attach_pragma_and_vacuum_are_denied_everywhere if {
	cases := {
		"ATTACH DATABASE '/tmp/x.db' AS x": "sql.attach",
		"PRAGMA writable_schema = 1": "sql.pragma",
		"VACUUM": "sql.vacuum",
	}
	every sql, reason in cases {
		every doc in [execute(sql), query(sql)] {
			d := airlock.decision with input as doc
			d.verdict == "deny"
			reason in d.reasons
		}
	}
}

test_dangerous_functions_are_denied if {
	d := airlock.decision with input as query("SELECT load_extension('/tmp/evil.so')")
	d.verdict == "deny"
	"sql.denied_function" in d.reasons
}

test_a_read_only_tool_runs_selects_only if {
	every sql in [
		"DELETE FROM customers",
		"REPLACE INTO orders (id) VALUES (1)",
		"INSERT INTO orders (id) VALUES (1)",
		"UPDATE orders SET status = 'x'",
		"BEGIN; DELETE FROM orders; COMMIT",
		"WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d",
		"select 1; delete from orders",
	] {
		d := airlock.decision with input as query(sql)
		d.verdict == "deny"
		"sql.not_read_only" in d.reasons
	}
	verdict(query("SELECT name FROM customers WHERE id = 1")) == "allow"
	verdict(query("WITH x AS (SELECT 1) SELECT * FROM x")) == "allow"
}

test_agents_cannot_read_sensitive_tables_by_any_spelling if {
	every sql in [
		"SELECT content FROM files WHERE path='/app/.env'",
		"select * from \"FILES\"",
		"SELECT * FROM main.files",
		"SELECT name FROM customers WHERE id IN (SELECT rowid FROM files)",
		"SELECT * FROM customers JOIN [files] ON 1",
	] {
		d := airlock.decision with input as query(sql)
		d.verdict == "deny"
		d.reasons == ["sql.sensitive_table"]
	}
	# A person (not an agent) may.
	verdict(as_kind(query("SELECT content FROM files"), "user")) == "allow"
}

test_sql_that_does_not_parse_is_never_taken_as_harmless if {
	d := airlock.decision with input as execute("DELETE FROM customers WHERE")
	d.verdict == "deny"
	d.reasons == ["sql.unparsed"]
	h := airlock.decision with input as query("SELEC name FROM customers")
	h.verdict == "require_approval"
	h.reasons == ["sql.unparsed"]
	# A NUL ends the text for SQLite, not for the parser: refused.
	verdict(execute("DELETE FROM customers -- \u0000\nWHERE id = 1")) == "deny"
}

test_sql_must_be_text if {
	d := airlock.decision with input as execute(["DROP TABLE users"])
	d.verdict == "deny"
	d.reasons == ["sql.not_text"]
	reasons(call("execute", {})) == ["sql.not_text"]
}

test_writes_are_allowed_off_prod if {
	d := airlock.decision with input as execute("INSERT INTO orders (id) VALUES (1)")
	d.verdict == "allow"
	d.reasons == ["tool.write_non_prod"]
}

test_writes_on_prod_wait_for_a_dba if {
	d := airlock.decision with input as on_prod(execute("UPDATE orders SET status = 'shipped' WHERE id = 7"))
	d.verdict == "require_approval"
	d.reasons == ["sql.write_on_prod"]
	d.approval.reviewers == ["dba"]
	d.approval.min_approvals == 1
}

test_several_statements_or_unbounded_writes_on_prod_need_two_reviewers if {
	every sql in [
		"UPDATE orders SET status = 'x' WHERE id = 1; UPDATE orders SET status = 'y' WHERE id = 2",
		"DELETE FROM orders",
		"UPDATE orders SET status = 'x'",
		"REPLACE INTO orders (id, status) VALUES (1, 'x')",
	] {
		d := airlock.decision with input as on_prod(execute(sql))
		d.verdict == "require_approval"
		d.approval.min_approvals == 2
		d.approval.reviewers == ["dba"]
	}
	multi := airlock.decision.reasons with input as on_prod(execute("UPDATE orders SET status = 'x' WHERE id = 1; DELETE FROM orders WHERE id = 2"))
	multi == ["sql.multi_statement", "sql.write_on_prod"]
}

test_the_dialect_comes_from_the_server_label if {
	# Backtick-quoted names are MySQL's; generic reads them too, but a bad label is an error.
	doc := object.union(on_prod(execute("UPDATE orders SET status = 'x' WHERE id = 1")), {"server": {"labels": {"sql_dialect": "klingon"}}})
	d := airlock.decision with input as doc
	d.verdict == "deny"
	d.reasons == ["sql.unparsed"]
}
