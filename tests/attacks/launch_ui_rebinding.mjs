// A hostile page in headless Chromium whose name (evil.test) resolves to 127.0.0.1
// (--host-resolver-rules: what DNS rebinding gives an attacker, a short TTL and then the flip).
// For each port in PORTS it loads http://evil.test:<port>/ (the page, now at that origin, reads it
// same-origin) and fetches it again from the page's script; then, as the control, the user's own
// http://127.0.0.1:<port>/. Env: CHROMIUM, PUPPETEER, PROFILE, PORTS (space-separated). Prints JSON
// {port: {rebound: {navigation, fetch: {status, body}}, own: {...}}}.
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const puppeteer = require(process.env.PUPPETEER);
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM, headless: true, userDataDir: process.env.PROFILE,
  args: ['--no-sandbox', '--host-resolver-rules=MAP evil.test 127.0.0.1', '--disable-gpu'],
});
async function visit(url) {
  const page = await browser.newPage();
  let nav = null;
  try { nav = await page.goto(url, { waitUntil: 'load', timeout: 10000 }); } catch (e) { nav = null; }
  let fetched;
  try {
    fetched = await page.evaluate(async (u) => {
      try { const r = await fetch(u); return { status: r.status, body: (await r.text()).slice(0, 200) }; }
      catch (e) { return { error: String(e) }; }
    }, url);
  } catch (e) { fetched = { error: String(e) }; }
  await page.close();
  return { navigation: nav ? nav.status() : 'failed', fetch: fetched };
}
const results = {};
try {
  for (const port of process.env.PORTS.split(' ')) {
    results[port] = { rebound: await visit(`http://evil.test:${port}/`), own: await visit(`http://127.0.0.1:${port}/`) };
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(results));
