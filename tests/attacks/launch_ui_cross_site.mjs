// Web pages in headless Chromium that try to drive a launch's container UI through the dashboard
// relay at ws://127.0.0.1:<port>/ (review 13a R1). For each port in PORTS, in this order and each
// in a fresh browser context (no connection of one page is reused by the next):
//  - cross: a page of another site, http://evil.test:<SITE>/ (--host-resolver-rules maps the name
//    to 127.0.0.1; no rebinding: the page never asks its own origin for anything);
//  - samesite: a page of another port of 127.0.0.1, http://127.0.0.1:<SITE>/ (same site, another
//    origin: what tokfence's own web dashboard or any local dev server is);
//  - own: the UI's own page, http://127.0.0.1:<port>/own-page (the user's), as the control.
// Each page POSTs no-cors to /<tag>-post (a blind CSRF write), then opens ws://127.0.0.1:<port>/<tag>-ws,
// sends "<tag> command" once the UI has spoken, and records what it gets. Env: CHROMIUM,
// PUPPETEER, PROFILE, SITE, PORTS (space-separated). Prints JSON {port: {tag: {post, ws: [...]}}}.
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const puppeteer = require(process.env.PUPPETEER);
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM, headless: true, userDataDir: process.env.PROFILE,
  args: ['--no-sandbox', '--host-resolver-rules=MAP evil.test 127.0.0.1', '--disable-gpu'],
});

async function attempt(pageUrl, port, tag) {
  const context = await browser.createBrowserContext();
  try {
    const page = await context.newPage();
    await page.goto(pageUrl, { waitUntil: 'load', timeout: 10000 });
    return await page.evaluate(async (port, tag) => {
      const r = { post: null, ws: [] };
      try {
        await fetch(`http://127.0.0.1:${port}/${tag}-post`, { method: 'POST', mode: 'no-cors', body: `${tag} post` });
        r.post = 'sent';
      } catch (e) { r.post = String(e); }
      await new Promise((done) => {
        const timer = setTimeout(() => { r.ws.push('timeout'); done(); }, 6000);
        const finish = () => { clearTimeout(timer); done(); };
        let ws;
        try { ws = new WebSocket(`ws://127.0.0.1:${port}/${tag}-ws`); } catch (e) { r.ws.push('throw ' + e); return finish(); }
        ws.onmessage = (e) => {
          r.ws.push(e.data);
          if (r.ws.length === 1) ws.send(`${tag} command`); else { ws.close(); finish(); }
        };
        ws.onerror = () => r.ws.push('error');
        ws.onclose = (e) => { r.ws.push('closed ' + e.code); finish(); };
      });
      return r;
    }, port, tag);
  } catch (e) {
    return { error: String(e) };
  } finally {
    await context.close();
  }
}

const results = {};
try {
  for (const port of process.env.PORTS.split(' ')) {
    results[port] = {
      cross: await attempt(`http://evil.test:${process.env.SITE}/`, port, 'cross'),
      samesite: await attempt(`http://127.0.0.1:${process.env.SITE}/`, port, 'samesite'),
      own: await attempt(`http://127.0.0.1:${port}/own-page`, port, 'own'),
    };
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(results));
