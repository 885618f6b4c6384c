//! MCP protocol revisions and the rules each imposes on a request: whether a batch is
//! allowed, and (2026-07-28) that the `Mcp-Method` / `Mcp-Name` headers repeat the
//! body. A header that disagrees with the body is refused: a load balancer or WAF
//! routing on the header must never see a different call from the one decided.

use crate::decode::{Message, Payload};
use crate::error::ProxyError;
use http::{header, HeaderMap, HeaderName};

/// `MCP-Protocol-Version`.
pub(crate) const PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
/// `Mcp-Method` (2026-07-28).
pub(crate) const MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
/// `Mcp-Name` (2026-07-28).
pub(crate) const MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");
/// `Mcp-Session-Id`.
pub(crate) const SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");

/// The protocol revisions the proxy speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Revision {
    /// 2025-03-26: sessions, batches allowed.
    V2025_03_26,
    /// 2025-06-18: batches removed.
    V2025_06_18,
    /// 2025-11-25.
    V2025_11_25,
    /// 2026-07-28: stateless, `server/discover`, `Mcp-Method` required.
    V2026_07_28,
}

impl Revision {
    /// The revision a request declares; none declared means 2025-03-26 (as the spec
    /// says a server must assume).
    pub(crate) fn from_headers(headers: &HeaderMap) -> Result<Revision, ProxyError> {
        let Some(value) = headers.get(PROTOCOL_VERSION) else {
            return Ok(Revision::V2025_03_26);
        };
        let text = value.to_str().unwrap_or("(not text)");
        match text {
            "2025-03-26" => Ok(Revision::V2025_03_26),
            "2025-06-18" => Ok(Revision::V2025_06_18),
            "2025-11-25" => Ok(Revision::V2025_11_25),
            "2026-07-28" => Ok(Revision::V2026_07_28),
            other => Err(ProxyError::UnsupportedProtocol(
                other.chars().take(40).collect(),
            )),
        }
    }

    /// The wire name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Revision::V2025_03_26 => "2025-03-26",
            Revision::V2025_06_18 => "2025-06-18",
            Revision::V2025_11_25 => "2025-11-25",
            Revision::V2026_07_28 => "2026-07-28",
        }
    }

    /// Only 2025-03-26 has JSON-RPC batches.
    pub(crate) fn allows_batch(self) -> bool {
        self == Revision::V2025_03_26
    }
}

/// Refuses bodies the upstream could read as different bytes from the ones decided:
/// a charset other than UTF-8 or any content coding (promise 1).
pub(crate) fn check_content_headers(headers: &HeaderMap) -> Result<(), ProxyError> {
    if let Some(value) = headers.get(header::CONTENT_TYPE) {
        let text = value.to_str().unwrap_or_default().to_ascii_lowercase();
        let mut parts = text.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default();
        let charset_ok =
            parts.all(|p| p.is_empty() || p == "charset=utf-8" || p == "charset=\"utf-8\"");
        if media != "application/json" || !charset_ok {
            return Err(ProxyError::Header(format!(
                "Content-Type `{}` is not accepted; send `application/json` (UTF-8)",
                text.chars().take(80).collect::<String>()
            )));
        }
    }
    for value in headers.get_all(header::CONTENT_ENCODING) {
        if !value
            .to_str()
            .unwrap_or_default()
            .trim()
            .eq_ignore_ascii_case("identity")
        {
            return Err(ProxyError::Header(
                "Content-Encoding is not accepted on MCP requests; send the JSON uncompressed"
                    .to_owned(),
            ));
        }
    }
    Ok(())
}

/// Refuses a batch the revision does not allow, and headers that disagree with the body.
pub(crate) fn check_request(
    headers: &HeaderMap,
    revision: Revision,
    payload: &Payload,
) -> Result<(), ProxyError> {
    match payload {
        Payload::Batch(_) if !revision.allows_batch() => {
            Err(ProxyError::BatchNotAllowed(revision.as_str().to_owned()))
        }
        Payload::Batch(_) => {
            // Batch-era clients send no routing headers; one header cannot describe many calls.
            if headers.contains_key(MCP_METHOD) || headers.contains_key(MCP_NAME) {
                return Err(ProxyError::Header(
                    "Mcp-Method and Mcp-Name cannot describe a batch; send one message per request"
                        .to_owned(),
                ));
            }
            Ok(())
        }
        Payload::Single(message) => check_routing_headers(headers, revision, message),
    }
}

