// One agent session through the official TypeScript MCP SDK, driven by tests/sdk_client.rs.
//
// Usage: AIRLOCK_SDK_KEY=<api key> node client_flow.mjs <mcp url>
// Connects (initialize), lists tools, runs `query`, tries `execute` with a DROP TABLE,
// then runs `query` again. Prints one JSON object on stdout with the outcome of each step:
// {"ok": true, "result": ...} or {"ok": false, "error": {"name", "code", "message", "data"}}.
// Exits 0 when every step ran (the Rust test judges the outcomes), 2 on bad usage,
// 3 when the whole flow overran its deadline.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";

const REQUEST_TIMEOUT_MS = 10_000;
const FLOW_DEADLINE_MS = 30_000;

const url = process.argv[2];
const key = process.env.AIRLOCK_SDK_KEY;
if (!url || !key) {
  console.error("usage: AIRLOCK_SDK_KEY=<api key> node client_flow.mjs <mcp url>");
  process.exit(2);
}

const report = {};
const deadline = setTimeout(() => {
  report.deadline = `the flow did not finish within ${FLOW_DEADLINE_MS} ms`;
  console.log(JSON.stringify(report));
  process.exit(3);
}, FLOW_DEADLINE_MS);

function describeError(err) {
  return {
    name: err?.constructor?.name ?? typeof err,
    isMcpError: err instanceof McpError,
    code: err?.code ?? null,
    message: String(err?.message ?? err),
    data: err?.data ?? null,
  };
}

// Runs one step and records its outcome under `name`; never throws.
async function step(name, run) {
  try {
    report[name] = { ok: true, result: await run() };
  } catch (err) {
    report[name] = { ok: false, error: describeError(err) };
  }
  return report[name].ok;
}

const options = { timeout: REQUEST_TIMEOUT_MS };
const client = new Client({ name: "airlock-sdk-e2e", version: "0.1.0" });
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${key}` } },
});
const callTool = (name, args) => client.callTool({ name, arguments: args }, undefined, options);
const countSql = "SELECT COUNT(*) AS n FROM customers";

const connected = await step("connect", async () => {
  await client.connect(transport, options);
  return {
    serverVersion: client.getServerVersion() ?? null,
    protocolVersion: transport.protocolVersion ?? null,
    sessionId: transport.sessionId ?? null,
  };
});
if (connected) {
  await step("list_tools", async () => (await client.listTools({}, options)).tools.map((t) => t.name));
  await step("query_before", () => callTool("query", { sql: countSql }));
  await step("query_rows", () =>
    callTool("query", { sql: "SELECT id, name, city FROM customers ORDER BY id LIMIT 3" }),
  );
  await step("drop", () => callTool("execute", { sql: "DROP TABLE customers" }));
  await step("query_after", () => callTool("query", { sql: countSql }));
  await step("close", async () => {
    await client.close();
    return true;
  });
}

clearTimeout(deadline);
console.log(JSON.stringify(report));
