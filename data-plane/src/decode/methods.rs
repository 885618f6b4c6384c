//! The MCP method names, used to refuse case variants such as `Tools/Call`.

/// Every JSON-RPC method defined by MCP revisions 2025-03-26, 2025-06-18, 2025-11-25 and
/// 2026-07-28, in both directions, requests and notifications.
///
/// Methods outside this list are accepted in any spelling (servers may add their own);
/// a method equal to one of these ignoring ASCII case but spelled differently is refused,
/// because an upstream that matches methods case-insensitively would run the real method
/// while the policy saw an unknown one.
pub const KNOWN_METHODS: &[&str] = &[
    // Lifecycle and utilities.
    "initialize",
    "ping",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "logging/setLevel",
    "notifications/message",
    "completion/complete",
    // Tools, resources, prompts.
    "tools/list",
    "tools/call",
    "notifications/tools/list_changed",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "notifications/resources/list_changed",
    "notifications/resources/updated",
    "prompts/list",
    "prompts/get",
    "notifications/prompts/list_changed",
    // Client features the server calls.
    "sampling/createMessage",
    "roots/list",
    "notifications/roots/list_changed",
    "elicitation/create",
    // 2025-11-25: URL elicitation and tasks.
    "notifications/elicitation/complete",
    "tasks/get",
    "tasks/result",
    "tasks/list",
    "tasks/cancel",
    "notifications/tasks/status",
    // 2026-07-28.
    "server/discover",
];

/// The known method that `method` imitates by letter case alone, if any.
pub(crate) fn case_variant_of(method: &str) -> Option<&'static str> {
    KNOWN_METHODS
        .iter()
        .copied()
        .find(|known| known.eq_ignore_ascii_case(method) && *known != method)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_known_methods_are_unique_ignoring_case() {
        for (i, a) in KNOWN_METHODS.iter().enumerate() {
            for b in &KNOWN_METHODS[i + 1..] {
                assert!(!a.eq_ignore_ascii_case(b), "{a} and {b} collide");
            }
        }
    }

    #[test]
    fn decode_case_variants_are_found_and_exact_names_are_not() {
        assert_eq!(case_variant_of("Tools/Call"), Some("tools/call"));
        assert_eq!(
            case_variant_of("logging/setlevel"),
            Some("logging/setLevel")
        );
        assert_eq!(case_variant_of("tools/call"), None);
        assert_eq!(case_variant_of("tools/calls"), None);
        assert_eq!(case_variant_of("acme/Custom"), None);
    }
}
