# Tests of egress.rego: only allow-listed hosts, read as WHATWG clients read URLs, and
# only URLs no parser can read differently.
package airlock_test

import rego.v1

import data.airlock

fetch(url) := call("http_request", {"url": url, "method": "GET"})

test_allowed_hosts_pass if {
	every url in [
		"https://api.github.com/repos/x/y",
		"https://pypi.org/simple/?q=1",
		"http://files.pythonhosted.org/packages/x",
	] {
		d := airlock.decision with input as fetch(url)
		d.verdict == "allow"
		d.reasons == ["tool.egress_allowed"]
	}
}

test_other_hosts_are_denied if {
	every url in [
		"https://evil.com/",
		"https://api.github.com.evil.com/",
		"https://github.com/",
		"http://127.0.0.1/",
	] {
		reasons(fetch(url)) == ["egress.host_not_allowed"]
	}
}

test_urls_other_parsers_read_differently_are_denied if {
	every url in [
		"https://api.github.com\\@evil.com/x",
		"https://user:pass@api.github.com/",
		"https://api.github.com@evil.com/",
		"https://evil.com#@api.github.com",
		"http://0x7f.1/",
		"https://api%2egithub.com/",
		"HTTPS://API.GITHUB.COM/x",
		"https://api.github.com",
		"https://api.github.com:443/x",
		" https://api.github.com/",
		"https://api.github.com/\tx",
	] {
		d := airlock.decision with input as fetch(url)
		d.verdict == "deny"
		"egress.noncanonical_url" in d.reasons
	}
}

test_the_deny_says_what_to_send if {
	d := airlock.decision with input as fetch("https://api.github.com")
	contains(d.message, "send exactly `https://api.github.com/`")
}

test_a_backslash_host_trick_is_named if {
	d := airlock.decision with input as fetch("https://api.github.com\\@evil.com/x")
	contains(d.message, "backslash")
}

test_only_http_and_https if {
	d := airlock.decision with input as fetch("ftp://files.pythonhosted.org/x")
	d.verdict == "deny"
	"egress.scheme_not_allowed" in d.reasons
}

test_a_missing_or_invalid_url_is_denied if {
	reasons(call("http_request", {"method": "GET"})) == ["egress.url_missing"]
	reasons(fetch("not a url")) == ["egress.url_invalid"]
	reasons(fetch(42)) == ["egress.url_missing"]
}

test_listing_does_not_need_a_url if {
	verdict(listing("http_request")) == "allow"
}
