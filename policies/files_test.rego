# Tests of files.rego: paths are read after normalisation, and only normal paths pass.
package airlock_test

import rego.v1

import data.airlock

read(path) := call("read_file", {"path": path})

test_project_files_can_be_read if {
	every path in ["/app/docs/README.md", "/app/data/report.csv", "docs/README.md"] {
		verdict(read(path)) == "allow"
	}
}

test_system_and_credential_paths_are_denied if {
	every path in ["/etc/passwd", "/root/.bashrc", "/proc/self/environ", "/app/.env", "/home/u/.ssh/id_rsa", "/app/.aws/credentials", "/app/.env.local"] {
		d := airlock.decision with input as read(path)
		d.verdict == "deny"
		"file.sensitive_path" in d.reasons
	}
}

test_paths_not_in_normal_form_are_denied if {
	every path in ["/app/../etc/passwd", "/app//x", "/app/./x", "/app/%2e%2e/etc/passwd", "/app/docs/"] {
		d := airlock.decision with input as read(path)
		d.verdict == "deny"
		"file.noncanonical_path" in d.reasons
	}
	d := airlock.decision with input as read("/app/../etc/passwd")
	contains(d.message, "/etc/passwd")
}

test_climbing_above_the_root_is_denied if {
	d := airlock.decision with input as read("../../etc/shadow")
	"file.escapes_root" in d.reasons
}

test_a_missing_or_invalid_path_is_denied if {
	reasons(call("read_file", {})) == ["file.path_missing"]
	reasons(read("")) == ["file.path_invalid"]
}
