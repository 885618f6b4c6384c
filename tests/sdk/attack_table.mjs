// A table of attack calls through the official TypeScript MCP SDK, driven by
// tests/policy_attacks.rs.
//
// Usage: AIRLOCK_SDK_KEY=<api key> node attack_table.mjs <mcp url> <cases.json>
// cases.json: [{"name": "...", "tool": "...", "arguments": {...}}, ...]. Connects once,
// calls each tool, and prints one JSON object on stdout: {"<name>": {"ok": true,
// "result": ...} | {"ok": false, "error": {"code", "message", "data"}}}. Exits 0 when
// every call ran (the Rust test judges the outcomes), 2 on bad usage, 3 on overrun.
import { readFileSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const REQUEST_TIMEOUT_MS = 10_000;
const DEADLINE_MS = 60_000;

const [url, casesPath] = process.argv.slice(2);
const key = process.env.AIRLOCK_SDK_KEY;
if (!url || !casesPath || !key) {
  console.error("usage: AIRLOCK_SDK_KEY=<api key> node attack_table.mjs <mcp url> <cases.json>");
  process.exit(2);
}
const cases = JSON.parse(readFileSync(casesPath, "utf8"));
const report = {};
const deadline = setTimeout(() => {
  report.deadline = `the table did not finish within ${DEADLINE_MS} ms`;
  console.log(JSON.stringify(report));
  process.exit(3);
}, DEADLINE_MS);

const options = { timeout: REQUEST_TIMEOUT_MS };
const client = new Client({ name: "airlock-attack-table", version: "0.1.0" });
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${key}` } },
});
await client.connect(transport, options);
for (const c of cases) {
  try {
    report[c.name] = { ok: true, result: await client.callTool({ name: c.tool, arguments: c.arguments }, undefined, options) };
  } catch (err) {
    report[c.name] = { ok: false, error: { code: err?.code ?? null, message: String(err?.message ?? err), data: err?.data ?? null } };
  }
}
await client.close();
clearTimeout(deadline);
console.log(JSON.stringify(report));
