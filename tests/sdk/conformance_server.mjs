// An MCP server (official TypeScript SDK, Streamable HTTP) that provides every fixture the
// MCP conformance server suite asks for: the `test_*` tools, resources and prompts,
// completion, logging, progress, and server-to-client requests (sampling, elicitation).
// scripts/conformance runs the suite against it directly and through `airlock proxy`:
// unlike server-everything, it lets almost every scenario pass directly, so a scenario
// that fails only through the proxy shows a transparency bug in the proxy.
//
// Written from the scenario requirements that `conformance list`/its descriptions state.
// Usage: node conformance_server.mjs   (listens on 127.0.0.1, a free port)
// Prints `conformance-server listening on http://127.0.0.1:PORT/mcp` once bound.
import { randomUUID } from "node:crypto";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { createMcpExpressApp } from "@modelcontextprotocol/sdk/server/express.js";
import {
  CallToolRequestSchema,
  CompleteRequestSchema,
  CreateMessageResultSchema,
  ElicitResultSchema,
  GetPromptRequestSchema,
  ListPromptsRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListResourcesRequestSchema,
  ListToolsRequestSchema,
  ReadResourceRequestSchema,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
} from "@modelcontextprotocol/sdk/types.js";

// A 1x1 PNG, and a WAV of 8 silent samples built at start-up.
const PNG =
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
const WAV = (() => {
  const samples = 8;
  const b = Buffer.alloc(44 + samples * 2);
  b.write("RIFF", 0);
  b.writeUInt32LE(36 + samples * 2, 4);
  b.write("WAVEfmt ", 8);
  b.writeUInt32LE(16, 16); // fmt chunk size
  b.writeUInt16LE(1, 20); // PCM
  b.writeUInt16LE(1, 22); // mono
  b.writeUInt32LE(8000, 24); // sample rate
  b.writeUInt32LE(16000, 28); // byte rate
  b.writeUInt16LE(2, 32); // block align
  b.writeUInt16LE(16, 34); // bits per sample
  b.write("data", 36);
  b.writeUInt32LE(samples * 2, 40);
  return b.toString("base64");
})();

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const text = (t) => ({ type: "text", text: t });
const noArgs = { type: "object", properties: {} };
const stringArg = (name, description) => ({
  type: "object",
  properties: { [name]: { type: "string", description } },
  required: [name],
});

// === tools ===
const TOOLS = [
  { name: "test_simple_text", description: "Returns simple text", inputSchema: noArgs },
  { name: "test_image_content", description: "Returns a PNG image", inputSchema: noArgs },
  { name: "test_audio_content", description: "Returns a WAV clip", inputSchema: noArgs },
  { name: "test_embedded_resource", description: "Returns an embedded resource", inputSchema: noArgs },
  { name: "test_multiple_content_types", description: "Returns text, image and resource", inputSchema: noArgs },
  { name: "test_tool_with_logging", description: "Logs three messages while running", inputSchema: noArgs },
  { name: "test_tool_with_progress", description: "Reports progress 0, 50, 100", inputSchema: noArgs },
  { name: "test_error_handling", description: "Always fails with isError", inputSchema: noArgs },
  { name: "test_sampling", description: "Asks the client to sample", inputSchema: stringArg("prompt", "The prompt") },
  {
    name: "test_elicitation",
    description: "Asks the user for input",
    inputSchema: stringArg("message", "The message to show the user"),
  },
  { name: "test_elicitation_sep1034_defaults", description: "Elicitation with defaults", inputSchema: noArgs },
  { name: "test_elicitation_sep1330_enums", description: "Elicitation with enum forms", inputSchema: noArgs },
  {
    name: "json_schema_2020_12_tool",
    description: "Tool with JSON Schema 2020-12 features",
    inputSchema: {
      $schema: "https://json-schema.org/draft/2020-12/schema",
      type: "object",
      $defs: {
        address: { type: "object", properties: { street: { type: "string" }, city: { type: "string" } } },
      },
      properties: { name: { type: "string" }, address: { $ref: "#/$defs/address" } },
      additionalProperties: false,
    },
  },
];

