# Tests of airlock.rego and identity.rego: non-tool messages, the deny > hold > allow
# order, servers and their tools, unknown tools, read-only identities and tools/list
# filtering.
package airlock_test

import rego.v1

import data.airlock

# --- inputs -------------------------------------------------------------------

# A tools/call on the demo server (env=dev unless on_prod).
call(tool, args) := on_server("demo", tool, args)

on_server(server, tool, args) := {
	"identity": {"subject": "ci-bot", "groups": ["automation"], "kind": "agent", "claims": {}},
	"server": {"name": server, "labels": {"env": "dev"}},
	"direction": "client_to_server",
	"message": {"method": "tools/call", "id": 7, "params": {"name": tool, "arguments": args}},
	"tool": {"name": tool, "arguments": args},
	"session": {"id": "s1", "calls": 3},
	"time": {"unix_ms": 1764000000000},
}

on_prod(doc) := object.union(doc, {"server": {"labels": {"env": "prod"}}})

as_groups(doc, groups) := object.union(doc, {"identity": {"subject": "analyst", "groups": groups}})

as_kind(doc, kind) := object.union(doc, {"identity": {"kind": kind}})

listing(tool) := object.union(call(tool, {}), {"listing": true})

message(method) := {
	"identity": {"subject": "ci-bot", "groups": [], "kind": "agent", "claims": {}},
	"server": {"name": "demo", "labels": {"env": "prod"}},
	"direction": "client_to_server",
	"message": {"method": method, "id": 1, "params": {}},
	"session": {"id": "s1", "calls": 0},
	"time": {"unix_ms": 1764000000000},
}

verdict(doc) := v if {
	v := airlock.decision.verdict with input as doc
}

reasons(doc) := r if {
	r := airlock.decision.reasons with input as doc
}

# --- messages that are not tool calls ------------------------------------------

test_non_tool_messages_are_allowed if {
	every method in ["initialize", "tools/list", "notifications/initialized", "ping", "resources/read", "prompts/get"] {
		airlock.decision == {"verdict": "allow", "reasons": ["mcp.not_a_tool_call"]} with input as message(method)
	}
}

test_server_to_client_requests_are_allowed if {
	doc := object.union(message("sampling/createMessage"), {"direction": "server_to_client"})
	verdict(doc) == "allow"
}

test_a_server_sent_tools_call_is_not_a_client_tool_call if {
	doc := object.union(call("execute", {"sql": "DROP TABLE users"}), {"direction": "server_to_client"})
	reasons(doc) == ["mcp.not_a_tool_call"]
}

# --- reads: every answer is masked with every detector --------------------------------

test_a_query_is_allowed_and_its_answer_masked if {
	d := airlock.decision with input as on_prod(call("query", {"sql": "SELECT name, email FROM customers"}))
	d == {"verdict": "allow", "reasons": ["tool.read"], "mask": ["all"]}
}

test_read_file_answers_are_masked_too if {
	d := airlock.decision with input as call("read_file", {"path": "/app/docs/README.md"})
	d == {"verdict": "allow", "reasons": ["tool.read"], "mask": ["all"]}
}

# --- servers: each has its own tools; others get "*" ------------------------------

test_unknown_tool_is_allowed_off_prod if {
	reasons(call("summarize", {"text": "hi"})) == ["tool.unknown_non_prod"]
	verdict(call("summarize", {"text": "hi"})) == "allow"
}

test_unknown_tool_on_prod_requires_approval if {
	d := airlock.decision with input as on_prod(call("summarize", {"text": "hi"}))
	d.verdict == "require_approval"
	d.reasons == ["tool.unknown_on_prod"]
	d.approval == {"reviewers": ["security"], "min_approvals": 1, "timeout_s": 600, "mode": "sync", "facts": {}}
}

test_another_server_does_not_inherit_the_demo_rules if {
	# A GitHub server's list_issues has a `query` argument and an `execute`-like name
	# means nothing there: no SQL rules, no demo reason ids.
	doc := on_server("github", "list_issues", {"query": "DROP TABLE users; is:open"})
	reasons(doc) == ["tool.unknown_non_prod"]
	d := airlock.decision with input as on_prod(on_server("github", "execute", {"sql": "DROP TABLE users"}))
	d.reasons == ["tool.unknown_on_prod"]
}

