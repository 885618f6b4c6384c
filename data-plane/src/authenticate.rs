//! Stage 2, authenticate: the `Authorization: Bearer <key>` header to an `Identity`.
//!
//! Keys are stored as SHA-256 hashes; the presented key is hashed and compared with
//! every stored hash in constant time, so neither a match's position nor a prefix
//! length leaks through timing.

use crate::config::ApiKeyConfig;
use crate::error::ProxyError;
use http::{header, HeaderMap};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Stable subject (the API key's owner).
    pub subject: String,
    /// Groups the subject belongs to.
    pub groups: Vec<String>,
    /// `agent`, `user` or `service`.
    pub kind: String,
}

/// The configured API keys.
#[derive(Debug, Clone)]
pub(crate) struct ApiKeys {
    keys: Vec<([u8; 32], Arc<Identity>)>,
}

const MISSING: &str = "missing API key: send `Authorization: Bearer <key>` with a key listed (as its SHA-256) in the proxy's [[api_keys]]";
const UNKNOWN: &str =
    "unknown API key: check the key, or ask the operator to add its SHA-256 to [[api_keys]]";

impl ApiKeys {
    pub(crate) fn new(config: &[ApiKeyConfig]) -> Self {
        let keys = config
            .iter()
            .map(|k| {
                let identity = Identity {
                    subject: k.subject.clone(),
                    groups: k.groups.clone(),
                    kind: k.kind.clone(),
                };
                (k.sha256, Arc::new(identity))
            })
            .collect();
        Self { keys }
    }

    /// The identity behind the request's bearer key.
    pub(crate) fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<Identity>, ProxyError> {
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or(ProxyError::Unauthorized(MISSING))?;
        let value = value
            .to_str()
            .map_err(|_| ProxyError::Unauthorized(MISSING))?;
        let (scheme, key) = value
            .split_once(' ')
            .ok_or(ProxyError::Unauthorized(MISSING))?;
        if !scheme.eq_ignore_ascii_case("bearer") || key.trim().is_empty() {
            return Err(ProxyError::Unauthorized(MISSING));
        }
        let presented: [u8; 32] = Sha256::digest(key.trim().as_bytes()).into();
        let mut found = None;
        // Walk every key whatever matches, so timing does not reveal which one did.
        for (hash, identity) in &self.keys {
            if constant_time_eq(hash, &presented) {
                found = Some(identity);
            }
        }
        found.cloned().ok_or(ProxyError::Unauthorized(UNKNOWN))
    }
}

/// Compares two digests without an early exit.
pub(crate) fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b.iter()) {
        diff |= x ^ y;
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn keys() -> ApiKeys {
        ApiKeys::new(&[ApiKeyConfig {
            subject: "ci-bot".into(),
            sha256: Sha256::digest(b"k-123").into(),
            groups: vec!["automation".into()],
            kind: "agent".into(),
        }])
    }

    fn with_auth(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn a_known_bearer_key_yields_its_identity() {
        let identity = keys().authenticate(&with_auth("Bearer k-123")).unwrap();
        assert_eq!(identity.subject, "ci-bot");
        assert_eq!(identity.groups, vec!["automation".to_owned()]);
        let identity = keys().authenticate(&with_auth("bearer k-123")).unwrap();
        assert_eq!(identity.subject, "ci-bot");
    }

    #[test]
    fn missing_malformed_and_unknown_keys_are_refused() {
        for headers in [
            HeaderMap::new(),
            with_auth("Basic k-123"),
            with_auth("Bearer "),
            with_auth("Bearer k-124"),
        ] {
            let err = keys().authenticate(&headers).unwrap_err();
            assert_eq!(err.status(), http::StatusCode::UNAUTHORIZED, "{err}");
        }
    }

    #[test]
    fn constant_time_eq_compares_all_bytes() {
        let a = [7u8; 32];
        let mut b = a;
        assert!(constant_time_eq(&a, &b));
        b[31] = 8;
        assert!(!constant_time_eq(&a, &b));
    }
}
