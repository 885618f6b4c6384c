# Egress rules: tools classed "egress" may only reach hosts on the allow-list in
# data.json (airlock_config.egress.allowed_hosts).
#
# The host is parsed the way HTTP clients do, and anything odd fails closed:
# scheme must be allowed; userinfo (`user@`) is dropped by taking what follows the
# last "@"; the authority ends at the first "/", "\", "?" or "#"; the port and a
# trailing dot are dropped; case is folded. A host that is not exactly on the list
# (percent-encoding, whitespace, IP literals) is denied.
package airlock

import rego.v1

egress_urls contains url if {
	tool_class == "egress"
	some name in cfg.egress.url_arguments
	url := input.tool.arguments[name]
}

denials contains {
	"reason": "egress.url_missing",
	"message": sprintf("The tool `%v` makes network requests but no URL argument (%v) was given; pass the URL to fetch.", [input.tool.name, concat(", ", cfg.egress.url_arguments)]),
} if {
	tool_class == "egress"
	not listing
	count(egress_urls) == 0
}

denials contains {
	"reason": "egress.url_invalid",
	"message": sprintf("`%v` is not an http(s) URL Airlock can check; pass an absolute URL such as https://api.github.com/...", [url]),
} if {
	some url in egress_urls
	not url_host(url)
}

denials contains {
	"reason": "egress.host_not_allowed",
	"message": sprintf("Requests to %v are not allowed (allowed hosts: %v). Ask the security team to add the host to the egress allow-list if it is needed.", [host, concat(", ", sort(object.keys(cfg.egress.allowed_hosts)))]),
} if {
	some url in egress_urls
	host := url_host(url)
	not cfg.egress.allowed_hosts[host]
}

url_host(url) := host if {
	is_string(url)
	text := lower(trim_space(url))
	parts := split(text, "://")
	count(parts) > 1
	cfg.egress.allowed_schemes[parts[0]]
	rest := substring(text, count(parts[0]) + 3, -1)
	authority := split(strings.replace_n({"\\": "/", "?": "/", "#": "/"}, rest), "/")[0]
	userinfo_and_host := split(authority, "@")
	host_port := userinfo_and_host[count(userinfo_and_host) - 1]
	host := trim_suffix(without_port(host_port), ".")
	host != ""
}

# An IPv6 literal keeps its brackets ("[::1]"); anything else loses ":port".
without_port(host_port) := substring(host_port, 0, indexof(host_port, "]") + 1) if {
	startswith(host_port, "[")
	indexof(host_port, "]") > 0
} else := split(host_port, ":")[0] if {
	not startswith(host_port, "[")
}
