# Airlock default policy: the decision for every MCP message.
#
# data.airlock.decision is built in three steps, cheapest first:
#   1. anything that is not a client's tools/call is allowed (initialize, tools/list,
#      notifications, pings, resources/*, prompts/*, server-to-client requests);
#   2. a tools/call with any `denials` is denied (all reasons, all messages);
#   3. else one with any `holds` requires approval; else it is allowed.
# The rules that add denials and holds live in sql.rego, egress.rego, files.rego and
# identity.rego; what they know (tool classes, hosts, reviewers) lives in data.json.
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
	"message": concat(" ", {d.message | some d in denials}),
} if {
	count(denials) > 0
} else := {
	"verdict": "require_approval",
	"reasons": sort(holds),
	"approval": combined_approval,
} if {
	count(holds) > 0
} else := {
	"verdict": "allow",
	"reasons": [allow_reason],
	"mask": object.get(cfg.masks, input.tool.name, []),
}

# The class of the called tool (read, write, egress) from data.json; anything
# not listed there is "unknown". (`default` rather than `else`: regorus's RVM 0.14
# skips an `else` whose preceding body only binds an undefined lookup.)
default tool_class := "unknown"

tool_class := class if {
	class := cfg.tool_classes[input.tool.name]
}

# Servers labelled env=prod (or another name in airlock_config.production_envs).
prod if cfg.production_envs[input.server.labels.env]

# In a tools/list filtering check the proxy sends `arguments: {}`: rules about
# argument values must not fire then, and rules about missing arguments must not either.
listing if input.listing == true

allow_reason := "tool.read" if {
	tool_class == "read"
} else := "tool.write_non_prod" if {
	tool_class == "write"
} else := "tool.egress_allowed" if {
	tool_class == "egress"
} else := "tool.unknown_non_prod"

# Several holds ask for the union of their reviewers, the strictest count, the
# shortest timeout, and the sync mode unless every one of them allows async.
combined_approval := {
	"reviewers": sort({r | some h in holds; some r in approval_for(h).reviewers}),
	"min_approvals": max({approval_for(h).min_approvals | some h in holds}),
	"timeout_s": min({approval_for(h).timeout_s | some h in holds}),
	"mode": combined_mode,
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
