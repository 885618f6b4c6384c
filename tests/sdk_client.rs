//! The official TypeScript MCP SDK, as an agent would use it, through `airlock proxy` in
//! front of `airlock demo-server`: the proxy must be invisible to an allowed call and
//! must surface a policy denial as the JSON-RPC error the SDK raises as `McpError`.
//!
//! Needs `scripts/install-test-deps` (Node 22 and `tests/sdk/node_modules`); fails with
//! that instruction when they are missing, unless `AIRLOCK_SKIP_NODE_TESTS=1`.

mod sdk_common;

use sdk_common::{assert_agent_flow, node22, ok_step, run_json_client, sdk_tests_enabled, Stack};

#[test]
fn typescript_sdk_queries_and_is_denied_drop_table_through_the_proxy() {
    if !sdk_tests_enabled("typescript_sdk_queries_and_is_denied_drop_table_through_the_proxy") {
        return;
    }
    let node = node22();
    let stack = Stack::start();
    let report = run_json_client(
        &node,
        &["tests/sdk/client_flow.mjs", &stack.mcp_url],
        &[("AIRLOCK_SDK_KEY", &stack.api_key)],
    );
    let connect = ok_step(&report, "connect");
    assert!(
        connect["serverVersion"]["name"].is_string(),
        "initialize through the proxy returned no serverInfo: {report:#}"
    );
    assert_agent_flow(&report);
}
