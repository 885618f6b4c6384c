//! `[[jwt]]`: identities from JWT bearer tokens signed by an identity provider.
//!
//! ```toml
//! [[jwt]]
//! issuer = "https://idp.example.com/"   # the token's `iss`, exactly
//! audience = "airlock"                  # the token's `aud` must contain it
//! jwks_url = "https://idp.example.com/.well-known/jwks.json"   # or:
//! # jwks_file = "jwks.json"             # a JWK Set on disk (relative to this file)
//! algorithms = ["RS256", "ES256"]       # default: RS256, RS384, RS512, PS256,
//!                                       # PS384, PS512, ES256, ES384, EdDSA
//! subject_claim = "sub"                 # default "sub"
//! groups_claim = "groups"               # default "groups" (a string or a list)
//! kind = "agent"                        # input.identity.kind, default "agent"
//! leeway_s = 30                         # clock skew allowed on exp/nbf (max 300)
//! refresh_s = 300                       # JWKS refetch interval (jwks_url only)
//! ```
//! Symmetric (`HS*`) and `none` algorithms are refused: a proxy that holds a shared
//! secret could mint identities, and `none` is no signature at all.

use super::Validator;
use crate::config::ConfigError;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawJwt {
    issuer: String,
    audience: String,
    jwks_url: Option<String>,
    jwks_file: Option<PathBuf>,
    algorithms: Option<Vec<String>>,
    subject_claim: Option<String>,
    groups_claim: Option<String>,
    kind: Option<String>,
    leeway_s: Option<u64>,
    refresh_s: Option<u64>,
}

/// Where an issuer's signing keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// Fetched over HTTP(S) and refreshed.
    Url(String),
    /// Read once from a file at start-up.
    File(PathBuf),
}

/// One trusted token issuer (`[[jwt]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct JwtIssuerConfig {
    /// The `iss` a token must carry.
    pub issuer: String,
    /// A value the token's `aud` must contain.
    pub audience: String,
    /// The issuer's JWK Set.
    pub jwks: JwksSource,
    /// Signature algorithms accepted (asymmetric only).
    pub algorithms: Vec<Algorithm>,
    /// The claim naming the subject.
    pub subject_claim: String,
    /// The claim listing the groups.
    pub groups_claim: String,
    /// `input.identity.kind` for these identities.
    pub kind: String,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    /// How often a `jwks_url` is fetched again.
    pub refresh: Duration,
}

const DEFAULT_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

impl Validator<'_> {
    pub(super) fn jwt_issuers(
        &self,
        raw: Vec<RawJwt>,
    ) -> Result<Vec<JwtIssuerConfig>, ConfigError> {
        let mut issuers: Vec<JwtIssuerConfig> = Vec::with_capacity(raw.len());
        for (i, jwt) in raw.into_iter().enumerate() {
            let issuer = self.jwt_issuer(i, jwt)?;
            if issuers.iter().any(|other| other.issuer == issuer.issuer) {
                return Err(self.invalid(
                    format!("jwt[{i}].issuer"),
                    format!("`{}` is configured twice", issuer.issuer),
                    "keep one [[jwt]] table per issuer",
                ));
            }
            issuers.push(issuer);
        }
        Ok(issuers)
    }

    fn jwt_issuer(&self, i: usize, raw: RawJwt) -> Result<JwtIssuerConfig, ConfigError> {
        let key = |field: &str| format!("jwt[{i}].{field}");
        if raw.issuer.trim().is_empty() || raw.audience.trim().is_empty() {
            return Err(self.invalid(
                key("issuer"),
                "issuer and audience must not be empty",
                "copy them from the identity provider's token settings",
            ));
        }
        let jwks = match (raw.jwks_url, raw.jwks_file) {
            (Some(url), None) if url.starts_with("https://") || url.starts_with("http://") => {
                JwksSource::Url(url)
            }
            (Some(url), None) => {
                return Err(self.invalid(
                    key("jwks_url"),
                    format!("`{url}` is not an http(s) URL"),
                    "e.g. \"https://idp.example.com/.well-known/jwks.json\"",
                ))
            }
            (None, Some(file)) => JwksSource::File(self.anchor(&file)),
            _ => {
                return Err(self.invalid(
                    key("jwks_url"),
                    "exactly one of jwks_url and jwks_file is needed",
                    "point at the identity provider's JWK Set",
                ))
            }
        };
        let kind = raw.kind.unwrap_or_else(|| "agent".to_owned());
        if !matches!(kind.as_str(), "agent" | "user" | "service") {
            return Err(self.invalid(
                key("kind"),
                format!("`{kind}` is not a kind"),
                "use \"agent\", \"user\" or \"service\"",
            ));
        }
        let leeway_s = raw.leeway_s.unwrap_or(30);
        if leeway_s > 300 {
            return Err(self.invalid(
                key("leeway_s"),
                "is above 300",
                "clock skew beyond five minutes means a clock to fix, not a leeway to grow",
            ));
        }
        Ok(JwtIssuerConfig {
            issuer: raw.issuer,
            audience: raw.audience,
            jwks,
            algorithms: self.jwt_algorithms(&key("algorithms"), raw.algorithms)?,
            subject_claim: raw.subject_claim.unwrap_or_else(|| "sub".to_owned()),
            groups_claim: raw.groups_claim.unwrap_or_else(|| "groups".to_owned()),
            kind,
            leeway: Duration::from_secs(leeway_s),
            refresh: Duration::from_secs(raw.refresh_s.unwrap_or(300).max(10)),
        })
    }

    fn jwt_algorithms(
        &self,
        key: &str,
        raw: Option<Vec<String>>,
    ) -> Result<Vec<Algorithm>, ConfigError> {
        let Some(names) = raw else {
            return Ok(DEFAULT_ALGORITHMS.to_vec());
        };
        let mut algorithms = Vec::with_capacity(names.len());
        for name in names {
            let algorithm = name
                .parse::<Algorithm>()
                .ok()
                .filter(|a| DEFAULT_ALGORITHMS.contains(a));
            let Some(algorithm) = algorithm else {
                return Err(self.invalid(
                    key,
                    format!("`{name}` is not an accepted algorithm"),
                    "use asymmetric ones: RS256/384/512, PS256/384/512, ES256, ES384, EdDSA (HS* and none are refused)",
                ));
            };
            algorithms.push(algorithm);
        }
        if algorithms.is_empty() {
            return Err(self.invalid(key, "is empty", "omit it for the default list"));
        }
        Ok(algorithms)
    }
}
