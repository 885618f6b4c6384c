//! JWT bearer tokens from the identity providers in `[[jwt]]`.
//!
//! ```text
//! token ─▶ header: alg accepted? ─▶ unverified `iss` picks the issuer
//!       ─▶ key by `kid` (unknown kid: refetch the JWKS, at most every 10 s)
//!       ─▶ signature, exp/nbf (leeway), iss, aud ─▶ Identity { subject, groups, claims }
//! ```
//! Only asymmetric algorithms are accepted, and a key is only used for the family
//! it belongs to, so neither `alg: none` nor an HMAC token "signed" with a public
//! key gets through. The keys of a `jwks_url` are refetched every `refresh_s` by a
//! background task and kept when a fetch fails (the last good set serves).

use super::verified::{self, VerifiedTokens};
use super::Identity;
use crate::config::{JwksSource, JwtIssuerConfig};
use crate::HttpClient;
use arc_swap::ArcSwap;
use http_body_util::{BodyExt, Full, Limited};
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest JWK Set accepted.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// How long start-up waits for an issuer's keys.
const START_FETCH: Duration = Duration::from_secs(5);
/// An unknown `kid` refetches the keys at most this often.
const MIN_REFETCH: Duration = Duration::from_secs(10);

/// Why a token was refused; shown to the caller (it names no secret).
pub(crate) type Refusal = String;

/// One issuer's signing keys.
#[derive(Default)]
struct KeySet {
    keys: Vec<(Option<String>, DecodingKey)>,
}

impl KeySet {
    /// The usable signature keys of `set`: `oct` (shared secrets) and encryption
    /// keys are skipped.
    fn from_jwks(set: &JwkSet) -> KeySet {
        let keys = set
            .keys
            .iter()
            .filter(|jwk| !matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)))
            .filter(|jwk| jwk.common.public_key_use != Some(PublicKeyUse::Encryption))
            .filter_map(|jwk| {
                let key = DecodingKey::from_jwk(jwk).ok()?;
                Some((jwk.common.key_id.clone(), key))
            })
            .collect();
        KeySet { keys }
    }

    /// Keys that may verify a token with `kid` and `alg`.
    fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'a DecodingKey> + 'a {
        self.keys
            .iter()
            .filter(move |(id, key)| {
                key.family() == alg.family() && (kid.is_none() || id.as_deref() == kid)
            })
            .map(|(_, key)| key)
    }
}

/// A trusted issuer and its current keys.
struct Issuer {
    config: JwtIssuerConfig,
    keys: ArcSwap<KeySet>,
    /// When the keys were last fetched (successfully or not).
    fetched: Mutex<Option<Instant>>,
    /// Why the last fetch failed, while it does.
    failing: Mutex<Option<String>>,
    /// Held while a request-triggered refetch runs.
    refetching: tokio::sync::Mutex<()>,
}

/// The `[[jwt]]` issuers of a proxy.
pub(crate) struct JwtIssuers {
    issuers: Vec<Arc<Issuer>>,
    client: HttpClient,
    verified: VerifiedTokens,
}

impl JwtIssuers {
    /// Loads `jwks_file` keys now; `jwks_url` keys are fetched by [`JwtIssuers::start`].
    pub(crate) fn new(
        configs: &[JwtIssuerConfig],
        client: HttpClient,
    ) -> Result<JwtIssuers, String> {
        let mut issuers = Vec::with_capacity(configs.len());
        for config in configs {
            let keys = match &config.jwks {
                JwksSource::File(path) => {
                    let text = std::fs::read(path)
                        .map_err(|e| format!("cannot read jwks_file {}: {e}", path.display()))?;
                    let set = parse_jwks(&text)
                        .map_err(|e| format!("jwks_file {}: {e}", path.display()))?;
                    if set.keys.is_empty() {
                        return Err(format!(
                            "jwks_file {} has no usable signature key (RSA, EC or OKP)",
                            path.display()
                        ));
                    }
                    set
                }
                JwksSource::Url(_) => KeySet::default(),
            };
            issuers.push(Arc::new(Issuer {
                config: config.clone(),
                keys: ArcSwap::from_pointee(keys),
                fetched: Mutex::new(None),
                failing: Mutex::new(None),
                refetching: tokio::sync::Mutex::new(()),
            }));
        }
        Ok(JwtIssuers {
            issuers,
            client,
            verified: VerifiedTokens::default(),
        })
    }

