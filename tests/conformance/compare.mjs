// Compares two runs of the MCP conformance server suite (`conformance server -o DIR`):
// the reference server reached directly, and the same server reached through
// `airlock proxy`. Used by scripts/conformance.
//
// Usage: node compare.mjs [--label NAME] <direct results dir> <proxy results dir>
//        node compare.mjs [--label NAME] --only <results dir>   (one run: table and counts)
// Prints both per-scenario tables, the scenarios whose outcome differs, the checks whose
// status differs (with the failing side's message), and
// `NAME through the proxy: N passed, N failed` counting the proxy run's scenarios.
// Exits 0 when every scenario has the same outcome in both runs, 1 otherwise.
import { readdirSync, readFileSync, existsSync } from "node:fs";
import { join } from "node:path";

const args = process.argv.slice(2);
let label = "server";
if (args[0] === "--label") {
  label = args[1];
  args.splice(0, 2);
}
const only = args[0] === "--only";
const [directDir, proxyDir] = only ? [args[1], args[1]] : args;
if (!directDir || !proxyDir) {
  console.error("usage: node compare.mjs <direct results dir> <proxy results dir> | --only <dir>");
  process.exit(2);
}

// `server-<scenario>-<ISO timestamp with dashes>` -> scenario
const RESULT_DIR = /^server-(.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$/;

/** Reads one run: Map(scenario -> {outcome, checks: Map(id -> {status, message})}). */
function readRun(dir) {
  const run = new Map();
  if (!existsSync(dir)) {
    return run;
  }
  for (const entry of readdirSync(dir).sort()) {
    const match = RESULT_DIR.exec(entry);
    const file = join(dir, entry, "checks.json");
    if (!match || !existsSync(file)) {
      continue;
    }
    const checks = new Map();
    for (const check of JSON.parse(readFileSync(file, "utf8"))) {
      if (check.status === "INFO") {
        continue; // traffic logs, not verdicts
      }
      const message = check.errorMessage ?? check.details?.message ?? check.description ?? "";
      // A scenario may repeat a check id: number the repeats so none is lost.
      let key = check.id;
      for (let n = 2; checks.has(key); n++) key = `${check.id}#${n}`;
      checks.set(key, { status: check.status, message: String(message) });
    }
    const statuses = [...checks.values()].map((c) => c.status);
    const outcome = statuses.includes("FAILURE") || statuses.length === 0 ? "fail" : "pass";
    run.set(match[1], { outcome, checks });
  }
  return run;
}

function tally(checks) {
  const count = (status) => [...checks.values()].filter((c) => c.status === status).length;
  return `${count("SUCCESS")}/${count("SUCCESS") + count("FAILURE")} checks`;
}

const direct = readRun(directDir);
const proxy = readRun(proxyDir);
const scenarios = [...new Set([...direct.keys(), ...proxy.keys()])];
const width = Math.max(8, ...scenarios.map((s) => s.length));

function summarize(run, where) {
  const outcomes = [...run.values()].map((r) => r.outcome);
  const passed = outcomes.filter((o) => o === "pass").length;
  const none = outcomes.length === 0 ? " (no results were found)" : "";
  console.log(`${label} ${where}${none}: ${passed} passed, ${outcomes.length - passed} failed`);
  return outcomes.length > 0;
}

if (only) {
  console.log(`\n== ${label} ==\n${"scenario".padEnd(width)}  outcome`);
  for (const [scenario, r] of direct) {
    console.log(`${scenario.padEnd(width)}  ${r.outcome} (${tally(r.checks)})`);
    for (const [id, c] of r.checks) {
      if (c.status === "FAILURE") {
        console.log(`${"".padEnd(width)}    ${id}: ${c.message.slice(0, 160)}`);
      }
    }
  }
  process.exit(summarize(direct, "directly") ? 0 : 1);
}

// Checks the proxy passes on purpose even when its upstream fails them: protections
// Airlock adds in front of every server. Only "direct fails, proxy passes" is
// accepted for these; any other difference still counts.
const PROXY_PROTECTIONS = new Map([
  ["dns-rebinding-protection/localhost-host-rebinding-rejected",
   "the proxy refuses DNS-rebinding Origins even when the upstream does not"],
]);
const addedProtection = (scenario) => {
  const d = direct.get(scenario)?.checks ?? new Map();
  const p = proxy.get(scenario)?.checks ?? new Map();
  const ids = new Set([...d.keys(), ...p.keys()]);
  let any = false;
  for (const id of ids) {
    const ds = d.get(id)?.status;
    const ps = p.get(id)?.status;
    if (ds === ps) continue;
    if (!(PROXY_PROTECTIONS.has(`${scenario}/${id}`) && ds === "FAILURE" && ps === "SUCCESS")) {
      return false;
    }
    any = true;
  }
  return any;
};

console.log(`\n== ${label} ==\n${"scenario".padEnd(width)}  direct                 proxy`);
const differences = [];
for (const scenario of scenarios) {
  const d = direct.get(scenario);
  const p = proxy.get(scenario);
  const cell = (r) => (r ? `${r.outcome} (${tally(r.checks)})` : "missing").padEnd(22);
  const same = d && p && d.outcome === p.outcome;
  const protection = !same && d && p && addedProtection(scenario);
  const mark = same ? "" : protection ? "  <-- protection added by the proxy" : "  <-- differs";
  console.log(`${scenario.padEnd(width)}  ${cell(d)} ${cell(p)}${mark}`);
  if (protection) {
    for (const [key, why] of PROXY_PROTECTIONS) {
      if (key.startsWith(`${scenario}/`)) console.log(`${"".padEnd(width)}  (${why})`);
    }
  } else if (!same) {
    differences.push(scenario);
  }
}

const checkDifferences = [];
for (const scenario of scenarios) {
  const d = direct.get(scenario)?.checks ?? new Map();
  const p = proxy.get(scenario)?.checks ?? new Map();
  for (const id of new Set([...d.keys(), ...p.keys()])) {
    const ds = d.get(id)?.status ?? "missing";
    const ps = p.get(id)?.status ?? "missing";
    if (ds !== ps) {
      const failing = ps === "FAILURE" || ps === "missing" ? p.get(id) ?? d.get(id) : d.get(id);
      const message = failing?.message ?? "";
      checkDifferences.push(`  ${scenario} / ${id}: direct ${ds}, proxy ${ps}: ${message}`);
    }
  }
}

console.log("");
if (differences.length === 0 && checkDifferences.length > 0) {
  console.log(`${label}: scenario outcomes are identical directly and through the proxy, except for protections the proxy adds.`);
} else if (differences.length === 0) {
  console.log(`${label}: scenario outcomes are identical directly and through the proxy.`);
} else {
  console.log(`${label}: scenario outcomes differ for ${differences.length}: ${differences.join(", ")}`);
}
if (checkDifferences.length > 0) {
  console.log(`${label}: checks whose status differs:`);
  console.log(checkDifferences.join("\n"));
}

const found = summarize(proxy, "through the proxy");
process.exit(differences.length === 0 && found ? 0 : 1);
