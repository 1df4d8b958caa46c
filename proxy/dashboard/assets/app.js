// tokfence dashboard: renders every page from the JSON API (docs/DASHBOARD.md) with DOM calls
// only: text goes in through textContent, never as markup (model names and callers come from
// agents), and nothing is evaluated. The CSP forbids inline script and style, so none is used.
'use strict';

const session = { csrf: null };
const SVG = 'http://www.w3.org/2000/svg';

// ---- small helpers ----
function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === 'text') node.textContent = v;
    else if (k === 'class') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}
function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}
function usd(micro) {
  if (micro === null || micro === undefined) return '—';
  // Sub-cent amounts (a single small request) keep their digits instead of showing $0.00.
  return '$' + (micro / 1e6).toFixed(micro > 0 && micro < 100 ? 6 : micro > 0 && micro < 10000 ? 4 : 2);
}
function num(n) { return (n || 0).toLocaleString('en-US'); }
function when(ms) { return new Date(ms).toLocaleTimeString(); }
function say(text, kind) {
  const m = document.getElementById('message');
  m.textContent = text;
  m.className = 'message-line ' + (kind || '');
}
function table(headers, rows, bodyId) {
  const head = el('tr', {}, ...headers.map((h) => el('th', { text: h })));
  const body = el('tbody', bodyId ? { id: bodyId } : {}, ...rows);
  return el('table', {}, el('thead', {}, head), body);
}
function cell(text, cls) { return el('td', { text: String(text), class: cls || '' }); }

async function api(path) {
  const r = await fetch(path, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
  if (r.status === 401) { location.reload(); throw new Error('logged out'); }
  const j = await r.json();
  if (!r.ok) throw new Error(j.error || 'HTTP ' + r.status);
  return j;
}
async function act(action, body) {
  const r = await fetch('/api/' + action, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', 'X-Tokfence-CSRF': session.csrf },
    body: JSON.stringify(body || {}),
  });
  const j = await r.json();
  if (!r.ok) throw new Error(j.error || 'HTTP ' + r.status);
  return j;
}

async function showState() {
  const s = await api('/api/overview');
  const node = document.getElementById('state');
  node.textContent = s.kill_switch_active ? 'KILL SWITCH ON' : 'running · pid ' + s.pid;
  node.className = 'state ' + (s.kill_switch_active ? 'killed' : 'live');
  return s;
}

// ---- overview ----
function budgetRow(b) {
  const pct = Math.max(0, Math.min(100, b.percent || 0));
  const bar = el('progress', { max: '100', value: String(pct), class: pct >= 100 ? 'over' : pct >= 80 ? 'warn' : '' });
  return el('tr', {}, cell(b.provider), cell(b.period), cell(usd(b.current_spend_micro_usd) + ' / ' + usd(b.limit_micro_usd)),
    el('td', {}, bar, ' ' + pct.toFixed(1) + ' %'), cell(b.resets_at ? new Date(b.resets_at).toLocaleString() : '—'));
}

function chart(data) {
  const W = 760, H = 240, left = 56, bottom = 24, top = 10;
  const n = data.buckets;
  const totals = new Array(n).fill(0);
  for (const s of data.series) s.cost_micro_usd.forEach((v, i) => { totals[i] += v; });
  if (!totals.some((v) => v > 0)) return el('p', { id: 'chart', class: 'muted', text: 'No priced requests in this window.' });
  const max = Math.max(...totals);
  const root = svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'spend over time' });
  const plotH = H - bottom - top, bw = (W - left - 8) / n;
  for (let g = 0; g <= 4; g++) {
    const y = top + plotH - (plotH * g) / 4;
    root.append(svg('line', { class: 'grid', x1: left, x2: W - 4, y1: y, y2: y }));
    root.append(svg('text', { x: 4, y: y + 3 }, usd((max * g) / 4)));
  }
  const base = new Array(n).fill(0);
  data.series.forEach((s, k) => {
    s.cost_micro_usd.forEach((v, i) => {
      if (!v) return;
      const h = (plotH * v) / max, y = top + plotH - (plotH * base[i]) / max - h;
      const r = svg('rect', { class: 's' + (k % 8), x: left + i * bw + 1, y, width: Math.max(1, bw - 2), height: h });
      r.append(svg('title', {}, `${s.key}: ${usd(v)}, ${num(s.requests[i])} requests`));
      root.append(r);
      base[i] += v;
    });
  });
  const step = Math.ceil(n / 8);
  for (let i = 0; i < n; i += step) {
    const t = new Date(data.start_ms + i * data.bucket_ms);
    const label = data.bucket_ms >= 86400000 ? t.toLocaleDateString() : t.toLocaleString([], { month: 'numeric', day: 'numeric', hour: '2-digit' });
    root.append(svg('text', { x: left + i * bw, y: H - 6 }, label));
  }
  const legend = el('div', { class: 'legend' }, ...data.series.map((s, k) => {
    const sw = svg('svg', { viewBox: '0 0 10 10' });
    sw.append(svg('rect', { class: 's' + (k % 8), width: 10, height: 10 }));
    return el('span', {}, sw, `${s.key} ${usd(s.total_cost_micro_usd)} · ${num(s.total_requests)} req`);
  }));
  return el('div', { id: 'chart' }, root, legend);
}

