# SQL rules: DDL is never let through; writes to production wait for a DBA.
#
# Every argument named in airlock_config.sql_arguments is checked, on any tool. The
# text is lower-cased and split into statements on ";" twice, once as written and
# once with comments removed, and a statement starting with a DDL keyword in either
# reading denies: a reading that sees more statements can only deny more, so
# comment tricks (`/**/DROP`, `-- x\nDROP`, MySQL's `/*!50000 DROP */`) fail closed.
package airlock

import rego.v1

holds contains "sql.write_on_prod" if {
	tool_class == "write"
	prod
}

denials contains {
	"reason": "sql.ddl",
	"message": sprintf("Schema changes (%v) are not allowed through Airlock: the statement `%v` was refused. Ask a DBA to run migrations through the change process.", [upper(keyword), statement_preview(statement)]),
} if {
	some statement in sql_statements
	some keyword in cfg.ddl_keywords
	startswith(statement, keyword)
}

sql_statements contains statement if {
	some name in cfg.sql_arguments
	sql := input.tool.arguments[name]
	is_string(sql)
	text := lower(sql)
	some reading in {text, without_comments(text)}
	some raw in split(reading, ";")
	statement := trim_left(raw, " \t\r\n\f(/*!0123456789")
	statement != ""
}

without_comments(text) := text if {
	not contains(text, "--")
	not contains(text, "/*")
	not contains(text, "#")
} else := regex.replace(text, `(?s)/\*.*?\*/|--[^\n]*|#[^\n]*`, " ")

statement_preview(s) := s if {
	count(s) <= 60
} else := concat("", [substring(s, 0, 57), "..."])
