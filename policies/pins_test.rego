package airlock_test

import rego.v1

import data.airlock

pin_call(status, env) := {
	"identity": {"subject": "ci-bot", "groups": ["automation"], "kind": "agent", "claims": {}},
	"server": {"name": "demo", "labels": {"env": env}},
	"direction": "client_to_server",
	"message": {"method": "tools/call", "id": 1, "params": {"name": "query", "arguments": {"sql": "SELECT 1"}}},
	"tool": {
		"name": "query",
		"arguments": {"sql": "SELECT 1"},
		"pin": {"status": status, "digest": "sha256:new", "pinned_digest": pinned_digest(status)},
	},
	"session": {"id": "s", "calls": 0},
	"time": {"unix_ms": 0},
}

pinned_digest("new") := ""

pinned_digest(status) := "sha256:old" if status != "new"

test_a_drifted_tool_is_refused_with_how_to_accept_it if {
	d := airlock.decision with input as pin_call("drifted", "dev")
	d.verdict == "deny"
	"tool.drifted" in d.reasons
	contains(d.message, "airlock tools accept demo query")
}

test_a_drifted_tool_is_hidden_from_listings if {
	listing := object.union(pin_call("drifted", "dev"), {"listing": true})
	d := airlock.decision with input as listing
	d.verdict == "deny"
}

test_a_pinned_tool_is_decided_as_before if {
	d := airlock.decision with input as pin_call("pinned", "prod")
	d.verdict == "allow"
}

test_a_new_tool_is_not_held_unless_turned_on if {
	d := airlock.decision with input as pin_call("new", "prod")
	d.verdict == "allow"
}

test_a_new_tool_on_prod_is_held_when_turned_on if {
	cfg := object.union(data.airlock_config, {"pins": {"hold_new_on_prod": true}})
	d := airlock.decision with input as pin_call("new", "prod") with data.airlock_config as cfg
	d.verdict == "require_approval"
	"tool.new_on_prod" in d.reasons
	dev := airlock.decision with input as pin_call("new", "dev") with data.airlock_config as cfg
	dev.verdict == "allow"
	listing := object.union(pin_call("new", "prod"), {"listing": true})
	listed := airlock.decision with input as listing with data.airlock_config as cfg
	listed.verdict != "deny"
}
