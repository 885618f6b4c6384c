# Egress rules, on the facts airlock.url.parse gives (the URL as WHATWG clients read
# it), for the argument a tool's entry names (servers.NAME.tools.TOOL.url.argument):
# the URL must parse, be canonical (exactly its own serialisation, nothing another
# parser could read differently: backslashes, userinfo, odd IP forms, ...), use an
# allowed scheme and name an allowed host of that server.
package airlock

import rego.v1

url_argument := tool_cfg.url.argument

url_text := input.tool.arguments[url_argument]

url := airlock.url.parse(url_text) if is_string(url_text)

egress_cfg := object.get(server_cfg, "egress", {})

allowed_hosts := object.get(egress_cfg, "allowed_hosts", {})

denials contains {
	"reason": "egress.url_missing",
	"message": sprintf("The tool `%v` makes network requests but no URL argument (`%v`) was given; pass the URL to fetch.", [tool_name, url_argument]),
} if {
	url_argument
	not listing
	not is_string(url_text)
}

denials contains {
	"reason": "egress.url_invalid",
	"message": sprintf("`%v` is not a URL Airlock can check (%v); pass an absolute URL such as https://api.github.com/.", [url_text, url.error]),
} if {
	url.ok == false
}

denials contains {
	"reason": "egress.noncanonical_url",
	"message": sprintf("`%v` is not written the way HTTP clients send it (%v); send exactly `%v`.", [url_text, concat(", ", array.concat(url.ambiguities, ["not its own serialisation"])), url.serialized]),
} if {
	url.ok
	not url.canonical
}

denials contains {
	"reason": "egress.scheme_not_allowed",
	"message": sprintf("`%v://` requests are not allowed; use https.", [url.scheme]),
} if {
	url.ok
	not egress_cfg.allowed_schemes[url.scheme]
}

denials contains {
	"reason": "egress.host_not_allowed",
	"message": sprintf("Requests to %v are not allowed (allowed hosts: %v). Ask the security team to add the host to the egress allow-list if it is needed.", [url.host, concat(", ", sort(object.keys(allowed_hosts)))]),
} if {
	url.ok
	not allowed_hosts[url.host]
}