    /// True when no issuer is configured.
    pub(crate) fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }

    /// Fetches every `jwks_url` now (waiting at most [`START_FETCH`] each: an identity
    /// provider that is down must not keep the proxy from serving API keys), then
    /// keeps them fresh in the background.
    pub(crate) async fn start(self: &Arc<Self>) {
        for issuer in &self.issuers {
            if let JwksSource::Url(_) = issuer.config.jwks {
                if tokio::time::timeout(START_FETCH, self.refetch(issuer))
                    .await
                    .is_err()
                {
                    tracing::warn!(issuer = %issuer.config.issuer, "the JWKS did not arrive within 5 s; starting without it (tokens of this issuer are refused until it does)");
                }
                let this = Arc::downgrade(self);
                let issuer = Arc::clone(issuer);
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(issuer.config.refresh).await;
                        let Some(this) = this.upgrade() else { return };
                        this.refetch(&issuer).await;
                    }
                });
            }
        }
    }

    /// The identity `token` carries, or why not: from the cache of tokens verified
    /// before, else verified now (and remembered until its `exp`).
    pub(crate) async fn verify(&self, token: &str) -> Result<Arc<Identity>, Refusal> {
        let key = verified::key(token);
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(identity) = self.verified.get(&key, now) {
            return Ok(identity);
        }
        let (identity, exp) = self.verify_now(token).await?;
        let identity = Arc::new(identity);
        self.verified.put(key, &identity, exp, now);
        Ok(identity)
    }

    /// Verifies `token` with the issuer's keys; the identity and its `exp`.
    async fn verify_now(&self, token: &str) -> Result<(Identity, u64), Refusal> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| format!("the bearer token is not a valid JWT ({e})"))?;
        let issuer = self.issuer_of(token)?;
        if !issuer.config.algorithms.contains(&header.alg) {
            return Err(format!(
                "token algorithm {:?} is not accepted for issuer {}",
                header.alg, issuer.config.issuer
            ));
        }
        let kid = header.kid.as_deref();
        let claims = match check(issuer, token, kid, header.alg) {
            Err(Unverified::NoKey) => {
                // One refetch at a time: requests that arrive meanwhile wait for it
                // and use the keys it brought rather than failing or fetching again.
                let _single = issuer.refetching.lock().await;
                match check(issuer, token, kid, header.alg) {
                    Err(Unverified::NoKey) if self.may_refetch(issuer) => {
                        self.refetch(issuer).await;
                        check(issuer, token, kid, header.alg)
                    }
                    other => other,
                }
            }
            other => other,
        };
        let claims = claims.map_err(|e| e.describe(issuer, kid))?;
        // `exp` is a required claim: verification has checked it is there.
        let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        Ok((identity(&issuer.config, claims)?, exp))
    }

    fn issuer_of(&self, token: &str) -> Result<&Arc<Issuer>, Refusal> {
        let unverified = jsonwebtoken::dangerous::insecure_decode::<Map<String, Value>>(token)
            .map_err(|e| format!("the bearer token's claims are unreadable ({e})"))?;
        let iss = unverified.claims.get("iss").and_then(Value::as_str);
        self.issuers
            .iter()
            .find(|i| Some(i.config.issuer.as_str()) == iss)
            .ok_or_else(|| {
                format!(
                    "token issuer {} is not trusted by this proxy; ask the operator to add a [[jwt]] issuer",
                    iss.map_or("(none)".to_owned(), |s| format!("`{s}`"))
                )
            })
    }

    /// Claims the right to refetch now: true at most once per [`MIN_REFETCH`],
    /// however many requests with an unknown `kid` arrive at once.
    fn may_refetch(&self, issuer: &Issuer) -> bool {
        let JwksSource::Url(_) = issuer.config.jwks else {
            return false;
        };
        let mut fetched = issuer
            .fetched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let due = fetched.is_none_or(|at| at.elapsed() >= MIN_REFETCH);
        if due {
            *fetched = Some(Instant::now());
        }
        due
    }

    /// Fetches the issuer's JWKS; keeps the current keys when that fails.
    async fn refetch(&self, issuer: &Issuer) {
        let JwksSource::Url(url) = &issuer.config.jwks else {
            return;
        };
        *issuer
            .fetched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
        let result = fetch(&self.client, url).await;
        let mut failing = issuer
            .failing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match result {
            Ok(keys) => {
                if failing.take().is_some() {
                    tracing::info!(issuer = %issuer.config.issuer, "JWKS fetched again");
                }
                tracing::debug!(issuer = %issuer.config.issuer, keys = keys.keys.len(), "JWKS loaded");
                issuer.keys.store(Arc::new(keys));
                // A key may have been withdrawn: tokens are checked again.
                self.verified.clear();
            }
            Err(error) => {
                if failing.as_deref() != Some(error.as_str()) {
                    tracing::warn!(issuer = %issuer.config.issuer, %url, %error, "cannot fetch the JWKS; keeping the keys already loaded");
                }
                *failing = Some(error);
            }
        }
    }
}