async function overview(main) {
  const s = await showState();
  const cards = el('div', { class: 'cards' },
    card('Spend today', s.today_cost_usd || usd(s.today_cost_micro_usd)),
    card('Requests today', num(s.today_requests)),
    card('Tokens in / out', num(s.today_input_tokens) + ' / ' + num(s.today_output_tokens)),
    card('Cache read / write', num(s.today_cache_read_tokens) + ' / ' + num(s.today_cache_write_tokens)),
    card('Last request', s.last_request_at || '—'));
  const range = el('select', { id: 'range' }, ...['24h', '7d', '30d'].map((v) => el('option', { value: v, text: v })));
  const by = el('select', { id: 'by' }, ...['provider', 'model', 'caller'].map((v) => el('option', { value: v, text: 'by ' + v })));
  const holder = el('div', {});
  async function draw() {
    const data = await api(`/api/spend?range=${range.value}&by=${by.value}`);
    holder.replaceChildren(chart(data));
  }
  range.addEventListener('change', draw);
  by.addEventListener('change', draw);
  main.replaceChildren(el('h1', { text: 'Overview' }), cards, el('h2', { text: 'Spend over time' }),
    el('div', { class: 'toolbar' }, range, by), holder, el('h2', { text: 'Budgets' }),
    s.budgets.length ? table(['scope', 'period', 'spent / limit', 'used', 'resets'], s.budgets.map(budgetRow))
      : el('p', { class: 'muted', text: 'No budget set (tokfence budget set global 10 daily).' }),
    ...(s.warnings.length ? [el('h2', { text: 'Warnings' }), el('ul', {}, ...s.warnings.map((w) => el('li', { text: w })))] : []));
  await draw();
}
function card(label, value) {
  return el('div', { class: 'card' }, el('div', { class: 'label', text: label }), el('div', { class: 'value', text: value }));
}

