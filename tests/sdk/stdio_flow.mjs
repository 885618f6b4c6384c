// One session of the official TypeScript MCP SDK client against server-everything
// running over stdio behind the proxy, driven by tests/stdio_upstreams.rs.
//
// Usage: AIRLOCK_SDK_KEY=<api key> node stdio_flow.mjs <mcp url>
// Connects with the sampling capability (answering sampling requests itself), lists
// tools, calls `echo`, `get-env` (the test policy denies it) and
// `trigger-sampling-request` (a server-to-client request through the proxy), then
// closes (DELETE). Prints one JSON report like client_flow.mjs.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CreateMessageRequestSchema, McpError } from "@modelcontextprotocol/sdk/types.js";

const REQUEST_TIMEOUT_MS = 15_000;
const FLOW_DEADLINE_MS = 60_000;
const url = process.argv[2];
const key = process.env.AIRLOCK_SDK_KEY;
if (!url || !key) {
  console.error("usage: AIRLOCK_SDK_KEY=<api key> node stdio_flow.mjs <mcp url>");
  process.exit(2);
}
const report = {};
const deadline = setTimeout(() => {
  report.deadline = `the flow did not finish within ${FLOW_DEADLINE_MS} ms`;
  console.log(JSON.stringify(report));
  process.exit(3);
}, FLOW_DEADLINE_MS);

async function step(name, run) {
  try {
    report[name] = { ok: true, result: await run() };
  } catch (err) {
    report[name] = {
      ok: false,
      error: { name: err?.constructor?.name, isMcpError: err instanceof McpError, code: err?.code ?? null, message: String(err?.message ?? err) },
    };
  }
  return report[name].ok;
}

const options = { timeout: REQUEST_TIMEOUT_MS };
const client = new Client({ name: "airlock-stdio-e2e", version: "0.1.0" }, { capabilities: { sampling: {} } });
client.setRequestHandler(CreateMessageRequestSchema, async () => ({
  model: "test-model",
  role: "assistant",
  content: { type: "text", text: "sampled by the test client" },
}));
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${key}` } },
});
const call = (name, args) => client.callTool({ name, arguments: args }, undefined, options);

if (await step("connect", async () => { await client.connect(transport, options); return { sessionId: transport.sessionId ?? null }; })) {
  await step("list_tools", async () => (await client.listTools({}, options)).tools.map((t) => t.name));
  await step("echo", () => call("echo", { message: "hello from the SDK" }));
  await step("get_env", () => call("get-env", {}));
  await step("sampling", () => call("trigger-sampling-request", { prompt: "say hi", maxTokens: 20 }));
  await step("close", async () => { await transport.terminateSession(); await client.close(); return true; });
}
clearTimeout(deadline);
console.log(JSON.stringify(report));
