# Tests of files.rego: sensitive paths are denied, ordinary ones allowed.
package airlock_test

import rego.v1

import data.airlock

test_ordinary_paths_are_allowed if {
	every path in ["README.md", "docs/guide.md", "/srv/app/config.yaml", "data/customers.csv"] {
		verdict(call("read_file", {"path": path})) == "allow"
	}
}

test_sensitive_paths_are_denied if {
	every path in [
		"/etc/shadow",
		"/root/.bashrc",
		"/proc/self/environ",
		"../../etc/passwd",
		"docs/../../secret",
		"/home/me/.ssh/id_rsa",
		"~/.aws/credentials",
		"app/.env",
		"//etc/shadow",
		"/./etc/shadow",
		"/var/run/secrets/kubernetes.io/serviceaccount/token",
	] {
		d := airlock.decision with input as call("read_file", {"path": path})
		d.verdict == "deny"
		d.reasons == ["file.sensitive_path"]
		contains(d.message, path)
	}
}

test_path_rules_ignore_non_string_paths if {
	verdict(call("read_file", {"path": ["/etc/shadow"]})) == "allow"
}
