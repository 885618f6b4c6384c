# Tests of sql.rego: DDL is denied however it is spelled; writes on prod are held.
package airlock_test

import rego.v1

import data.airlock

test_ddl_is_denied_on_any_tool_and_env if {
	every doc in [call("execute", {"sql": "DROP TABLE users"}), on_prod(call("query", {"sql": "drop table users"}))] {
		d := airlock.decision with input as doc
		d.verdict == "deny"
		d.reasons == ["sql.ddl"]
		contains(d.message, "DROP")
	}
}

test_ddl_is_found_however_it_is_spelled if {
	every sql in [
		"  \n\tDrop Table users",
		"TRUNCATE orders",
		"alter table users add column x int",
		"/* harmless */ DROP TABLE users",
		"-- comment\nDROP TABLE users",
		"# mysql comment\ndrop table users",
		"/**/drop table users",
		"(drop table users)",
		"select 1; DROP TABLE users",
		"select 1 --; x\n; truncate t",
		"/*!50000 DROP TABLE users */",
		"create table t (id int)",
		"RENAME TABLE a TO b",
	] {
		reasons(call("execute", {"sql": sql})) == ["sql.ddl"]
	}
}

test_ddl_is_found_in_other_sql_argument_names if {
	reasons(call("run", {"statement": "DROP TABLE users"})) == ["sql.ddl"]
}

test_reads_and_dml_are_not_ddl if {
	every sql in [
		"SELECT * FROM drops",
		"select 'drop table x' as s",
		"select dropped_at from events -- drop",
		"UPDATE users SET altered = true",
	] {
		not "sql.ddl" in reasons(call("query", {"sql": sql}))
	}
}

test_long_statements_are_shortened_in_the_message if {
	sql := concat("", ["drop table ", concat("", [x | some _ in numbers.range(1, 80); x := "x"])])
	d := airlock.decision with input as call("execute", {"sql": sql})
	endswith(split(d.message, "`")[1], "...")
}

test_write_on_prod_requires_dba_approval if {
	d := airlock.decision with input as on_prod(call("execute", {"sql": "INSERT INTO orders VALUES (1)"}))
	d == {
		"verdict": "require_approval",
		"reasons": ["sql.write_on_prod"],
		"approval": {"reviewers": ["dba"], "min_approvals": 1, "timeout_s": 600, "mode": "sync"},
	}
}

test_production_env_names_come_from_data if {
	doc := object.union(call("execute", {"sql": "DELETE FROM t"}), {"server": {"labels": {"env": "production"}}})
	verdict(doc) == "require_approval"
	verdict(doc) == "allow" with data.airlock_config.production_envs as {"prod": true}
}

test_write_off_prod_is_allowed if {
	d := airlock.decision with input as call("execute", {"sql": "INSERT INTO orders VALUES (1)"})
	d.verdict == "allow"
	d.reasons == ["tool.write_non_prod"]
}

test_sql_rules_ignore_missing_or_non_string_arguments if {
	verdict(call("execute", {})) == "allow"
	verdict(call("execute", {"sql": 42})) == "allow"
	verdict(call("execute", {"sql": ["DROP TABLE x"]})) == "allow"
}
