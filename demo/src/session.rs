//! Protocol revisions and MCP sessions (`Mcp-Session-Id`).

use std::collections::HashMap;
use std::sync::Mutex;

/// The stateless revision: no `initialize`, no session; `server/discover` instead.
pub(crate) const STATELESS_REVISION: &str = "2026-07-28";

/// The revision whose JSON-RPC batches are accepted (later revisions removed batching).
pub(crate) const BATCH_REVISION: &str = "2025-03-26";

/// Revisions negotiated by `initialize`, oldest first; the last is the default answer.
pub(crate) const SESSION_REVISIONS: &[&str] = &["2025-03-26", "2025-06-18", "2025-11-25"];

/// Every revision the server speaks, as advertised by `server/discover`.
pub(crate) const ALL_REVISIONS: &[&str] =
    &["2025-03-26", "2025-06-18", "2025-11-25", STATELESS_REVISION];

/// Open sessions are bounded so a client that never sends `DELETE` cannot grow memory
/// without limit.
const MAX_SESSIONS: usize = 10_000;

/// The revision answered to an `initialize` that asked for `requested`: the same one
/// when it is supported, else the latest.
pub(crate) fn negotiate(requested: Option<&str>) -> &'static str {
    requested
        .and_then(|r| SESSION_REVISIONS.iter().find(|v| **v == r))
        .copied()
        .unwrap_or(SESSION_REVISIONS[SESSION_REVISIONS.len() - 1])
}

/// The static spelling of a supported revision, or `None`.
pub(crate) fn known_revision(version: &str) -> Option<&'static str> {
    ALL_REVISIONS.iter().find(|v| **v == version).copied()
}

/// One `initialize`d client.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Session {
    /// The negotiated protocol revision.
    pub(crate) revision: &'static str,
}

/// Why a session could not be opened.
#[derive(Debug)]
pub(crate) struct SessionsFull;

/// The open sessions, by id.
#[derive(Default)]
pub(crate) struct Sessions {
    open: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // The map holds plain values; a poisoned lock cannot leave it half-updated.
        match self.open.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Opens a session and returns its id: 32 hex digits from the OS-seeded RNG.
    pub(crate) fn open(&self, revision: &'static str) -> Result<String, SessionsFull> {
        let mut open = self.lock();
        if open.len() >= MAX_SESSIONS {
            return Err(SessionsFull);
        }
        let id = format!("{:032x}", rand::random::<u128>());
        open.insert(id.clone(), Session { revision });
        Ok(id)
    }

    /// The session with this id, if open.
    pub(crate) fn get(&self, id: &str) -> Option<Session> {
        self.lock().get(id).copied()
    }

    /// Ends a session; false if it was not open.
    pub(crate) fn close(&self, id: &str) -> bool {
        self.lock().remove(id).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_echoes_supported_and_falls_back_to_latest() {
        assert_eq!(negotiate(Some("2025-03-26")), "2025-03-26");
        assert_eq!(negotiate(Some("2025-06-18")), "2025-06-18");
        assert_eq!(negotiate(Some("2024-11-05")), "2025-11-25");
        assert_eq!(negotiate(Some(STATELESS_REVISION)), "2025-11-25");
        assert_eq!(negotiate(None), "2025-11-25");
    }

    #[test]
    fn sessions_open_get_close() {
        let sessions = Sessions::default();
        let id = sessions.open("2025-06-18").unwrap();
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(sessions.get(&id).map(|s| s.revision), Some("2025-06-18"));
        assert!(sessions.close(&id));
        assert!(sessions.get(&id).is_none());
        assert!(!sessions.close(&id));
    }
}