test_a_server_entry_gives_its_tools_their_rules if {
	github := {
		"tools": {"list_issues": {"class": "read"}, "create_issue": {"class": "write"}},
		"egress": {"allowed_hosts": {}},
	}
	doc := on_server("github", "list_issues", {"query": "is:open"})
	reasons(doc) == ["tool.read"] with data.airlock_config.servers.github as github
	write := on_server("github", "create_issue", {"title": "x"})
	reasons(write) == ["tool.write_non_prod"] with data.airlock_config.servers.github as github
}

test_a_tools_call_without_a_name_is_denied if {
	doc := object.remove(call("query", {}), ["tool"])
	reasons(doc) == ["mcp.tool_name_missing"]
}

# --- order: deny wins over hold, holds combine -------------------------------------

test_denials_win_over_holds_and_all_reasons_are_kept if {
	doc := as_groups(on_prod(call("execute", {"sql": "DROP TABLE users"})), ["readonly"])
	d := airlock.decision with input as doc
	d.verdict == "deny"
	d.reasons == ["identity.read_only", "sql.ddl"]
	contains(d.message, "read-only")
	contains(d.message, "DROP")
}

test_holds_combine_reviewers_and_take_the_strictest_terms if {
	approvals := {
		"sql.write_on_prod": {"reviewers": ["dba"], "min_approvals": 1, "timeout_s": 600},
		"tool.unknown_on_prod": {"reviewers": ["security"], "min_approvals": 2, "timeout_s": 60},
	}
	d := airlock.tool_decision with input as on_prod(call("x", {})) with data.airlock.holds as {"sql.write_on_prod", "tool.unknown_on_prod"} with data.airlock_config.approvals as approvals
	d.approval == {"reviewers": ["dba", "security"], "min_approvals": 2, "timeout_s": 60, "mode": "sync", "facts": {}}
}

test_holds_are_async_only_when_every_one_allows_it if {
	approvals := {
		"sql.write_on_prod": {"reviewers": ["dba"], "min_approvals": 1, "timeout_s": 600, "mode": "async"},
		"tool.unknown_on_prod": {"reviewers": ["security"], "min_approvals": 1, "timeout_s": 600},
	}
	one := airlock.tool_decision with input as on_prod(call("x", {})) with data.airlock.holds as {"sql.write_on_prod"} with data.airlock_config.approvals as approvals
	one.approval.mode == "async"
	both := airlock.tool_decision with input as on_prod(call("x", {})) with data.airlock.holds as {"sql.write_on_prod", "tool.unknown_on_prod"} with data.airlock_config.approvals as approvals
	both.approval.mode == "sync"
}

test_a_held_call_tells_the_proxy_which_arguments_hold_code if {
	d := airlock.decision with input as on_prod(call("execute", {"sql": "UPDATE orders SET status = 'x' WHERE id = 1"}))
	d.verdict == "require_approval"
	d.approval.facts == {"sql": {"type": "sql", "dialect": "sqlite"}}
	d.mask == ["all"]
}

# --- identities ----------------------------------------------------------------

test_read_only_identity_may_query if {
	verdict(as_groups(call("query", {"sql": "select 1"}), ["readonly"])) == "allow"
}

test_read_only_identity_may_not_write_egress_or_call_unknown_tools if {
	every tool in ["execute", "http_request", "summarize"] {
		d := airlock.decision with input as as_groups(call(tool, {"sql": "insert into orders values (1)", "url": "https://api.github.com/"}), ["readonly"])
		d.verdict == "deny"
		d.reasons == ["identity.read_only"]
	}
}

# --- tools/list filtering ----------------------------------------------------------

test_listing_hides_non_read_tools_from_read_only_identities if {
	visible := {tool |
		some tool in ["query", "execute", "http_request", "read_file"]
		verdict(as_groups(on_prod(listing(tool)), ["readonly"])) != "deny"
	}
	visible == {"query", "read_file"}
}

test_listing_shows_every_tool_to_others if {
	every tool in ["query", "execute", "http_request", "read_file", "summarize"] {
		verdict(on_prod(listing(tool))) != "deny"
	}
}
