//! `http_request`: pretend egress. Nothing leaves the machine; each request is validated,
//! recorded in the `egress_log` table (so `query` shows what an agent tried to send where)
//! and answered with a fake 200.

use super::{optional_str, required_str, text_result, Arguments, Outcome};
use crate::database::Database;
use rusqlite::params;
use serde_json::{json, Value};

const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
const MAX_URL_LEN: usize = 2048;

/// The `http_request` tool's definition.
pub(super) fn tool() -> Value {
    json!({
        "name": "http_request",
        "title": "Send an HTTP request",
        "description": "Send an HTTP request to a URL and return the response status, headers \
            and body. In this demo the request is simulated: it is validated and recorded in \
            the egress_log table (visible with the `query` tool), and a fake 200 response is \
            returned; no network call is made.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "url": {"type": "string", "description": "Absolute http:// or https:// URL"},
                "method": {"type": "string", "enum": METHODS, "default": "GET", "description": "HTTP method"},
                "body": {"type": "string", "description": "Request body, for POST, PUT and PATCH"}
            },
            "required": ["url"],
            "additionalProperties": false,
        },
        "annotations": {"readOnlyHint": false, "destructiveHint": false, "openWorldHint": true},
    })
}

/// Runs `http_request`.
pub(super) fn request(db: &Database, args: &Arguments) -> Outcome {
    let url = required_str(args, "url", "http_request")?;
    let method = optional_str(args, "method", "http_request")?
        .unwrap_or("GET")
        .to_ascii_uppercase();
    if !METHODS.contains(&method.as_str()) {
        return Err(format!(
            "`http_request`: unsupported method {method}; use one of {}",
            METHODS.join(", ")
        ));
    }
    let body = optional_str(args, "body", "http_request")?.unwrap_or("");
    let host = host_of(url).map_err(|why| format!("`http_request`: invalid url {url:?}: {why}"))?;
    let id = db
        .with(|conn| {
            conn.execute(
                "INSERT INTO egress_log (method, url, host, body_bytes) VALUES (?1, ?2, ?3, ?4)",
                params![method, url, host, body.len() as i64],
            )?;
            Ok::<_, rusqlite::Error>(conn.last_insert_rowid())
        })
        .map_err(|e| format!("`http_request` could not record the request: {e}"))?;
    let response_body = json!({"ok": true, "simulated": true, "method": method, "url": url, "received_bytes": body.len()});
    Ok(text_result(format!(
        "HTTP/1.1 200 OK\ncontent-type: application/json\nx-airlock-demo: simulated; recorded as egress_log id {id}\n\n{response_body}"
    )))
}

/// Validates an absolute http(s) URL and returns its host (lower-cased).
pub(crate) fn host_of(url: &str) -> Result<String, &'static str> {
    if url.len() > MAX_URL_LEN {
        return Err("longer than 2048 bytes");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains whitespace or control characters");
    }
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("not absolute (expected scheme://host/...)")?;
    if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") {
        return Err("only http and https URLs are supported");
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        let (inner, after) = v6.split_once(']').ok_or("unclosed IPv6 bracket")?;
        (inner, after.strip_prefix(':'))
    } else {
        match host_port.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err("no host");
    }
    let host_ok = host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':'));
    if !host_ok {
        return Err("the host has characters a host name cannot have");
    }
    if let Some(port) = port {
        port.parse::<u16>()
            .map_err(|_| "the port is not a number from 0 to 65535")?;
    }
    Ok(host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn urls_are_validated() {
        assert_eq!(host_of("https://Example.com/x?y=1").unwrap(), "example.com");
        assert_eq!(
            host_of("http://user:pw@evil.example:8080").unwrap(),
            "evil.example"
        );
        assert_eq!(host_of("http://[::1]:80/").unwrap(), "::1");
        for bad in [
            "example.com",
            "ftp://example.com",
            "http:///path",
            "http://exa mple.com",
            "http://example.com:99999",
            "http://ex<ample.com",
            "http://[::1",
        ] {
            assert!(host_of(bad).is_err(), "{bad} accepted");
        }
    }
}
