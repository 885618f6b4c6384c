// An agent session through the official TypeScript MCP SDK whose calls may be held for
// human approval by airlock; driven by tests/approvals.rs.
//
// Usage: AIRLOCK_SDK_KEY=<api key> node approval_flow.mjs <mcp url> <steps json>
// steps: a JSON array run in order, each one of
//   {"name": "held", "tool": "execute", "args": {...}, "progress": true}
//       calls the tool (with a progress token when "progress" is true, so waiting resets
//       the SDK's timeout) and records {"ok": true, "result"} or {"ok": false, "error"}
//   {"name": "gate", "waitFile": "/path"}  waits until the file exists (the Rust test
//       creates it once it has done its part, e.g. approved)
// Prints one JSON object: the outcome of each step by name, plus "progress" counts.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";
import { existsSync } from "node:fs";

const REQUEST_TIMEOUT_MS = 20_000;
const FLOW_DEADLINE_MS = 80_000;

const [url, stepsJson] = process.argv.slice(2);
const key = process.env.AIRLOCK_SDK_KEY;
if (!url || !key || !stepsJson) {
  console.error("usage: AIRLOCK_SDK_KEY=<api key> node approval_flow.mjs <mcp url> <steps json>");
  process.exit(2);
}
const steps = JSON.parse(stepsJson);
const report = { progress: {} };
const deadline = setTimeout(() => {
  report.deadline = `the flow did not finish within ${FLOW_DEADLINE_MS} ms`;
  console.log(JSON.stringify(report));
  process.exit(3);
}, FLOW_DEADLINE_MS);

const describeError = (err) => ({
  name: err?.constructor?.name ?? typeof err,
  isMcpError: err instanceof McpError,
  code: err?.code ?? null,
  message: String(err?.message ?? err),
  data: err?.data ?? null,
});

async function record(name, run) {
  try {
    report[name] = { ok: true, result: await run() };
  } catch (err) {
    report[name] = { ok: false, error: describeError(err) };
  }
}

const client = new Client({ name: "airlock-approval-e2e", version: "0.1.0" });
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${key}` } },
});
await record("connect", () => client.connect(transport, { timeout: REQUEST_TIMEOUT_MS }).then(() => true));

for (const step of steps) {
  if (step.waitFile) {
    await record(step.name, async () => {
      while (!existsSync(step.waitFile)) await new Promise((r) => setTimeout(r, 25));
      return true;
    });
    continue;
  }
  const options = { timeout: REQUEST_TIMEOUT_MS };
  if (step.progress) {
    report.progress[step.name] = 0;
    options.resetTimeoutOnProgress = true;
    options.onprogress = () => {
      report.progress[step.name] += 1;
    };
  }
  await record(step.name, () => client.callTool({ name: step.tool, arguments: step.args }, undefined, options));
}
await record("close", () => client.close().then(() => true));
clearTimeout(deadline);
console.log(JSON.stringify(report));