fn check_routing_headers(
    headers: &HeaderMap,
    revision: Revision,
    message: &Message,
) -> Result<(), ProxyError> {
    let method_header = header_text(headers, &MCP_METHOD)?;
    let name_header = header_text(headers, &MCP_NAME)?;
    let body_method = message.method();
    match (method_header, body_method) {
        (Some(header), Some(body)) if header != body => {
            return Err(ProxyError::Header(format!(
                "Mcp-Method header `{header}` does not match the body's method `{body}`; send the same method in both"
            )));
        }
        (Some(header), None) => {
            return Err(ProxyError::Header(format!(
                "Mcp-Method header `{header}` was sent with a message that has no method; drop the header"
            )));
        }
        (None, Some(body)) if revision == Revision::V2026_07_28 => {
            return Err(ProxyError::Header(format!(
                "MCP-Protocol-Version 2026-07-28 requires an Mcp-Method header; send `Mcp-Method: {body}`"
            )));
        }
        _ => {}
    }
    let target = message.target_name();
    match (name_header, target) {
        (Some(header), Some(body)) if header != body => Err(ProxyError::Header(format!(
            "Mcp-Name header `{header}` does not match the body's `{body}`; send the same name in both"
        ))),
        (Some(header), None) => Err(ProxyError::Header(format!(
            "Mcp-Name header `{header}` was sent with a message that names no tool, prompt or resource; drop the header"
        ))),
        (None, Some(body)) if revision == Revision::V2026_07_28 && method_header.is_some() => {
            Err(ProxyError::Header(format!(
                "MCP-Protocol-Version 2026-07-28 requires an Mcp-Name header for this method; send `Mcp-Name: {body}`"
            )))
        }
        _ => Ok(()),
    }
}

/// A header's value as text; a header sent twice or as non-text is refused.
fn header_text<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'a str>, ProxyError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ProxyError::Header(format!(
            "the {name} header was sent twice; send it once"
        )));
    }
    first.to_str().map(Some).map_err(|_| {
        ProxyError::Header(format!(
            "the {name} header is not visible ASCII; send it as the body has it"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{decode, Limits};
    use http::HeaderValue;

    fn payload(body: &str) -> Payload {
        decode(body.as_bytes(), &Limits::default()).unwrap()
    }

    fn headers(pairs: &[(&HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append((*name).clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    const CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"query","arguments":{}}}"#;

    #[test]
    fn a_missing_version_is_2025_03_26_and_an_unknown_one_is_refused() {
        assert_eq!(
            Revision::from_headers(&HeaderMap::new()).unwrap(),
            Revision::V2025_03_26
        );
        let h = headers(&[(&PROTOCOL_VERSION, "2026-07-28")]);
        assert_eq!(Revision::from_headers(&h).unwrap(), Revision::V2026_07_28);
        let h = headers(&[(&PROTOCOL_VERSION, "2024-11-05")]);
        assert!(Revision::from_headers(&h).is_err());
    }

    #[test]
    fn batches_are_allowed_only_under_2025_03_26() {
        let batch = payload(&format!("[{CALL}]"));
        assert!(check_request(&HeaderMap::new(), Revision::V2025_03_26, &batch).is_ok());
        for revision in [
            Revision::V2025_06_18,
            Revision::V2025_11_25,
            Revision::V2026_07_28,
        ] {
            assert!(matches!(
                check_request(&HeaderMap::new(), revision, &batch),
                Err(ProxyError::BatchNotAllowed(_))
            ));
        }
    }

    #[test]
    fn routing_headers_must_match_the_body() {
        let call = payload(CALL);
        let ok = headers(&[(&MCP_METHOD, "tools/call"), (&MCP_NAME, "query")]);
        assert!(check_request(&ok, Revision::V2026_07_28, &call).is_ok());
        let refused = [
            headers(&[(&MCP_METHOD, "tools/list"), (&MCP_NAME, "query")]),
            headers(&[(&MCP_METHOD, "tools/call"), (&MCP_NAME, "execute")]),
            headers(&[
                (&MCP_METHOD, "tools/call"),
                (&MCP_METHOD, "tools/call"),
                (&MCP_NAME, "query"),
            ]),
            headers(&[(&MCP_METHOD, "tools/call")]),
            headers(&[]),
        ];
        for h in refused {
            let err = check_request(&h, Revision::V2026_07_28, &call).unwrap_err();
            assert_eq!(err.status(), http::StatusCode::BAD_REQUEST, "{h:?}");
        }
    }

    #[test]
    fn only_plain_utf8_json_bodies_are_accepted() {
        let ok = [
            headers(&[]),
            headers(&[(&header::CONTENT_TYPE, "application/json")]),
            headers(&[(&header::CONTENT_TYPE, "Application/JSON; charset=UTF-8")]),
        ];
        for h in ok {
            assert!(check_content_headers(&h).is_ok(), "{h:?}");
        }
        let refused = [
            headers(&[(&header::CONTENT_TYPE, "application/json; charset=utf-16")]),
            headers(&[(&header::CONTENT_TYPE, "text/plain")]),
            headers(&[(&header::CONTENT_ENCODING, "gzip")]),
        ];
        for h in refused {
            assert!(check_content_headers(&h).is_err(), "{h:?}");
        }
    }

    #[test]
    fn older_revisions_need_no_headers_but_a_sent_one_must_match() {
        let call = payload(CALL);
        assert!(check_request(&HeaderMap::new(), Revision::V2025_06_18, &call).is_ok());
        let wrong = headers(&[(&MCP_NAME, "execute")]);
        assert!(check_request(&wrong, Revision::V2025_06_18, &call).is_err());
    }
}
