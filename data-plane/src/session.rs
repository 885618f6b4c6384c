//! Sessions without server-side state.
//!
//! The client never sees the upstream's `Mcp-Session-Id`. It sees
//! `<upstream-id>.<tag>` where `tag` is HMAC-SHA256(secret, subject | server |
//! upstream-id) truncated to 128 bits. Any node with the same secret can verify and
//! unwrap it, so a fleet behind a load balancer and a restarted node keep sessions
//! working (promise 8), and a session opened by one identity is useless to another:
//! its tag does not verify under the other subject, and the proxy answers 404.
//!
//! The upstream id is visible to the client (it is not secret in MCP); what the tag
//! protects is the binding to the identity and server.

use crate::error::ProxyError;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Mutex;

type HmacSha256 = Hmac<Sha256>;

/// Hex characters of the truncated tag (128 bits).
const TAG_HEX_LEN: usize = 32;

/// Seals upstream session ids to an identity and a server.
pub(crate) struct SessionSeal {
    /// The MAC already keyed with the secret: keying hashes two blocks, so it is
    /// done once here and each tag starts from a clone.
    keyed: Option<HmacSha256>,
}

impl SessionSeal {
    pub(crate) fn new(secret: Vec<u8>) -> Self {
        // A MAC accepts any key length; new_from_slice cannot fail for HMAC.
        Self {
            keyed: HmacSha256::new_from_slice(&secret).ok(),
        }
    }

    fn tag(&self, subject: &str, server: &str, upstream_id: &str) -> String {
        let Some(mut mac) = self.keyed.clone() else {
            return String::new();
        };
        // Length-prefix each part so ("a|b", "c") and ("a", "b|c") differ.
        for part in [subject, server, upstream_id] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        let full = mac.finalize().into_bytes();
        hex::encode(&full[..TAG_HEX_LEN / 2])
    }

    /// The id the client sees for an upstream session.
    pub(crate) fn seal(&self, subject: &str, server: &str, upstream_id: &str) -> String {
        format!("{upstream_id}.{}", self.tag(subject, server, upstream_id))
    }

    /// The upstream session id, if `client_id` was sealed for this subject and server.
    pub(crate) fn unseal(
        &self,
        subject: &str,
        server: &str,
        client_id: &str,
    ) -> Result<String, ProxyError> {
        let (upstream_id, tag) = client_id
            .rsplit_once('.')
            .ok_or(ProxyError::SessionNotFound)?;
        let expected = self.tag(subject, server, upstream_id);
        if tag.len() != expected.len() || upstream_id.is_empty() {
            return Err(ProxyError::SessionNotFound);
        }
        let diff = tag
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            return Err(ProxyError::SessionNotFound);
        }
        Ok(upstream_id.to_owned())
    }
}

/// Per-node, best-effort count of messages seen per session (`input.session.calls`).
///
/// Bounded: when full it starts over, so a flood of sessions cannot grow memory.
/// Counts are not shared across nodes nor kept across restarts.
pub(crate) struct CallCounter {
    counts: Mutex<HashMap<String, u64>>,
    capacity: usize,
}

impl CallCounter {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            counts: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// Counts one message on `session`; returns how many came before it.
    pub(crate) fn next(&self, session: &str) -> u64 {
        if session.is_empty() {
            return 0;
        }
        let Ok(mut counts) = self.counts.lock() else {
            return 0;
        };
        if counts.len() >= self.capacity && !counts.contains_key(session) {
            counts.clear();
        }
        let count = counts.entry(session.to_owned()).or_insert(0);
        let before = *count;
        *count += 1;
        before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal() -> SessionSeal {
        SessionSeal::new(b"0123456789abcdef0123456789abcdef".to_vec())
    }

    #[test]
    fn a_sealed_id_unseals_for_the_same_identity_and_server() {
        let id = seal().seal("alice", "demo", "up-1.2");
        assert!(id.starts_with("up-1.2."));
        assert_eq!(seal().unseal("alice", "demo", &id).unwrap(), "up-1.2");
    }

    #[test]
    fn another_identity_or_server_cannot_use_it() {
        let id = seal().seal("alice", "demo", "up-1");
        assert!(matches!(
            seal().unseal("mallory", "demo", &id),
            Err(ProxyError::SessionNotFound)
        ));
        assert!(matches!(
            seal().unseal("alice", "other", &id),
            Err(ProxyError::SessionNotFound)
        ));
    }

    #[test]
    fn forged_or_malformed_ids_are_refused() {
        let id = seal().seal("alice", "demo", "up-1");
        let other_secret = SessionSeal::new(b"another secret, also 32 bytes!!!".to_vec());
        for bad in [
            "up-1",
            "",
            ".",
            "up-1.00",
            &id.replace("up-1", "up-2"),
            &other_secret.seal("alice", "demo", "up-1"),
        ] {
            assert!(seal().unseal("alice", "demo", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_call_counter_counts_and_stays_bounded() {
        let counter = CallCounter::new(2);
        assert_eq!(counter.next("a"), 0);
        assert_eq!(counter.next("a"), 1);
        assert_eq!(counter.next("b"), 0);
        assert_eq!(counter.next("c"), 0);
        assert_eq!(counter.next("a"), 0, "a full counter starts over");
        assert_eq!(counter.next(""), 0);
    }
}
