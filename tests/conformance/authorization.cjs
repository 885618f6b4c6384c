// Preload (`node -r authorization.cjs conformance.js server --url ...`) that lets the MCP
// conformance CLI authenticate to `airlock proxy`: the CLI has no option for extra
// request headers, and the proxy only admits a client with `Authorization: Bearer <key>`.
//
// Every HTTP request the CLI makes to AIRLOCK_CONFORMANCE_ORIGIN (e.g.
// http://127.0.0.1:PORT) gets `Authorization: Bearer $AIRLOCK_CONFORMANCE_BEARER`, unless
// the request already carries an Authorization header. Both ways the CLI sends requests
// are covered: the global `fetch` (the SDK transport and most scenarios) and undici's
// `request` (the DNS-rebinding scenario, which needs a forged Host header). Requests to
// any other origin are left exactly as they were.
"use strict";

const path = require("node:path");

const origin = process.env.AIRLOCK_CONFORMANCE_ORIGIN;
const bearer = process.env.AIRLOCK_CONFORMANCE_BEARER;
if (!origin || !bearer) {
  throw new Error(
    "authorization.cjs needs AIRLOCK_CONFORMANCE_ORIGIN and AIRLOCK_CONFORMANCE_BEARER in the environment",
  );
}
const credential = `Bearer ${bearer}`;

function targetsProxy(url) {
  try {
    return new URL(String(url)).origin === origin;
  } catch {
    return false;
  }
}

// === global fetch ===
const originalFetch = globalThis.fetch;
globalThis.fetch = function fetchWithAuthorization(input, init) {
  const url = input instanceof Request ? input.url : input;
  if (!targetsProxy(url)) {
    return originalFetch.call(this, input, init);
  }
  const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
  if (!headers.has("authorization")) {
    headers.set("authorization", credential);
  }
  return originalFetch.call(this, input, { ...init, headers });
};

// === undici.request ===
// The CLI imports undici (CommonJS) from its own node_modules; patching that module's
// export before the CLI's ESM import reads it is enough.
const cliEntry = process.argv[1];
let undici;
try {
  undici = require(require.resolve("undici", { paths: [path.dirname(cliEntry ?? ".")] }));
} catch {
  undici = null; // no undici next to this entry point: nothing to patch.
}
if (undici && typeof undici.request === "function") {
  const originalRequest = undici.request;
  undici.request = function requestWithAuthorization(url, options = {}, ...rest) {
    if (!targetsProxy(url)) {
      return originalRequest.call(this, url, options, ...rest);
    }
    const headers = { ...(options.headers ?? {}) };
    const present = Object.keys(headers).some((name) => name.toLowerCase() === "authorization");
    if (!present) {
      headers.authorization = credential;
    }
    return originalRequest.call(this, url, { ...options, headers }, ...rest);
  };
}
