//! Stage 2, authenticate: the `Authorization: Bearer <credential>` header to an
//! `Identity`. The credential is an API key from `[[api_keys]]` or a JWT from an
//! issuer in `[[jwt]]` (see [`jwt`]).
//!
//! Keys are stored as SHA-256 hashes; the presented key is hashed and compared with
//! every stored hash in constant time, so neither a match's position nor a prefix
//! length leaks through timing. A credential that is no known key and looks like a
//! JWT (three dot-separated parts) is verified as one.

mod jwt;
mod verified;

use crate::config::{ApiKeyConfig, JwtIssuerConfig};
use crate::error::ProxyError;
use crate::HttpClient;
use http::{header, HeaderMap};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Stable subject (the API key's owner, or the token's subject claim).
    pub subject: String,
    /// Groups the subject belongs to.
    pub groups: Vec<String>,
    /// `agent`, `user` or `service`.
    pub kind: String,
    /// A verified token's claims (`input.identity.claims`); empty for an API key.
    pub claims: Map<String, Value>,
}

/// Every way a caller can prove who it is.
pub(crate) struct Authenticator {
    keys: ApiKeys,
    jwt: Arc<jwt::JwtIssuers>,
}

impl Authenticator {
    /// API keys and JWT issuers; reads `jwks_file`s now.
    pub(crate) fn new(
        keys: &[ApiKeyConfig],
        issuers: &[JwtIssuerConfig],
        client: HttpClient,
    ) -> Result<Authenticator, ProxyError> {
        let jwt = jwt::JwtIssuers::new(issuers, client).map_err(ProxyError::Jwks)?;
        Ok(Authenticator {
            keys: ApiKeys::new(keys),
            jwt: Arc::new(jwt),
        })
    }

    /// Fetches the issuers' `jwks_url`s and keeps them fresh.
    pub(crate) async fn start(&self) {
        self.jwt.start().await;
    }

    /// The identity behind the request's bearer credential.
    pub(crate) async fn authenticate(
        &self,
        headers: &HeaderMap,
    ) -> Result<Arc<Identity>, ProxyError> {
        let credential = bearer(headers)?;
        match self.keys.find(credential) {
            Some(identity) => Ok(identity),
            None if !self.jwt.is_empty() && credential.split('.').count() == 3 => self
                .jwt
                .verify(credential)
                .await
                .map_err(ProxyError::InvalidToken),
            None => Err(ProxyError::Unauthorized(UNKNOWN)),
        }
    }
}

/// The credential of `Authorization: Bearer <credential>`.
fn bearer(headers: &HeaderMap) -> Result<&str, ProxyError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(ProxyError::Unauthorized(MISSING))?;
    let value = value
        .to_str()
        .map_err(|_| ProxyError::Unauthorized(MISSING))?;
    let (scheme, credential) = value
        .split_once(' ')
        .ok_or(ProxyError::Unauthorized(MISSING))?;
    let credential = credential.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || credential.is_empty() {
        return Err(ProxyError::Unauthorized(MISSING));
    }
    Ok(credential)
}

/// The configured API keys.
#[derive(Debug, Clone)]
pub(crate) struct ApiKeys {
    keys: Vec<([u8; 32], Arc<Identity>)>,
}

const MISSING: &str = "missing credentials: send `Authorization: Bearer <key or token>` with an API key listed (as its SHA-256) in the proxy's [[api_keys]] or a JWT from an issuer in [[jwt]]";
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
                    claims: Map::new(),
                };
                (k.sha256, Arc::new(identity))
            })
            .collect();
        Self { keys }
    }

    /// The identity of the API key `key`, if it is one.
    fn find(&self, key: &str) -> Option<Arc<Identity>> {
        let presented: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let mut found = None;
        // Walk every key whatever matches, so timing does not reveal which one did.
        for (hash, identity) in &self.keys {
            if constant_time_eq(hash, &presented) {
                found = Some(identity);
            }
        }
        found.cloned()
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

    fn authenticator() -> Authenticator {
        let client = HttpClient::with_ca_certs(
            std::time::Duration::from_secs(1),
            std::time::Duration::from_secs(1),
            &[],
        );
        Authenticator {
            keys: keys(),
            jwt: Arc::new(jwt::JwtIssuers::new(&[], client).unwrap()),
        }
    }

    #[tokio::test]
    async fn a_known_bearer_key_yields_its_identity() {
        let auth = authenticator();
        let identity = auth.authenticate(&with_auth("Bearer k-123")).await.unwrap();
        assert_eq!(identity.subject, "ci-bot");
        assert_eq!(identity.groups, vec!["automation".to_owned()]);
        assert!(identity.claims.is_empty());
        let identity = auth.authenticate(&with_auth("bearer k-123")).await.unwrap();
        assert_eq!(identity.subject, "ci-bot");
    }

    #[tokio::test]
    async fn missing_malformed_and_unknown_keys_are_refused() {
        for headers in [
            HeaderMap::new(),
            with_auth("Basic k-123"),
            with_auth("Bearer "),
            with_auth("Bearer k-124"),
            // Looks like a JWT, but no issuer is configured: an unknown key.
            with_auth("Bearer a.b.c"),
        ] {
            let err = authenticator().authenticate(&headers).await.unwrap_err();
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
