// The user opens a launch's dashboard (a hostile container UI, launch_ui_exfil_stub.py) in headless
// Chromium: for each port in PORTS and path in PATHS (default "/"), in a fresh browser context,
// http://127.0.0.1:<port><path> is loaded as a typed URL would be, given WAIT_MS (4000) to do
// what it does, and what its script recorded (window.__r: fetch, beacon, ws, form, worker, sw) is
// printed with the CSP violations the browser reported. Env: CHROMIUM, PUPPETEER, PROFILE, PORTS, PATHS, WAIT_MS. Prints JSON {port or
// port+path: {r, violations}}.
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const puppeteer = require(process.env.PUPPETEER);
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM, headless: true, userDataDir: process.env.PROFILE,
  args: ['--no-sandbox', '--host-resolver-rules=MAP evil.test 127.0.0.1', '--disable-gpu'],
});
const results = {};
try {
  for (const port of process.env.PORTS.split(' ')) {
    for (const path of (process.env.PATHS || '/').split(' ')) {
      const context = await browser.createBrowserContext();
      const key = path === '/' ? port : port + path;
      try {
        const page = await context.newPage();
        await page.evaluateOnNewDocument(() => {
          window.__violations = [];
          document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(e.effectiveDirective));
        });
        await page.goto(`http://127.0.0.1:${port}${path}`, { waitUntil: 'load', timeout: 10000 }).catch(() => {});
        await new Promise((done) => setTimeout(done, Number(process.env.WAIT_MS || 4000)));
        results[key] = await page.evaluate(() => ({ r: window.__r || null, violations: window.__violations || [] }));
      } catch (e) {
        results[key] = { error: String(e) };
      } finally {
        await context.close();
      }
    }
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(results));
