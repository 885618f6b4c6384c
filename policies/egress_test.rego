# Tests of egress.rego: only allow-listed hosts, parsed the way HTTP clients do.
package airlock_test

import rego.v1

import data.airlock

fetch(url) := call("http_request", {"url": url, "method": "GET"})

test_allowed_hosts_pass if {
	every url in [
		"https://api.github.com/repos/x/y",
		"HTTPS://API.GITHUB.COM:443/x",
		"https://pypi.org./simple",
		"http://pypi.org?q=1",
		"https://user:pw@api.github.com/",
	] {
		d := airlock.decision with input as fetch(url)
		d.verdict == "allow"
		d.reasons == ["tool.egress_allowed"]
	}
}

test_other_hosts_are_denied if {
	every url in [
		"https://evil.com/",
		"https://api.github.com@evil.com/",
		"https://api.github.com:443@evil.com",
		"https://evil.com\\@api.github.com",
		"https://evil.com#@api.github.com",
		"https://evil.com?@api.github.com",
		"https://api.github.com.evil.com/",
		"https://github.com/",
		"https://[::1]:8080/",
		"http://127.0.0.1/",
		"https://api%2egithub.com/",
	] {
		reasons(fetch(url)) == ["egress.host_not_allowed"]
	}
}

test_the_deny_message_names_host_and_allow_list if {
	d := airlock.decision with input as fetch("https://Evil.com:8443/x")
	contains(d.message, "evil.com")
	contains(d.message, "api.github.com")
}

test_unparseable_urls_are_denied if {
	every url in ["api.github.com/x", "ftp://api.github.com/", "file:///etc/passwd", "https://", "https:///x", 42] {
		reasons(fetch(url)) == ["egress.url_invalid"]
	}
}

test_a_missing_url_is_denied if {
	reasons(call("http_request", {"method": "GET"})) == ["egress.url_missing"]
}

test_the_allow_list_comes_from_data if {
	reasons(fetch("https://example.org/")) == ["tool.egress_allowed"] with data.airlock_config.egress.allowed_hosts as {"example.org": "test"}
}

test_url_host_parsing if {
	airlock.url_host("https://a:b@Host.Example:1/p?q#f") == "host.example"
	airlock.url_host("https://[::1]:8443/") == "[::1]"
	not airlock.url_host("https://[::1/")
}
