# Pinned tool definitions (issue 10): a tool whose definition changed since it was
# reviewed is hidden from tools/list and its calls are refused until a reviewer
# accepts the new definition (`airlock tools accept SERVER TOOL`); a tool never
# reviewed is held for approval on prod before use, once the operator turns that on
# (data.airlock_config.pins.hold_new_on_prod), until it is pinned
# (`airlock tools pin SERVER TOOL`).
#
# input.tool.pin is set by the proxy on calls and on listing checks:
# {"status": "pinned" | "new" | "drifted", "digest": "sha256:...", "pinned_digest": "sha256:..."}.
package airlock

import rego.v1

# A drifted tool: refused on calls, and (as a listing check is decided like a call)
# left out of tools/list.
denials contains {
	"reason": "tool.drifted",
	"message": sprintf(
		"The definition of tool %s changed since it was reviewed (pinned %s, now %s); it is withheld until a reviewer accepts it with `airlock tools accept %s %s`.",
		[input.tool.name, input.tool.pin.pinned_digest, input.tool.pin.digest, input.server.name, input.tool.name],
	),
} if {
	input.tool.pin.status == "drifted"
}

# A tool never reviewed, called on prod: a human looks first (listings are not held).
holds contains "tool.new_on_prod" if {
	input.tool.pin.status == "new"
	prod
	not listing
	object.get(cfg, ["pins", "hold_new_on_prod"], false) == true
}
