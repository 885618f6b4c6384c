// The reviewer page in a real browser (Debian's chromium, headless): what a reviewer
// sees first on a pending approval. Driven by tests/reviewer_view.rs.
//
// Usage: node reviewer_facts.mjs <page url> <reviewer token> <screenshot path>
// Signs in, waits for a pending approval, and prints one JSON object: {"id",
// "warnings": [text of each warning], "facts": text of the facts block, "payload":
// text of the payload block, "factsBeforePayload": bool} or {"error"}.
import { launchChromium } from "./chromium.mjs";

const [url, token, screenshot] = process.argv.slice(2);
if (!url || !token || !screenshot) {
  console.error("usage: node reviewer_facts.mjs <page url> <reviewer token> <screenshot path>");
  process.exit(2);
}
const report = {};
const browser = await launchChromium();
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  await page.goto(url);
  await page.fill("#token", token);
  await page.click("#signin button[type=submit]");
  const card = await page.waitForSelector('#pending .card[data-state="pending"]', { timeout: 40_000 });
  report.id = await card.getAttribute("id");
  report.warnings = await card.$$eval("p.warn", (ps) => ps.map((p) => p.textContent));
  report.facts = await card.$eval("pre.facts", (pre) => pre.textContent).catch(() => null);
  report.payload = await card.$eval("pre.payload", (pre) => pre.textContent).catch(() => null);
  report.factsBeforePayload = await card.evaluate((c) => {
    const f = c.querySelector("pre.facts"), p = c.querySelector("pre.payload");
    return !!(f && p && (f.compareDocumentPosition(p) & Node.DOCUMENT_POSITION_FOLLOWING));
  });
  await page.screenshot({ path: screenshot, fullPage: true });
} catch (err) {
  report.error = String(err?.message ?? err);
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
