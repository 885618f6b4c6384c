//! URL facts: a URL as the WHATWG URL Standard reads it (the `url` crate), the parser of
//! browsers and of the HTTP clients built on it, so the host a policy checks is the host
//! a request goes to.
//!
//! Why `canonical` and `ambiguous`: parsers disagree. `https://api.github.com\@evil.com/x`
//! goes to `api.github.com` for WHATWG (in http(s) URLs a backslash is a `/` and ends
//! the authority) and to `evil.com` for Python's `urlsplit` and other RFC 3986 style
//! splitters (the authority runs to the first `/`, and what precedes `@` is userinfo).
//! We cannot know which parser the server uses, so the fact says when the text is not exactly what WHATWG
//! would write (`canonical` false) or has a shape other parsers are known to read
//! differently (`ambiguous`), and the policy denies both. The disagreement cases are
//! tested against `http::Uri` (hyper), Python's `urllib.parse` and the demo server in
//! `policy-engine/tests/facts_url_parsers.rs`.

use super::{refusal, too_long};
use serde_json::{json, Value};
use url::{Host, Url};

/// The longest URL [`parse`] reads, in bytes.
pub const MAX_URL_BYTES: usize = 8 * 1024;

/// Reads `text` as an absolute URL by the WHATWG URL Standard and returns its facts.
///
/// ```json
/// {
///   "ok": true,
///   "scheme": "https",
///   "host": "api.github.com",
///   "host_kind": "domain",
///   "port": 443,
///   "port_explicit": false,
///   "userinfo": false,
///   "path": "/x",
///   "query": false,
///   "fragment": false,
///   "serialized": "https://api.github.com/x",
///   "canonical": true,
///   "ambiguous": false,
///   "ambiguities": []
/// }
/// ```
///
/// - `scheme`: lower-cased. `host`: as WHATWG serialises it: IDNA to ASCII (`bücher.de`
///   → `xn--bcher-kva.de`), lower-cased, IPv4 in any form (`0x7f.1`, `2130706433`)
///   written dotted-decimal, IPv6 compressed and in brackets (`[::1]`); empty when the URL
///   has none (`mailto:`). `host_kind`: `domain`, `ipv4`, `ipv6`, `opaque` (a host of a
///   scheme WHATWG does not know) or `none`.
/// - `port`: the explicit port, else the scheme's default (443 for https), else null;
///   `port_explicit` says which.
/// - `userinfo`: a user name or password is present (`https://u:p@host/`).
/// - `path`: the serialised (percent-encoded) path; `query`, `fragment`: present or not.
/// - `serialized`: the URL as WHATWG writes it, which is what the server receives from a
///   WHATWG client.
/// - `ambiguities`: shapes that other parsers read differently: `backslash`,
///   `whitespace_or_control` (WHATWG drops tabs and newlines and trims), `non_ascii`,
///   `userinfo` (what precedes `@` is not the host), `multiple_at`, `percent_in_host`,
///   `ip_shorthand` (an IPv4 host not written as four decimals). `ambiguous` is true
///   when the list is not empty.
/// - `canonical`: the input is byte for byte its serialisation *and* not ambiguous.
///   Whenever another parser's host differs from `host`, `canonical` is false.
///
/// A text that is not an absolute URL, or is over [`MAX_URL_BYTES`], is
/// `{"ok": false, "error": ..., "host": "", "canonical": false, ...}` with the other
/// fields empty or false.
pub fn parse(text: &str) -> Value {
    if text.len() > MAX_URL_BYTES {
        return refusal(too_long("URL", text.len(), MAX_URL_BYTES), empty());
    }
    let url = match Url::parse(text) {
        Ok(url) => url,
        Err(error) => return refusal(format!("not an absolute URL: {error}"), empty()),
    };
    let raw_host = raw_authority(text).map(host_part);
    let ambiguities = ambiguities(text, &url, raw_host);
    let (host, host_kind) = match url.host() {
        None => (String::new(), "none"),
        Some(Host::Domain(domain)) if url.is_special() => (domain.to_owned(), "domain"),
        Some(Host::Domain(opaque)) => (opaque.to_owned(), "opaque"),
        Some(Host::Ipv4(ip)) => (ip.to_string(), "ipv4"),
        Some(Host::Ipv6(ip)) => (format!("[{ip}]"), "ipv6"),
    };
    let canonical = url.as_str() == text && ambiguities.is_empty();
    json!({
        "ok": true,
        "scheme": url.scheme(),
        "host": host,
        "host_kind": host_kind,
        "port": url.port_or_known_default(),
        "port_explicit": url.port().is_some(),
        "userinfo": !url.username().is_empty() || url.password().is_some(),
        "path": url.path(),
        "query": url.query().is_some(),
        "fragment": url.fragment().is_some(),
        "serialized": url.as_str(),
        "canonical": canonical,
        "ambiguous": !ambiguities.is_empty(),
        "ambiguities": ambiguities,
    })
}

fn empty() -> Value {
    json!({
        "scheme": "", "host": "", "host_kind": "none", "port": null, "port_explicit": false,
        "userinfo": false, "path": "", "query": false, "fragment": false, "serialized": "",
        "canonical": false, "ambiguous": false, "ambiguities": [],
    })
}

/// The names of the ambiguous shapes in `text`, in a fixed order.
fn ambiguities(text: &str, url: &Url, raw_host: Option<&str>) -> Vec<&'static str> {
    let mut found = Vec::new();
    if text.contains('\\') {
        found.push("backslash");
    }
    if text
        .chars()
        .any(|c| c.is_ascii_control() || c.is_whitespace())
    {
        found.push("whitespace_or_control");
    }
    if !text.is_ascii() {
        found.push("non_ascii");
    }
    if !url.username().is_empty() || url.password().is_some() {
        found.push("userinfo");
    }
    if raw_authority(text).is_some_and(|authority| authority.matches('@').count() > 1) {
        found.push("multiple_at");
    }
    if raw_host.is_some_and(|host| host.contains('%')) {
        found.push("percent_in_host");
    }
    if let (Some(Host::Ipv4(ip)), Some(raw)) = (url.host(), raw_host) {
        if !raw.eq_ignore_ascii_case(&ip.to_string()) {
            found.push("ip_shorthand");
        }
    }
    found
}

/// The authority as written, the way a naive split reads it: after `scheme://`, up to the
/// first `/`, `\`, `?` or `#`. `None` without `//`.
fn raw_authority(text: &str) -> Option<&str> {
    let (_, rest) = text.split_once("//")?;
    let end = rest.find(['/', '\\', '?', '#']).unwrap_or(rest.len());
    rest.get(..end)
}

/// The host of a raw authority: after the last `@`, before a port.
fn host_part(authority: &str) -> &str {
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    if host_port.starts_with('[') {
        return host_port
            .find(']')
            .and_then(|end| host_port.get(..=end))
            .unwrap_or(host_port);
    }
    host_port
        .rsplit_once(':')
        .map_or(host_port, |(host, _)| host)
}

#[cfg(test)]
#[path = "url_test.rs"]
mod tests;
