# File rules: any tool argument named in airlock_config.files.path_arguments (e.g.
# read_file's `path`) must not name a sensitive location: system directories,
# credentials, and traversal or unusual spellings (`..`, `//`, `/./`) that could
# reach them.
package airlock

import rego.v1

denials contains {
	"reason": "file.sensitive_path",
	"message": sprintf("Reading `%v` is not allowed: it is (or may lead to) a sensitive location. Read files inside the project instead, using a plain path without `..`.", [path]),
} if {
	some name in cfg.files.path_arguments
	path := input.tool.arguments[name]
	is_string(path)
	sensitive_path(path)
}

sensitive_path(path) if {
	some prefix in cfg.files.sensitive_prefixes
	startswith(path, prefix)
}

sensitive_path(path) if {
	some part in cfg.files.sensitive_parts
	contains(path, part)
}
