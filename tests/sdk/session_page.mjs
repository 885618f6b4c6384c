// The session view of the control plane's /ui page in a real browser (Debian's
// chromium, headless, driven by playwright-core); driven by tests/session_view.rs.
//
// Usage: node session_page.mjs <page url> <auditor token> <reviewer token> <approval id> <screenshot path>
// As the auditor: opens Sessions, clicks the session, reads the transcript, checks
// that the HTML probe in a payload is shown as text, creates no element and runs no
// script. As the reviewer (own browser context): Sessions is refused; "View session"
// on the pending approval shows its session with the held call highlighted.
// Prints one JSON object with what it saw, or {"error"}.
import { launchChromium } from "./chromium.mjs";

const [url, auditor, reviewer, approvalId, screenshot] = process.argv.slice(2);
if (!url || !auditor || !reviewer || !approvalId || !screenshot) {
  console.error("usage: node session_page.mjs <page url> <auditor token> <reviewer token> <approval id> <screenshot path>");
  process.exit(2);
}
const report = { cspViolations: [], pageErrors: [] };
const browser = await launchChromium();

async function open(token) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  page.on("console", (m) => {
    if (m.text().includes("Content Security Policy")) report.cspViolations.push(m.text());
  });
  page.on("pageerror", (e) => report.pageErrors.push(String(e)));
  await page.goto(url);
  await page.fill("#token", token);
  await page.click("#signin button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#status").textContent.startsWith("signed in"), null, { timeout: 15_000 });
  return page;
}

try {
  const page = await open(auditor);
  await page.click("#show-sessions");
  const row = await page.waitForSelector("tr.session", { timeout: 15_000 });
  report.sessionsListed = await page.$$eval("tr.session", (rows) => rows.length);
  await row.click();
  await page.waitForSelector(".session-transcript .event", { timeout: 15_000 });
  report.events = await page.$$eval(".session-transcript .event", (els) => els.map((e) => ({
    offset: e.querySelector(".offset").textContent,
    what: e.querySelector(".what").textContent,
    verdict: e.querySelector(".badge").textContent,
  })));
  report.probeShownAsText = await page.$$eval(".session-transcript pre.payload",
    (pres) => pres.some((p) => p.textContent.includes('<img src=x onerror=\\"window.__xss=1\\">')
      || p.textContent.includes('<img src=x onerror="window.__xss=1">')));
  report.imgElements = await page.$$eval("img", (imgs) => imgs.length);
  await page.waitForTimeout(300);
  report.xssRan = await page.evaluate(() => window.__xss === 1);
  await page.screenshot({ path: screenshot, fullPage: true });

  const second = await open(reviewer);
  await second.click("#show-sessions");
  await second.waitForFunction(() => document.querySelector("#sessions-error").textContent.length > 0, null, { timeout: 15_000 });
  report.reviewerListError = await second.textContent("#sessions-error");
  await second.click("#show-approvals");
  const button = await second.waitForSelector(`button.view-session[data-id="${approvalId}"]`, { timeout: 15_000 });
  await button.click();
  const held = await second.waitForSelector(".session-transcript .event.held", { timeout: 15_000 });
  report.heldText = await held.textContent();
  report.reviewerEvents = await second.$$eval(".session-transcript .event", (els) => els.length);
  report.reviewerXssRan = await second.evaluate(() => window.__xss === 1);
} catch (err) {
  report.error = String(err?.message ?? err);
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
