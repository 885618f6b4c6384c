//! The official Python MCP SDK (2.x) through `airlock proxy` in front of
//! `airlock demo-server`. Its client probes `server/discover` and speaks the stateless
//! 2026-07-28 revision (no `initialize`, no session) when the server offers it, which
//! the demo server does: a transparent proxy lets that negotiation through unchanged.
//!
//! Needs `scripts/install-test-deps` (`.tools/venv`); fails with that instruction when it
//! is missing, unless `AIRLOCK_SKIP_NODE_TESTS=1`.

mod sdk_common;

use sdk_common::{
    assert_agent_flow, ok_step, python_mcp, run_json_client, sdk_tests_enabled, Stack,
};

/// The stateless revision the demo server offers through `server/discover`.
const STATELESS_REVISION: &str = "2026-07-28";

#[test]
fn python_sdk_speaks_the_stateless_revision_and_is_denied_drop_table_through_the_proxy() {
    let test =
        "python_sdk_speaks_the_stateless_revision_and_is_denied_drop_table_through_the_proxy";
    if !sdk_tests_enabled(test) {
        return;
    }
    let python = python_mcp();
    let stack = Stack::start();
    let report = run_json_client(
        &python,
        &["tests/sdk/client_flow.py", &stack.mcp_url],
        &[("AIRLOCK_SDK_KEY", &stack.api_key)],
    );
    let connect = ok_step(&report, "connect");
    assert_eq!(
        connect["protocolVersion"], STATELESS_REVISION,
        "the Python SDK did not negotiate the stateless revision through the proxy: {report:#}"
    );
    assert_agent_flow(&report);
}
