//! Tokens already verified, by SHA-256, until they expire: an agent sends the same
//! JWT on every call, and its signature need not be checked on each one.
//!
//! Entries live until the token's `exp` (no leeway: past it the full check, with
//! its leeway, decides again), the whole set is dropped when an issuer's keys
//! change (a removed key must stop working), and at most [`MAX_ENTRIES`] are kept.

use super::Identity;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Largest number of tokens remembered.
pub(super) const MAX_ENTRIES: usize = 10_000;

/// Token digest → (identity, `exp` in Unix seconds).
type Entries = HashMap<[u8; 32], (Arc<Identity>, u64)>;

/// The cache.
#[derive(Default)]
pub(super) struct VerifiedTokens {
    entries: Mutex<Entries>,
}

/// A token's cache key.
pub(super) fn key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl VerifiedTokens {
    fn entries(&self) -> MutexGuard<'_, Entries> {
        // A panic elsewhere leaves a map that is still a valid cache.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The identity of a token verified before that has not expired at `now` (Unix s).
    pub(super) fn get(&self, key: &[u8; 32], now: u64) -> Option<Arc<Identity>> {
        let entries = self.entries();
        let (identity, exp) = entries.get(key)?;
        (now < *exp).then(|| Arc::clone(identity))
    }

    /// Remembers a verified token until `exp`.
    pub(super) fn put(&self, key: [u8; 32], identity: &Arc<Identity>, exp: u64, now: u64) {
        if exp <= now {
            return;
        }
        let mut entries = self.entries();
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (_, e)| *e > now);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, (Arc::clone(identity), exp));
    }

    /// Forgets every token (an issuer's keys changed).
    pub(super) fn clear(&self) {
        self.entries().clear();
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Arc<Identity> {
        Arc::new(Identity {
            subject: "a".into(),
            groups: vec![],
            kind: "agent".into(),
            claims: serde_json::Map::new(),
        })
    }

    #[test]
    fn an_entry_serves_until_its_expiry_and_the_set_stays_bounded() {
        let cache = VerifiedTokens::default();
        let k = key("token-1");
        cache.put(k, &identity(), 100, 50);
        assert!(cache.get(&k, 99).is_some());
        assert!(cache.get(&k, 100).is_none(), "expired at exp");
        cache.put(key("stale"), &identity(), 40, 50);
        assert!(
            cache.get(&key("stale"), 10).is_none(),
            "never stored past exp"
        );

        for i in 0..MAX_ENTRIES + 5 {
            cache.put(key(&format!("t{i}")), &identity(), 1_000, 50);
        }
        assert!(cache.len() <= MAX_ENTRIES);
        cache.clear();
        assert_eq!(cache.len(), 0);
    }
}
