# Airlock default policy: the decision for every MCP message.
#
# data.airlock.decision is built in three steps, cheapest first:
#   1. anything that is not a client's tools/call is allowed (initialize, tools/list,
#      notifications, pings, resources/*, prompts/*, server-to-client requests);
#   2. a tools/call with any `denials` is denied (all reasons, all messages);
#   3. else one with any `holds` requires approval; else it is allowed.
# Every tool answer is masked with every detector (`mask: ["all"]`).
#
# What a server's tools are, and which argument holds SQL, a URL or a path, is
# configured per server in data.json (airlock_config.servers.NAME; "*" for any other
# server), so a second server never inherits the demo database's rules. The rules
# that add denials and holds live in sql.rego, egress.rego, files.rego, identity.rego
# and review.rego; they reason about facts (airlock.sql.parse, airlock.url.parse,
# airlock.path.normalize), never about strings.
package airlock

import rego.v1

cfg := data.airlock_config

decision := {"verdict": "allow", "reasons": ["mcp.not_a_tool_call"]} if {
	not tool_call
} else := tool_decision

tool_call if {
	input.message.method == "tools/call"
	input.direction == "client_to_server"
}

tool_decision := {
	"verdict": "deny",
	"reasons": sort({d.reason | some d in denials}),
	"message": concat(" ", sort({d.message | some d in denials})),
} if {
	count(denials) > 0
} else := {
	"verdict": "require_approval",
	"reasons": sort(holds),
	"approval": combined_approval,
	"mask": ["all"],
} if {
	count(holds) > 0
} else := {
	"verdict": "allow",
	"reasons": [allow_reason],
	"mask": ["all"],
}

# The settings of the server this message is for: its own entry, else "*".
server_cfg := object.get(cfg.servers, input.server.name, object.get(cfg.servers, "*", {}))

# The called tool's settings on that server ({} for a tool it does not list).
tool_cfg := object.get(object.get(server_cfg, "tools", {}), tool_name, {})

default tool_name := ""

tool_name := input.tool.name if is_string(input.tool.name)

# read, write or egress; anything the server's entry does not list is "unknown".
tool_class := object.get(tool_cfg, "class", "unknown")

# Servers labelled env=prod (or another name in airlock_config.production_envs).
prod if cfg.production_envs[input.server.labels.env]

# In a tools/list filtering check the proxy sends `arguments: {}`: rules about
# argument values must not fire then, and rules about missing arguments must not either.
listing if input.listing == true

allow_reasons := {
	"read": "tool.read",
	"write": "tool.write_non_prod",
	"egress": "tool.egress_allowed",
}

allow_reason := object.get(allow_reasons, tool_class, "tool.unknown_non_prod")

# Several holds ask for the union of their reviewers, the strictest count, the
# shortest timeout, the sync mode unless every one of them allows async, and tell
# the proxy which arguments hold SQL, URLs and paths (so the reviewer sees their
# parsed facts and masking never reaches into their code).
combined_approval := {
	"reviewers": sort({r | some h in holds; some r in approval_for(h).reviewers}),
	"min_approvals": max({approval_for(h).min_approvals | some h in holds}),
	"timeout_s": min({approval_for(h).timeout_s | some h in holds}),
	"mode": combined_mode,
	"facts": argument_facts,
}

# "async": the agent is answered at once with the approval id and repeats the call
# after approval; "sync" (the default): the call is held open until a decision.
default combined_mode := "sync"

combined_mode := "async" if {
	every h in holds {
		object.get(approval_for(h), "mode", "sync") == "async"
	}
}

approval_for(reason) := object.get(cfg.approvals, reason, {"reviewers": ["security"], "min_approvals": 1, "timeout_s": 600})

# {"sql": {"type": "sql", "dialect": "sqlite"}} for the tool's configured arguments.
argument_facts := {spec.argument: fact |
	some kind, spec in tool_cfg
	kind in {"sql", "url", "path"}
	fact := object.union({"type": kind}, object.get({"sql": {"dialect": sql_dialect}}, kind, {}))
}

denials contains {
	"reason": "mcp.tool_name_missing",
	"message": "This tools/call has no tool name (params.name must be a string); send the name of a tool from tools/list.",
} if {
	not is_string(input.tool.name)
}

holds contains "tool.unknown_on_prod" if {
	tool_class == "unknown"
	is_string(input.tool.name)
	prod
}