const SEP1034_SCHEMA = {
  type: "object",
  properties: {
    name: { type: "string", default: "John Doe" },
    age: { type: "integer", default: 30 },
    score: { type: "number", default: 95.5 },
    status: { type: "string", enum: ["active", "inactive", "pending"], default: "active" },
    verified: { type: "boolean", default: true },
  },
};

const SEP1330_SCHEMA = {
  type: "object",
  properties: {
    untitledSingle: { type: "string", enum: ["option1", "option2", "option3"] },
    titledSingle: {
      type: "string",
      oneOf: [
        { const: "value1", title: "First Option" },
        { const: "value2", title: "Second Option" },
        { const: "value3", title: "Third Option" },
      ],
    },
    legacyEnum: {
      type: "string",
      enum: ["opt1", "opt2", "opt3"],
      enumNames: ["Option One", "Option Two", "Option Three"],
    },
    untitledMulti: { type: "array", items: { type: "string", enum: ["option1", "option2", "option3"] } },
    titledMulti: {
      type: "array",
      items: {
        anyOf: [
          { const: "value1", title: "First Choice" },
          { const: "value2", title: "Second Choice" },
          { const: "value3", title: "Third Choice" },
        ],
      },
    },
  },
};

async function elicit(extra, message, requestedSchema) {
  const result = await extra.sendRequest(
    { method: "elicitation/create", params: { message, requestedSchema } },
    ElicitResultSchema,
  );
  return `action=${result.action}, content=${JSON.stringify(result.content ?? {})}`;
}

const embeddedResource = (uri, mimeType, body) => ({ type: "resource", resource: { uri, mimeType, text: body } });

async function notifyEvery50ms(extra, notifications) {
  for (const [i, notification] of notifications.entries()) {
    if (i > 0) await sleep(50);
    if (notification) await extra.sendNotification(notification);
  }
}

/** One handler per tool: (arguments, request extra) -> CallToolResult. */
const TOOL_HANDLERS = {
  test_simple_text: async () => ({ content: [text("This is a simple text response for testing.")] }),
  test_image_content: async () => ({ content: [{ type: "image", data: PNG, mimeType: "image/png" }] }),
  test_audio_content: async () => ({ content: [{ type: "audio", data: WAV, mimeType: "audio/wav" }] }),
  test_embedded_resource: async () => ({
    content: [embeddedResource("test://embedded-resource", "text/plain", "This is an embedded resource content.")],
  }),
  test_multiple_content_types: async () => ({
    content: [
      text("Multiple content types test:"),
      { type: "image", data: PNG, mimeType: "image/png" },
      embeddedResource(
        "test://mixed-content-resource",
        "application/json",
        JSON.stringify({ test: "data", value: 123 }),
      ),
    ],
  }),
  test_tool_with_logging: async (_args, extra) => {
    const log = (data) => ({ method: "notifications/message", params: { level: "info", data } });
    await notifyEvery50ms(extra, [
      log("Tool execution started"),
      log("Tool processing data"),
      log("Tool execution completed"),
    ]);
    return { content: [text("Tool with logging executed successfully")] };
  },
  test_tool_with_progress: async (_args, extra) => {
    const progressToken = extra._meta?.progressToken;
    const progress = (value) =>
      progressToken === undefined
        ? null
        : { method: "notifications/progress", params: { progressToken, progress: value, total: 100 } };
    await notifyEvery50ms(extra, [progress(0), progress(50), progress(100)]);
    return { content: [text("Tool with progress executed successfully")] };
  },
  test_error_handling: async () => ({
    isError: true,
    content: [text("This tool intentionally returns an error for testing")],
  }),
  test_sampling: async (args, extra) => {
    const result = await extra.sendRequest(
      {
        method: "sampling/createMessage",
        params: { messages: [{ role: "user", content: text(String(args.prompt ?? "")) }], maxTokens: 100 },
      },
      CreateMessageResultSchema,
    );
    const answer = result.content?.type === "text" ? result.content.text : JSON.stringify(result.content);
    return { content: [text(`LLM response: ${answer}`)] };
  },
  test_elicitation: async (args, extra) => {
    const outcome = await elicit(extra, String(args.message ?? ""), {
      type: "object",
      properties: {
        username: { type: "string", description: "User's response" },
        email: { type: "string", description: "User's email address" },
      },
      required: ["username", "email"],
    });
    return { content: [text(`User response: ${outcome}`)] };
  },
  test_elicitation_sep1034_defaults: async (_args, extra) => ({
    content: [text(`Elicitation completed: ${await elicit(extra, "Defaults", SEP1034_SCHEMA)}`)],
  }),
  test_elicitation_sep1330_enums: async (_args, extra) => ({
    content: [text(`Elicitation completed: ${await elicit(extra, "Enums", SEP1330_SCHEMA)}`)],
  }),
  json_schema_2020_12_tool: async (args) => ({ content: [text(`Received: ${JSON.stringify(args)}`)] }),
};

