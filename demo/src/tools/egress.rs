//! `http_request`: pretend egress. Nothing leaves the machine; each URL is parsed the way
//! WHATWG-based HTTP clients parse it (the `url` crate, as Airlock's `airlock.url.parse`
//! does), recorded in the `egress_log` table as the URL that would be sent and its host
//! (so `query` shows what an agent tried to send where), and answered with a fake 200.

use super::{optional_str, required_str, text_result, Arguments, Outcome};
use crate::database::Database;
use rusqlite::params;
use serde_json::{json, Value};
use url::Url;

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
    let target = target_of(url).map_err(|why| {
        format!(
            "`http_request`: invalid url {url:?}: {why}; send an absolute http:// or https:// URL"
        )
    })?;
    let id = db
        .with(|conn| {
            conn.execute(
                "INSERT INTO egress_log (method, url, host, body_bytes) VALUES (?1, ?2, ?3, ?4)",
                params![method, target.url.as_str(), target.host, body.len() as i64],
            )?;
            Ok::<_, rusqlite::Error>(conn.last_insert_rowid())
        })
        .map_err(|e| format!("`http_request` could not record the request: {e}"))?;
    let response_body = json!({"ok": true, "simulated": true, "method": method, "url": target.url.as_str(), "received_bytes": body.len()});
    Ok(text_result(format!(
        "HTTP/1.1 200 OK\ncontent-type: application/json\nx-airlock-demo: simulated; recorded as egress_log id {id}\n\n{response_body}"
    )))
}

/// Where a request would go: the URL as a WHATWG client sends it, and its host.
#[derive(Debug)]
pub struct Target {
    /// The URL as serialised by the WHATWG URL Standard (what goes on the wire).
    pub url: Url,
    /// Its host as WHATWG writes it: lower-case, IDNA as ASCII, IPv4 dotted-decimal,
    /// IPv6 in brackets.
    pub host: String,
}

/// Parses an absolute http(s) URL the way HTTP clients built on the WHATWG URL Standard
/// do (the `url` crate: browsers, fetch, reqwest), so the demo sends a request where such
/// a server would, and where Airlock's `airlock.url.parse` says it goes. That includes
/// WHATWG's repairs: a backslash is a slash, tabs and newlines are dropped, `0x7f.1` is
/// 127.0.0.1.
pub fn target_of(url: &str) -> Result<Target, String> {
    if url.len() > MAX_URL_LEN {
        return Err(format!("longer than {MAX_URL_LEN} bytes"));
    }
    let parsed = Url::parse(url).map_err(|e| e.to_string())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("only http and https URLs are supported".to_owned());
    }
    let host = parsed.host_str().ok_or("no host")?.to_owned();
    Ok(Target { url: parsed, host })
}

#[cfg(test)]
mod tests {
    use super::target_of;

    fn host(url: &str) -> String {
        target_of(url).unwrap().host
    }

    #[test]
    fn urls_are_read_as_whatwg_clients_read_them() {
        assert_eq!(host("https://Example.com/x?y=1"), "example.com");
        assert_eq!(host("http://user:pw@evil.example:8080"), "evil.example");
        assert_eq!(host("http://[::1]:80/"), "[::1]");
        assert_eq!(host("http://0x7f.1/"), "127.0.0.1");
        assert_eq!(host("http://bücher.de/"), "xn--bcher-kva.de");
        // The attack: a WHATWG client sends this to api.github.com, path
        // /@evil.com/x (a naive split said evil.com).
        let target = target_of("https://api.github.com\\@evil.com/x").unwrap();
        assert_eq!(target.host, "api.github.com");
        assert_eq!(target.url.as_str(), "https://api.github.com/@evil.com/x");
        // Tabs and newlines are dropped, as WHATWG clients do.
        assert_eq!(host("https://exa\tmple.com/"), "example.com");
        for bad in [
            "example.com",
            "ftp://example.com",
            "http://exa mple.com",
            "http://example.com:99999",
            "http://ex<ample.com",
            "http://[::1",
            "mailto:a@example.com",
        ] {
            assert!(target_of(bad).is_err(), "{bad} accepted");
        }
        assert!(target_of(&format!("https://a.com/{}", "x".repeat(2048))).is_err());
    }
}