// ---- requests (live) ----
function requestRow(r) {
  const status = r.status === 0 ? '—' : String(r.status);
  const tr = el('tr', { 'data-id': r.id }, cell(when(r.ts_ms)), cell(r.provider), cell(r.model || '—'), cell(r.caller_name || '—'),
    cell(status, r.status >= 200 && r.status < 300 ? 'status-ok' : 'status-bad'),
    cell(num(r.input_tokens) + ' / ' + num(r.output_tokens), 'num'), cell(r.cost_usd || '—', 'num'),
    cell(Math.round(r.latency_ms) + ' ms', 'num'), cell(r.error || ''));
  tr.dataset.search = [r.provider, r.model, r.caller_name, status].join(' ').toLowerCase();
  return tr;
}
async function requests(main) {
  await showState();
  const filter = el('input', { id: 'filter', placeholder: 'filter: provider, model, caller or status' });
  const live = el('span', { id: 'live', class: 'muted', text: 'connecting…' });
  const body = el('tbody', { id: 'rows' });
  const seen = new Set();
  const apply = (tr) => { tr.hidden = filter.value && !tr.dataset.search.includes(filter.value.toLowerCase()); };
  const add = (r, fresh) => {
    if (seen.has(r.id)) return;
    seen.add(r.id);
    const tr = requestRow(r);
    if (fresh) { tr.classList.add('fresh'); body.prepend(tr); } else body.append(tr);
    apply(tr);
    while (body.children.length > 500) body.lastElementChild.remove();
  };
  filter.addEventListener('input', () => { for (const tr of body.children) apply(tr); });
  main.replaceChildren(el('h1', { text: 'Requests' }), el('div', { class: 'toolbar' }, filter, live),
    el('table', {}, el('thead', {}, el('tr', {}, ...['time', 'provider', 'model', 'caller', 'status', 'tokens in / out', 'cost', 'latency', 'error'].map((h) => el('th', { text: h })))), body));
  // The stream first, then the backlog: a row recorded in between shows once (ids are unique).
  const events = new EventSource('/api/events');
  events.addEventListener('open', () => { live.textContent = 'live'; live.className = 'status-ok'; });
  events.addEventListener('error', () => { live.textContent = 'reconnecting…'; live.className = 'muted'; });
  events.addEventListener('request', (e) => add(JSON.parse(e.data), true));
  events.addEventListener('dropped', (e) => say(`${JSON.parse(e.data).dropped} live rows skipped (too many at once): reload for the full list`, 'error'));
  const backlog = await api('/api/requests?limit=200');
  for (const r of backlog.requests) add(r, false);
}

// ---- agents ----
async function agents(main) {
  await showState();
  const a = await api('/api/agents');
  const rows = a.agents.map((g) => {
    const sockets = g.sockets.map((s) => s.path + (s.persist ? ' (persisted)' : '')).join('\n') || '—';
    const egress = g.sockets.map((s) => s.egress ? JSON.stringify(s.egress.allow || s.egress.rules || s.egress) : '').filter(Boolean).join('\n') || '—';
    const t = g.today || {};
    return el('tr', {}, cell(g.caller || '(main socket / unlabeled)'), cell(sockets), cell(egress),
      cell(num(t.requests), 'num'), cell(usd(t.cost_micro_usd), 'num'));
  });
  main.replaceChildren(el('h1', { text: 'Agents' }),
    el('p', { class: 'muted', text: 'Launches and run sessions (per-caller proxy sockets) and every caller seen today.' }),
    table(['caller', 'proxy sockets', 'egress', 'requests today', 'spend today'], rows),
    ...((a.sessions || []).length ? [el('h2', { text: 'Sessions (ImmuneFence)' }),
      table(['session', 'kind', 'risk state'], a.sessions.map((x) => el('tr', {}, cell(x.name), cell(x.kind),
        cell(x.risk_state, x.risk_state === 'GREEN' ? 'status-ok' : 'status-bad'))))] : []));
}

// ---- vault ----
async function vault(main) {
  await showState();
  const v = await api('/api/vault');
  const inVault = new Set(v.vault_providers);
  const revoked = new Set(v.revoked_providers);
  const keys = new Map((v.keys || []).map((k) => [k.provider, k]));
  const names = [...new Set([...v.providers, ...v.vault_providers])].sort();
  const day = (s) => (s ? new Date(s * 1000).toISOString().slice(0, 10) : '—');
  const rows = names.map((p) => {
    const k = keys.get(p);
    return el('tr', { 'data-provider': p }, cell(p), cell(inVault.has(p) ? 'key stored' : '—', inVault.has(p) ? 'status-ok' : 'muted'),
      el('td', {}, el('code', { class: 'fingerprint', text: k ? k.fingerprint : '—' })),
      cell(k ? day(k.added_at) : '—'), cell(k ? (k.rotated_at ? day(k.rotated_at) : 'never') : '—'),
      cell(v.provider_upstreams[p] || '—'), cell(revoked.has(p) ? 'revoked' : '', 'status-bad'));
  });
  main.replaceChildren(el('h1', { text: 'Vault' }),
    el('p', { class: 'muted', text: `Backend: ${v.vault_backend || 'unknown'}. Keys never leave the daemon: this page shows each key's fingerprint (its last few characters, as 'tokfence vault list' does) and dates, never the key.` }),
    table(['provider', 'key', 'fingerprint', 'added', 'rotated', 'upstream', 'access'], rows));
}