/// Why verification failed before the issuer's rules were applied.
enum Unverified {
    /// No key of the token's family (and `kid`) is loaded.
    NoKey,
    /// A key was tried and the token failed.
    Invalid(jsonwebtoken::errors::Error),
}

impl Unverified {
    fn describe(self, issuer: &Issuer, kid: Option<&str>) -> Refusal {
        use jsonwebtoken::errors::ErrorKind;
        match self {
            Unverified::NoKey => {
                let why = issuer
                    .failing
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone()
                    .map(|e| format!(" (fetching its JWKS fails: {e})"))
                    .unwrap_or_default();
                format!(
                    "no signing key {} of issuer {} is known{why}",
                    kid.map_or("for this algorithm".to_owned(), |k| format!("`{k}`")),
                    issuer.config.issuer
                )
            }
            Unverified::Invalid(e) => match e.kind() {
                ErrorKind::ExpiredSignature => "the token has expired: get a new one".to_owned(),
                ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".to_owned(),
                ErrorKind::InvalidAudience => format!(
                    "the token's audience does not include `{}`",
                    issuer.config.audience
                ),
                ErrorKind::InvalidSignature => "the token's signature does not verify".to_owned(),
                ErrorKind::MissingRequiredClaim(claim) => {
                    format!("the token has no `{claim}` claim")
                }
                _ => format!("the token is not valid: {e}"),
            },
        }
    }
}

/// Verifies `token` with the issuer's current keys.
fn check(
    issuer: &Issuer,
    token: &str,
    kid: Option<&str>,
    alg: Algorithm,
) -> Result<Map<String, Value>, Unverified> {
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[&issuer.config.issuer]);
    validation.set_audience(&[&issuer.config.audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    validation.leeway = issuer.config.leeway.as_secs();
    validation.validate_nbf = true;
    let keys = issuer.keys.load();
    let mut last = Unverified::NoKey;
    for key in keys.candidates(kid, alg) {
        match jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation) {
            Ok(data) => return Ok(data.claims),
            Err(e) => last = Unverified::Invalid(e),
        }
    }
    Err(last)
}

/// The identity the verified `claims` carry.
fn identity(config: &JwtIssuerConfig, claims: Map<String, Value>) -> Result<Identity, Refusal> {
    let subject = claims
        .get(&config.subject_claim)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            format!(
                "the token has no `{}` claim to name its subject",
                config.subject_claim
            )
        })?
        .to_owned();
    let groups = match claims.get(&config.groups_claim) {
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(many)) => many
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    Ok(Identity {
        subject,
        groups,
        kind: config.kind.clone(),
        claims,
    })
}

