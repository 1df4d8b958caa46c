// The web dashboard in a real headless Chromium (driven by puppeteer-core over the DevTools
// protocol; run by dashboard_browser.sh, which starts the daemon and passes everything in the
// environment). Exits non-zero with a message on the first failed check.
//   LOGIN_URL, DASH, PROXY_URL, HOSTILE (http://127.0.0.1:<port>), SHOTS (screenshot dir),
//   CHROMIUM, PUPPETEER (path of the puppeteer-core package), PROFILE (a fresh profile dir)
import { createRequire } from 'node:module';

const env = process.env;
const require = createRequire(import.meta.url);
const puppeteer = require(env.PUPPETEER);

function check(ok, what) {
  if (!ok) throw new Error('check failed: ' + what);
  console.log('ok: ' + what);
}

async function proxied(model) {
  const r = await fetch(env.PROXY_URL + '/openai/v1/chat/completions', {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer x' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }),
  });
  return { status: r.status, id: r.headers.get('x-tokfence-request-id'), body: await r.text() };
}

async function shot(page, name) {
  await page.screenshot({ path: `${env.SHOTS}/${name}.png`, fullPage: true });
}

// Every page of the dashboard, watched for CSP violations and script errors.
function watch(page, problems) {
  page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
  page.on('pageerror', (e) => problems.push(String(e)));
}

async function openPage(page, path) {
  await page.goto(env.DASH + path, { waitUntil: 'load' });
  try {
    await page.waitForSelector('body[data-ready="true"]', { timeout: 10000 });
  } catch (e) {
    const shown = await page.evaluate(() => document.getElementById('message')?.textContent);
    throw new Error(`${path} did not finish rendering: ${shown || e.message}`);
  }
}

async function dashboardFlow(page) {
  await page.goto(env.LOGIN_URL, { waitUntil: 'load' });
  check(new URL(page.url()).pathname === '/', 'the login URL lands on the overview: ' + page.url());
  await page.waitForSelector('body[data-ready="true"]', { timeout: 10000 });
  await page.waitForSelector('#chart', { timeout: 10000 });
  const cookies = await page.cookies();
  check(cookies.some((c) => c.name === 'tokfence_dashboard' && c.httpOnly && c.sameSite === 'Strict'), 'HttpOnly SameSite=Strict cookie');
  check(!(await page.evaluate(() => document.cookie)).includes('tokfence_dashboard'), 'the cookie is not readable by script');

  await openPage(page, '/requests');
  await page.waitForFunction(() => document.getElementById('live').textContent === 'live', { timeout: 10000 });
  const sent = await proxied('gpt-4o');
  check(sent.status === 200 && sent.id, 'a request through the proxy: ' + sent.status);
  await page.waitForSelector(`tr[data-id="${sent.id}"]`, { timeout: 10000 });
  check(true, 'the request appeared live on the requests page');
  await shot(page, 'requests');
  // The overview with that request in it: the chart has a bar now.
  await openPage(page, '/');
  await page.waitForSelector('#chart svg rect', { timeout: 10000 });
  await shot(page, 'overview');

  for (const p of ['agents', 'vault']) {
    await openPage(page, '/' + p);
    await shot(page, p);
  }
  const fingerprint = await page.$eval('tr[data-provider="openai"] code.fingerprint', (n) => n.textContent);
  check(/^\.\.\.[A-Za-z0-9]{4}$/.test(fingerprint), 'the vault page shows the key\'s fingerprint: ' + fingerprint);

  await openPage(page, '/controls');
  await shot(page, 'controls');
  let asked = '';
  page.once('dialog', async (d) => { asked = d.message(); await d.accept(); });
  await page.click('#kill');
  await page.waitForSelector('#unkill', { timeout: 10000 });
  check(asked.includes('Refuse every request'), 'kill asked for confirmation');
  await shot(page, 'controls-killed');
  const refused = await proxied('gpt-4o');
  check(refused.status === 503 && refused.body.includes('tokfence_killed'), 'the next proxied request is refused by the kill switch: ' + refused.status);
  page.once('dialog', (d) => d.accept());
  await page.click('#unkill');
  await page.waitForSelector('#kill', { timeout: 10000 });
  check((await proxied('gpt-4o')).status === 200, 'unkill lets requests through again');
}

async function killed(page) {
  await openPage(page, '/');
  return page.evaluate(async () => (await (await fetch('/api/overview')).json()).kill_switch);
}

// A page on another loopback origin (the same "site" for SameSite, so the browser sends our
// cookie) tries every way a page has to press the kill switch.
async function hostileFlow(page) {
  const port = new URL(env.DASH).port;
  await page.goto(`${env.HOSTILE}/hostile.html?port=${port}`, { waitUntil: 'load' });
  await page.waitForFunction(() => window.done === true, { timeout: 20000 });
  const results = await page.evaluate(() => window.results);
  console.log('hostile page results: ' + JSON.stringify(results));
  check(!results.readSession.startsWith('read:'), 'the hostile page cannot read /api/session');
  await shot(page, 'hostile');
  check((await killed(page)) === false, 'kill switch still off after the hostile fetches');
  await page.goto(`${env.HOSTILE}/hostile-form.html?port=${port}`, { waitUntil: 'load' });
  await page.waitForFunction(() => location.port !== '' && document.readyState === 'complete', { timeout: 10000 });
  await new Promise((r) => setTimeout(r, 1000));
  check((await killed(page)) === false, 'kill switch still off after the hostile form POST');
}

// The Log out button ends the session: the page reloads to the log-in message, the API refuses.
async function logoutFlow(page) {
  await page.bringToFront();  // the hostile page's tab was in front
  await openPage(page, '/');
  await page.click('#logout');
  try {
    await page.waitForFunction(() => document.title.includes('Log in first'), { timeout: 10000 });
  } catch (e) {
    const shown = await page.evaluate(() => document.getElementById('message')?.textContent).catch(() => '');
    throw new Error('logout did not lead to the log-in page: ' + (shown || e.message));
  }
  const title = await page.title();
  check(title.includes('Log in first'), 'after logout the dashboard asks to log in again: ' + title);
  const status = await page.evaluate(async () => (await fetch('/api/overview')).status);
  check(status === 401, 'the API refuses the browser after logout: ' + status);
  await shot(page, 'logged-out');
}

const args = ['--headless=new', '--disable-gpu', '--no-first-run', '--disable-dev-shm-usage'];
if (process.getuid && process.getuid() === 0) args.push('--no-sandbox');
const browser = await puppeteer.launch({ executablePath: env.CHROMIUM, args, userDataDir: env.PROFILE, headless: true });
let failed = false;
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  const problems = [];
  watch(page, problems);
  await dashboardFlow(page);
  check(problems.length === 0, 'no script error or CSP violation on the dashboard: ' + JSON.stringify(problems));
  const hostile = await browser.newPage();
  await hostileFlow(hostile);
  await logoutFlow(page);
} catch (e) {
  console.error('FAIL: ' + e.message);
  failed = true;
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
