// The real OpenClaw control UI through launch's dashboard relay (and its page policy) in headless
// Chromium: opens URL (the dashboard URL launch printed, #token=... included), waits up to 60 s for
// the UI's WebSocket to the gateway to carry frames both ways, and prints JSON {ws_sent,
// ws_received, ws_urls, violations, title, text, reply} (reply: "pong" when a chat turn typed into
// the UI was answered) plus a screenshot at SHOT. Env: CHROMIUM,
// PUPPETEER, PROFILE, URL, SHOT.
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const puppeteer = require(process.env.PUPPETEER);
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM, headless: true, userDataDir: process.env.PROFILE,
  args: ['--no-sandbox', '--disable-gpu'],
});
const result = { ws_sent: 0, ws_received: 0, ws_urls: [], violations: [] };
try {
  const page = await browser.newPage();
  const cdp = await page.createCDPSession();
  await cdp.send('Network.enable');
  cdp.on('Network.webSocketCreated', (e) => result.ws_urls.push(e.url));
  cdp.on('Network.webSocketFrameSent', () => { result.ws_sent++; });
  cdp.on('Network.webSocketFrameReceived', () => { result.ws_received++; });
  await page.evaluateOnNewDocument(() => {
    document.addEventListener('securitypolicyviolation', (e) =>
      console.log('tokfence-test-violation ' + e.effectiveDirective + ' ' + e.blockedURI));
  });
  page.on('console', (m) => {
    const text = m.text();
    if (text.startsWith('tokfence-test-violation ')) result.violations.push(text.slice(24));
  });
  await page.goto(process.env.URL, { waitUntil: 'load', timeout: 30000 });
  for (let i = 0; i < 120 && !(result.ws_sent >= 2 && result.ws_received >= 2); i++)
    await new Promise((done) => setTimeout(done, 500));
  await new Promise((done) => setTimeout(done, 2000));  // let the first view render
  // A chat turn from the UI: the gateway's agent asks the model through the proxy (the fake
  // upstream answers "pong").
  const box = await page.waitForSelector('textarea', { timeout: 10000 }).catch(() => null);
  if (box) {
    await box.type('ping');
    await page.keyboard.press('Enter');
    for (let i = 0; i < 60; i++) {
      const text = await page.evaluate(() => document.body.innerText || '');
      if (/\bpong\b/.test(text)) { result.reply = 'pong'; break; }
      await new Promise((done) => setTimeout(done, 500));
    }
  }
  result.title = await page.title();
  result.text = (await page.evaluate(() => document.body.innerText || '')).slice(0, 400);
  await page.screenshot({ path: process.env.SHOT });
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
