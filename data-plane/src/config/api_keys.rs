//! `[[api_keys]]`: static bearer keys, stored as their SHA-256.

use super::{ApiKeyConfig, ConfigError, RawApiKey, Validator};

impl Validator<'_> {
    pub(super) fn api_keys(&self, raw: &[RawApiKey]) -> Result<Vec<ApiKeyConfig>, ConfigError> {
        let mut keys: Vec<ApiKeyConfig> = Vec::with_capacity(raw.len());
        for (i, k) in raw.iter().enumerate() {
            let key = |field: &str| format!("api_keys[{i}].{field}");
            if k.subject.trim().is_empty() {
                return Err(self.invalid(
                    key("subject"),
                    "is empty",
                    "name who holds the key, e.g. \"ci-bot\"",
                ));
            }
            let bytes = hex::decode(k.sha256.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok());
            let Some(sha256) = bytes else {
                return Err(self.invalid(
                    key("sha256"),
                    "is not 64 hex characters",
                    "store the SHA-256 of the key, e.g. `printf %s \"$KEY\" | sha256sum`",
                ));
            };
            if keys.iter().any(|other| other.sha256 == sha256) {
                return Err(self.invalid(
                    key("sha256"),
                    "duplicates another key's hash",
                    "give each identity its own key",
                ));
            }
            if !matches!(k.kind.as_str(), "agent" | "user" | "service") {
                return Err(self.invalid(
                    key("kind"),
                    format!("`{}` is not a kind", k.kind),
                    "use \"agent\", \"user\" or \"service\"",
                ));
            }
            keys.push(ApiKeyConfig {
                subject: k.subject.clone(),
                sha256,
                groups: k.groups.clone(),
                kind: k.kind.clone(),
            });
        }
        Ok(keys)
    }
}