async function callTool(name, args, extra) {
  const handler = Object.hasOwn(TOOL_HANDLERS, name) ? TOOL_HANDLERS[name] : null;
  return handler ? handler(args, extra) : { isError: true, content: [text(`Unknown tool: ${name}`)] };
}

// === resources ===
const RESOURCES = [
  { uri: "test://static-text", name: "static-text", description: "A static text resource", mimeType: "text/plain" },
  { uri: "test://static-binary", name: "static-binary", description: "A static PNG", mimeType: "image/png" },
  { uri: "test://watched-resource", name: "watched-resource", description: "A subscribable resource", mimeType: "text/plain" },
];
const TEMPLATE = /^test:\/\/template\/([^/]+)\/data$/;

function readResource(uri) {
  if (uri === "test://static-text") {
    return { uri, mimeType: "text/plain", text: "This is the content of the static text resource." };
  }
  if (uri === "test://static-binary") {
    return { uri, mimeType: "image/png", blob: PNG };
  }
  if (uri === "test://watched-resource") {
    return { uri, mimeType: "text/plain", text: "Watched resource content." };
  }
  const match = TEMPLATE.exec(uri);
  if (match) {
    const id = match[1];
    return {
      uri,
      mimeType: "application/json",
      text: JSON.stringify({ id, templateTest: true, data: `Data for ID: ${id}` }),
    };
  }
  return null;
}

// === prompts ===
const PROMPTS = [
  { name: "test_simple_prompt", description: "A prompt without arguments" },
  {
    name: "test_prompt_with_arguments",
    description: "A prompt with two arguments",
    arguments: [
      { name: "arg1", description: "First test argument", required: true },
      { name: "arg2", description: "Second test argument", required: true },
    ],
  },
  {
    name: "test_prompt_with_embedded_resource",
    description: "A prompt that embeds a resource",
    arguments: [{ name: "resourceUri", description: "URI of the resource to embed", required: true }],
  },
  { name: "test_prompt_with_image", description: "A prompt with an image" },
];

function getPrompt(name, args) {
  const user = (content) => ({ role: "user", content });
  switch (name) {
    case "test_simple_prompt":
      return { messages: [user(text("This is a simple prompt for testing."))] };
    case "test_prompt_with_arguments":
      return { messages: [user(text(`Prompt with arguments: arg1='${args.arg1}', arg2='${args.arg2}'`))] };
    case "test_prompt_with_embedded_resource":
      return {
        messages: [
          user({
            type: "resource",
            resource: { uri: args.resourceUri, mimeType: "text/plain", text: "Embedded resource content for testing." },
          }),
          user(text("Please process the embedded resource above.")),
        ],
      };
    case "test_prompt_with_image":
      return {
        messages: [
          user({ type: "image", data: PNG, mimeType: "image/png" }),
          user(text("Please analyze the image above.")),
        ],
      };
    default:
      return null;
  }
}

const COMPLETIONS = ["paris", "park", "party", "test", "testing"];