// ---- controls ----
async function run(action, body, question) {
  if (question && !confirm(question)) return;
  try {
    await act(action, body);
    say(action + ': done', 'ok');
  } catch (e) {
    say(action + ': ' + e.message, 'error');
  }
  await controls(document.getElementById('main'));
}
async function controls(main) {
  const s = await showState();
  const killBox = s.kill_switch
    ? el('div', { class: 'toolbar' }, el('strong', { text: 'The kill switch is ON: every request is refused.' }),
      el('button', { id: 'unkill', class: 'primary', text: 'Unkill', onclick: () => run('unkill', {}, 'Let requests through again?') }))
    : el('div', { class: 'toolbar' }, el('span', { text: 'Requests flow.' }),
      el('button', { id: 'kill', class: 'danger', text: 'Kill switch', onclick: () => run('kill', {}, 'Refuse every request from now on?') }));
  const revoked = new Set(s.revoked_providers);
  const providers = s.providers.map((p) => el('tr', {}, cell(p), cell(revoked.has(p) ? 'revoked' : 'allowed', revoked.has(p) ? 'status-bad' : 'status-ok'),
    el('td', {}, revoked.has(p)
      ? el('button', { 'data-restore': p, text: 'Restore', onclick: () => run('restore', { provider: p }, `Restore ${p}?`) })
      : el('button', { 'data-revoke': p, class: 'danger', text: 'Revoke', onclick: () => run('revoke', { provider: p }, `Revoke ${p}? Its requests will be refused.`) }))));
  const budgets = s.budgets.map((b) => el('tr', {}, cell(b.provider), cell(b.period), cell(usd(b.limit_micro_usd)),
    el('td', {}, el('button', { text: 'Clear', onclick: () => run('budget_clear', { scope: b.provider }, `Clear the ${b.provider} budget?`) }))));
  const scope = el('select', {}, ...['global', ...s.providers].map((p) => el('option', { value: p, text: p })));
  const amount = el('input', { placeholder: 'USD, e.g. 10', size: '8' });
  const period = el('select', {}, el('option', { value: 'daily', text: 'daily' }), el('option', { value: 'monthly', text: 'monthly' }));
  const rates = Object.entries(s.rate_limits || {}).map(([p, rpm]) => el('tr', {}, cell(p), cell(rpm + ' / min'),
    el('td', {}, el('button', { text: 'Clear', onclick: () => run('ratelimit_clear', { provider: p }) }))));
  const rateProvider = el('select', {}, ...s.providers.map((p) => el('option', { value: p, text: p })));
  const rpm = el('input', { placeholder: 'requests/min', size: '8' });
  main.replaceChildren(el('h1', { text: 'Controls' }), el('h2', { text: 'Kill switch' }), killBox,
    el('h2', { text: 'Providers' }), table(['provider', 'access', ''], providers),
    el('h2', { text: 'Budgets' }), table(['scope', 'period', 'limit', ''], budgets),
    el('div', { class: 'toolbar' }, scope, amount, period,
      el('button', { text: 'Set budget', onclick: () => run('budget', { scope: scope.value, amount: amount.value, period: period.value }) })),
    el('h2', { text: 'Rate limits' }), table(['provider', 'limit', ''], rates),
    el('div', { class: 'toolbar' }, rateProvider, rpm,
      el('button', { text: 'Set rate limit', onclick: () => run('ratelimit', { provider: rateProvider.value, rpm: parseInt(rpm.value, 10) }) })));
}

// ---- logout ----
async function logout() {
  try {
    await act('logout', {});
  } catch (e) {
    say('logout: ' + e.message, 'error');
    return;
  }
  location.reload();  // the next page load finds no session and says how to log in again
}

// ---- start ----
const pages = { '/': overview, '/requests': requests, '/agents': agents, '/vault': vault, '/controls': controls };
async function start() {
  const page = pages[location.pathname] || overview;
  for (const a of document.querySelectorAll('nav a')) if (a.getAttribute('href') === location.pathname) a.classList.add('active');
  document.getElementById('logout').addEventListener('click', logout);
  try {
    session.csrf = (await api('/api/session')).csrf;
    await page(document.getElementById('main'));
    document.body.dataset.ready = 'true';
  } catch (e) {
    say(e.message, 'error');
  }
}
start();
