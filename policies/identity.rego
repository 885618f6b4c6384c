# Who may call what. Identities in a read-only group (data.json:
# airlock_config.read_only_groups) may only call tools classed "read"; because the
# proxy asks this for every listed tool, such identities do not even see the others
# in tools/list.
package airlock

import rego.v1

read_only_identity if {
	some group in input.identity.groups
	cfg.read_only_groups[group]
}

denials contains {
	"reason": "identity.read_only",
	"message": sprintf("The tool `%v` is not available to read-only identities (%v is in a read-only group). Use a read tool such as `query`, or ask an administrator for write access.", [input.tool.name, input.identity.subject]),
} if {
	read_only_identity
	tool_class != "read"
}