// === one MCP server per session ===
function createServer() {
  const server = new Server(
    { name: "airlock-conformance-fixture", version: "0.1.0" },
    {
      capabilities: {
        tools: {},
        resources: { subscribe: true },
        prompts: {},
        logging: {},
        completions: {},
      },
    },
  );
  const subscriptions = new Set();
  server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: TOOLS }));
  server.setRequestHandler(CallToolRequestSchema, async (req, extra) =>
    callTool(req.params.name, req.params.arguments ?? {}, extra),
  );
  server.setRequestHandler(ListResourcesRequestSchema, async () => ({ resources: RESOURCES }));
  server.setRequestHandler(ListResourceTemplatesRequestSchema, async () => ({
    resourceTemplates: [
      {
        uriTemplate: "test://template/{id}/data",
        name: "template",
        description: "Data for an id",
        mimeType: "application/json",
      },
    ],
  }));
  server.setRequestHandler(ReadResourceRequestSchema, async (req) => {
    const content = readResource(req.params.uri);
    if (!content) {
      throw new Error(`Resource ${req.params.uri} not found`);
    }
    return { contents: [content] };
  });
  server.setRequestHandler(SubscribeRequestSchema, async (req) => {
    subscriptions.add(req.params.uri);
    return {};
  });
  server.setRequestHandler(UnsubscribeRequestSchema, async (req) => {
    subscriptions.delete(req.params.uri);
    return {};
  });
  server.setRequestHandler(ListPromptsRequestSchema, async () => ({ prompts: PROMPTS }));
  server.setRequestHandler(GetPromptRequestSchema, async (req) => {
    const prompt = getPrompt(req.params.name, req.params.arguments ?? {});
    if (!prompt) {
      throw new Error(`Prompt ${req.params.name} not found`);
    }
    return prompt;
  });
  server.setRequestHandler(CompleteRequestSchema, async (req) => {
    const prefix = String(req.params.argument?.value ?? "");
    const values = COMPLETIONS.filter((v) => v.startsWith(prefix));
    return { completion: { values, total: values.length, hasMore: false } };
  });
  return server;
}

/** Keeps every SSE event so a client can resume with Last-Event-ID. */
class EventStore {
  events = new Map();
  async storeEvent(streamId, message) {
    const eventId = `${streamId}_${randomUUID()}`;
    this.events.set(eventId, { streamId, message });
    return eventId;
  }
  async getStreamIdForEventId(eventId) {
    return this.events.get(eventId)?.streamId;
  }
  async replayEventsAfter(lastEventId, { send }) {
    const streamId = this.events.get(lastEventId)?.streamId;
    if (!streamId) {
      return "";
    }
    let after = false;
    for (const [eventId, event] of this.events) {
      if (after && event.streamId === streamId) {
        await send(eventId, event.message);
      }
      after ||= eventId === lastEventId;
    }
    return streamId;
  }
}

// Binds 127.0.0.1 and validates Host (DNS-rebinding protection for a localhost server).
const app = createMcpExpressApp({ host: "127.0.0.1" });
const transports = new Map();
const badSession = (res, id) =>
  res.status(400).json({ jsonrpc: "2.0", error: { code: -32000, message: "Bad Request: no valid session" }, id: id ?? null });

app.post("/mcp", async (req, res) => {
  const sessionId = req.headers["mcp-session-id"];
  if (sessionId) {
    const transport = transports.get(sessionId);
    return transport ? transport.handleRequest(req, res, req.body) : badSession(res, req.body?.id);
  }
  const transport = new StreamableHTTPServerTransport({
    sessionIdGenerator: () => randomUUID(),
    eventStore: new EventStore(),
    onsessioninitialized: (id) => transports.set(id, transport),
  });
  transport.onclose = () => transport.sessionId && transports.delete(transport.sessionId);
  await createServer().connect(transport);
  await transport.handleRequest(req, res, req.body);
});

for (const method of ["get", "delete"]) {
  app[method]("/mcp", async (req, res) => {
    const transport = transports.get(req.headers["mcp-session-id"]);
    return transport ? transport.handleRequest(req, res) : badSession(res, null);
  });
}

const listener = app.listen(0, "127.0.0.1", () => {
  const { address, port } = listener.address();
  console.log(`conformance-server listening on http://${address}:${port}/mcp`);
});
listener.on("error", (err) => {
  console.error(`conformance-server could not listen: ${err.message}`);
  process.exit(1);
});
