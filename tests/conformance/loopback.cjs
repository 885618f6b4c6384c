// Preload (`node -r loopback.cjs server.js`) that keeps a Node server that
// listens on every interface on loopback instead: any TCP listen() without a
// host, or with a wildcard host, is bound to 127.0.0.1. Once bound it prints
// `loopback-preload listening on 127.0.0.1:PORT` to stderr, so a caller that
// asked for port 0 learns the real port.
"use strict";

const net = require("node:net");

const LOOPBACK = "127.0.0.1";
const WILDCARDS = new Set([undefined, null, "", "0.0.0.0", "::", "[::]"]);
const originalListen = net.Server.prototype.listen;

function isPort(value) {
  return typeof value === "number" || (typeof value === "string" && /^\d+$/.test(value));
}

function forceLoopback(args) {
  const [first, second] = args;
  if (first !== null && typeof first === "object" && !Array.isArray(first)) {
    // listen(options[, cb]): leave IPC paths and handles alone.
    if (first.path !== undefined || first.handle !== undefined || first._handle !== undefined) {
      return args;
    }
    if (WILDCARDS.has(first.host)) {
      return [{ ...first, host: LOOPBACK }, ...args.slice(1)];
    }
    return args;
  }
  if (isPort(first) || first === undefined || typeof first === "function") {
    // listen([port][, host][, backlog][, cb]) or listen(cb).
    if (typeof first === "function") {
      return [0, LOOPBACK, ...args];
    }
    if (typeof second === "string" && !/^\d+$/.test(second)) {
      return WILDCARDS.has(second) ? [first, LOOPBACK, ...args.slice(2)] : args;
    }
    return [first, LOOPBACK, ...args.slice(1)];
  }
  return args; // listen(path) for a Unix socket.
}

net.Server.prototype.listen = function listenOnLoopback(...args) {
  this.once("listening", () => {
    const address = this.address();
    if (address && typeof address === "object") {
      process.stderr.write(`loopback-preload listening on ${address.address}:${address.port}\n`);
    }
  });
  return originalListen.apply(this, forceLoopback(args));
};
