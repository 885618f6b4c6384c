// One agent session through the official TypeScript MCP SDK, driven by tests/audit_trail.rs:
// every message of it must appear in the audit log, in order, masked.
//
// Usage: AIRLOCK_SDK_KEY=<api key> node audit_flow.mjs <mcp url>
// Connects, lists tools, reads customers' emails and card numbers (`query`, which the
// default policy masks for the agent too), tries a DROP TABLE (denied), closes. Prints
// one JSON object: each step's {"ok", "result"} or {"ok": false, "error"}, and the session id.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const url = process.argv[2];
const key = process.env.AIRLOCK_SDK_KEY;
if (!url || !key) {
  console.error("usage: AIRLOCK_SDK_KEY=<api key> node audit_flow.mjs <mcp url>");
  process.exit(2);
}
const options = { timeout: 10_000 };
const report = {};
async function step(name, run) {
  try {
    report[name] = { ok: true, result: await run() };
  } catch (err) {
    report[name] = { ok: false, error: { code: err?.code ?? null, message: String(err?.message ?? err) } };
  }
}
const client = new Client({ name: "airlock-audit-e2e", version: "0.1.0" });
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${key}` } },
});
await step("connect", async () => {
  await client.connect(transport, options);
  return { sessionId: transport.sessionId ?? null };
});
await step("list_tools", async () => (await client.listTools({}, options)).tools.map((t) => t.name));
await step("cards", () =>
  client.callTool(
    { name: "query", arguments: { sql: "SELECT name, email, card_number FROM customers ORDER BY id LIMIT 5" } },
    undefined,
    options,
  ),
);
await step("drop", () =>
  client.callTool({ name: "execute", arguments: { sql: "DROP TABLE customers" } }, undefined, options),
);
await step("close", async () => {
  await client.close();
  return true;
});
console.log(JSON.stringify(report));
