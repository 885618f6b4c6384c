# SQL rules, on the facts airlock.sql.parse gives (the statements as the database
# reads them: comments, quotes and several statements included), for the argument a
# tool's entry names (servers.NAME.tools.TOOL.sql.argument):
#   - schema changes, ATTACH/DETACH, PRAGMA, VACUUM and dangerous functions: denied;
#   - a read-only tool (sql.read_only) runs SELECT statements only;
#   - tables marked sensitive cannot be read or written by agents;
#   - SQL that does not parse is denied on write tools and held on others (never
#     taken as harmless);
#   - writes on production wait for a DBA; several statements in one call, or an
#     UPDATE/DELETE without WHERE, wait for two.
package airlock

import rego.v1

# The dialect: the server's `sql_dialect` label, else its entry's, else generic.
sql_dialect := object.get(input.server.labels, "sql_dialect", object.get(object.get(server_cfg, "sql", {}), "dialect", "generic"))

sql_argument := tool_cfg.sql.argument

sql_text := input.tool.arguments[sql_argument]

sql := airlock.sql.parse(sql_text, sql_dialect) if is_string(sql_text)

sql_statements := sql.statements if sql.ok

denials contains {
	"reason": reason,
	"message": sprintf(object.get(denied_kind_messages, reason, "%v statements are not allowed through Airlock."), [upper(statement.kind)]),
} if {
	some statement in sql_statements
	reason := cfg.sql.denied_kinds[statement.kind]
}

denied_kind_messages := {
	"sql.ddl": "Schema changes (%v) are not allowed through Airlock. Ask a DBA to run migrations through the change process.",
	"sql.attach": "Attaching or detaching databases (%v) is not allowed through Airlock.",
	"sql.pragma": "%v statements change how the database behaves and are not allowed through Airlock.",
	"sql.vacuum": "%v rewrites the database file and is not allowed through Airlock.",
}

denials contains {
	"reason": "sql.denied_function",
	"message": sprintf("The SQL calls %v(), which %v; it is not allowed through Airlock.", [name, why]),
} if {
	some statement in sql_statements
	some name in statement.functions
	why := cfg.sql.denied_functions[name]
}

denials contains {
	"reason": "sql.not_read_only",
	"message": sprintf("`%v` runs read-only SQL: a single SELECT per statement, nothing else (this one is %v). Use a write tool such as `execute` for changes.", [tool_name, statement.kind]),
} if {
	tool_cfg.sql.read_only == true
	some statement in sql_statements
	not read_only_statement(statement)
}

read_only_statement(statement) if {
	statement.kind == "select"
	count(statement.writes) == 0
}

denials contains {
	"reason": "sql.sensitive_table",
	"message": sprintf("The table `%v` is not available to agents: it %v.", [table, why]),
} if {
	input.identity.kind == "agent"
	some statement in sql_statements
	some table in array.concat(statement.reads, statement.writes)
	why := server_cfg.sql.sensitive_tables[table]
}

denials contains {
	"reason": "sql.unparsed",
	"message": sprintf("Airlock cannot read this SQL as the %v database would (%v), so it is not run. Send one well-formed statement.", [sql_dialect, sql.error]),
} if {
	tool_class == "write"
	sql.ok == false
}

holds contains "sql.unparsed" if {
	tool_class != "write"
	sql.ok == false
}

denials contains {
	"reason": "sql.not_text",
	"message": sprintf("The `%v` argument of `%v` must be SQL text.", [sql_argument, tool_name]),
} if {
	not listing
	sql_argument
	not is_string(sql_text)
}

holds contains "sql.write_on_prod" if {
	tool_class == "write"
	prod
}

holds contains "sql.multi_statement" if {
	prod
	count(sql_statements) > 1
}

holds contains "sql.unbounded_write" if {
	prod
	some statement in sql_statements
	statement.kind in {"update", "delete"}
	not statement.has_where
}

holds contains "sql.unbounded_write" if {
	prod
	some statement in sql_statements
	statement.replaces
}
