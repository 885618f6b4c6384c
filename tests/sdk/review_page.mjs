// A reviewer in a real browser (Debian's chromium, headless, driven by playwright-core)
// on the control plane's /ui page; driven by tests/approvals.rs.
//
// Usage: node review_page.mjs <page url> <reviewer token> <screenshot path>
// Signs in, waits for a pending approval to appear without reloading, checks that its
// payload is shown, takes a screenshot, types a reason, clicks Approve, and waits until
// the card leaves the pending state. Prints one JSON object:
// {"id", "payloadShown", "signedInAs", "live", "finalState", "reviewShown"} or {"error"}.
import { launchChromium } from "./chromium.mjs";

const [url, token, screenshot] = process.argv.slice(2);
if (!url || !token || !screenshot) {
  console.error("usage: node review_page.mjs <page url> <reviewer token> <screenshot path>");
  process.exit(2);
}
const report = {};
const browser = await launchChromium();
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  await page.goto(url);
  await page.fill("#token", token);
  await page.click("#signin button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#status").textContent.startsWith("signed in"), null, { timeout: 15_000 });
  report.signedInAs = await page.textContent("#status");
  // The page follows the live change stream (it polls only while that is down).
  await page.waitForFunction(() => state.live === true, null, { timeout: 15_000 });
  report.live = true;
  const card = await page.waitForSelector('#pending .card[data-state="pending"]', { timeout: 40_000 });
  report.id = await card.getAttribute("id");
  report.payloadShown = (await card.textContent()).includes("INSERT INTO customers");
  await page.screenshot({ path: screenshot, fullPage: true });
  await page.fill(`textarea[data-id="${report.id}"]`, "checked in the browser");
  await page.click(`button.approve[data-id="${report.id}"]`);
  const done = await page.waitForSelector(`#recent .card[id="${report.id}"]`, { timeout: 15_000 });
  report.finalState = await done.getAttribute("data-state");
  report.reviewShown = (await done.textContent()).includes("checked in the browser");
} catch (err) {
  report.error = String(err?.message ?? err);
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