fn parse_jwks(bytes: &[u8]) -> Result<KeySet, String> {
    let set: JwkSet = serde_json::from_slice(bytes).map_err(|e| format!("not a JWK Set ({e})"))?;
    Ok(KeySet::from_jwks(&set))
}

async fn fetch(client: &HttpClient, url: &str) -> Result<KeySet, String> {
    let request = http::Request::get(url)
        .header(http::header::ACCEPT, "application/json")
        .body(Full::default())
        .map_err(|e| format!("bad jwks_url: {e}"))?;
    let response = client.send("jwks", request).await.map_err(|e| match e {
        crate::ProxyError::UpstreamUnavailable { detail, .. } => detail,
        crate::ProxyError::UpstreamTimeout { after, .. } => {
            format!("no answer within {}s", after.as_secs())
        }
        other => other.to_string(),
    })?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
        .collect()
        .await
        .map_err(|e| format!("reading the body: {e}"))?
        .to_bytes();
    let keys = parse_jwks(&body)?;
    if keys.keys.is_empty() {
        return Err("the JWK Set has no usable signature key (RSA, EC or OKP)".to_owned());
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    fn issuer(jwks: &Value) -> (tempfile::TempDir, JwtIssuers) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, jwks.to_string()).unwrap();
        let config = JwtIssuerConfig {
            issuer: "https://idp/".into(),
            audience: "airlock".into(),
            jwks: JwksSource::File(path),
            algorithms: vec![Algorithm::EdDSA, Algorithm::HS256],
            subject_claim: "email".into(),
            groups_claim: "roles".into(),
            kind: "user".into(),
            leeway: Duration::from_secs(0),
            refresh: Duration::from_secs(300),
        };
        let client = HttpClient::with_ca_certs(Duration::from_secs(1), Duration::from_secs(1), &[]);
        (dir, JwtIssuers::new(&[config], client).unwrap())
    }

    fn claims() -> Value {
        let exp = jsonwebtoken::get_current_timestamp() + 60;
        json!({"iss": "https://idp/", "aud": ["other", "airlock"], "exp": exp,
               "email": "ada@example.com", "roles": ["dba", 7, "sre"]})
    }

    #[tokio::test]
    async fn a_jwks_file_token_maps_the_configured_claims_to_an_identity() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let x = URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
        let (_dir, issuers) = issuer(&json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x}]}));
        let der = key.to_pkcs8_der().unwrap();
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::EdDSA),
            &claims(),
            &EncodingKey::from_ed_der(der.as_bytes()),
        )
        .unwrap();
        let identity = issuers.verify(&token).await.unwrap();
        assert_eq!(identity.subject, "ada@example.com");
        assert_eq!(identity.groups, ["dba", "sre"], "non-strings are skipped");
        assert_eq!(identity.kind, "user");
        assert_eq!(identity.claims["aud"], json!(["other", "airlock"]));
    }

    #[tokio::test]
    async fn a_shared_secret_in_the_jwks_is_never_a_verification_key() {
        // Even with HS256 allowed by mistake, an `oct` key in the set is skipped:
        // whoever can read the JWKS could otherwise mint tokens.
        let secret = URL_SAFE_NO_PAD.encode(b"shared-secret");
        let x = URL_SAFE_NO_PAD.encode([5u8; 32]);
        let (_dir, issuers) = issuer(&json!({"keys": [
            {"kty": "oct", "k": secret},
            {"kty": "OKP", "crv": "Ed25519", "x": x}
        ]}));
        assert_eq!(issuers.issuers[0].keys.load().keys.len(), 1);
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims(),
            &EncodingKey::from_secret(b"shared-secret"),
        )
        .unwrap();
        let refusal = issuers.verify(&token).await.unwrap_err();
        assert!(refusal.contains("no signing key"), "{refusal}");
    }
}
