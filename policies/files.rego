# File rules, on the facts airlock.path.normalize gives (the path with `.`, `..`,
# duplicate slashes and percent-escapes resolved), for the argument a tool's entry
# names (servers.NAME.tools.TOOL.path.argument): the path must be in normal form
# (what the server opens is exactly what was decided), must not climb above the root,
# and must not reach a system directory or a credential file.
package airlock

import rego.v1

path_argument := tool_cfg.path.argument

path_text := input.tool.arguments[path_argument]

path := airlock.path.normalize(path_text) if is_string(path_text)

files_cfg := object.get(server_cfg, "files", {})

denials contains {
	"reason": "file.path_invalid",
	"message": sprintf("`%v` is not a path Airlock can check (%v); pass a plain path.", [path_text, path.error]),
} if {
	path.ok == false
}

denials contains {
	"reason": "file.noncanonical_path",
	"message": sprintf("`%v` is not in normal form (no `..`, `.`, `//`, percent-escapes or trailing `/`); pass `%v` if that is the file you mean.", [path_text, path.normalized]),
} if {
	path.ok
	not path.was_normal
}

denials contains {
	"reason": "file.escapes_root",
	"message": sprintf("`%v` climbs above its root.", [path_text]),
} if {
	path.escapes_root
}

denials contains {
	"reason": "file.sensitive_path",
	"message": sprintf("Reading `%v` is not allowed: it is a system or credential location. Read files inside the project instead.", [path.normalized]),
} if {
	path.ok
	sensitive(path.normalized)
}

sensitive(p) if {
	some prefix in object.get(files_cfg, "sensitive_prefixes", [])
	startswith(p, prefix)
}

sensitive(p) if {
	some part in split(p, "/")
	some name in object.get(files_cfg, "sensitive_names", [])
	startswith(part, name)
}

denials contains {
	"reason": "file.path_missing",
	"message": sprintf("The tool `%v` reads a file but no path argument (`%v`) was given.", [tool_name, path_argument]),
} if {
	path_argument
	not listing
	not is_string(path_text)
}
