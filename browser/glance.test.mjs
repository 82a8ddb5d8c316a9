// Browser test of the dashboard at a glance (GET /glance), against the real binary.
//
// One `duecall serve` (SQLite in a temporary directory, the simulated dialer, a tick a second)
// calls a handful of reminders whose simulated customers promise, dispute, refuse, opt out, say
// "wrong number" or do not answer; two payments come in through the API (one keeps a promise, one
// is on a reminder that was never called). Once everything has settled, Chromium reads the page and
// every figure is checked against what the reminders API reports (GET /api/reminders/{id}: its
// attempts, promise and payments; GET /api/suppressions), and the charts against the period. The
// page's screenshot goes to docs/screenshots/dashboard-glance.png (with UPDATE_DOC_SCREENSHOTS=1).
//
// Environment: DUECALL_BIN (default target/debug/duecall), CHROMIUM (default /usr/bin/chromium).
// Run: node --test browser/        (from the repository root, after `cargo build`)

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..');
const BIN = resolve(ROOT, process.env.DUECALL_BIN || 'target/debug/duecall');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = join(HERE, 'screenshots', 'glance');
const DOC_SHOTS = join(ROOT, 'docs', 'screenshots');

const API_KEY = randomBytes(24).toString('base64url');
const PASSWORD = `pw-${randomBytes(12).toString('base64url')}`;
const WEBHOOK_SECRET = `whsec_${randomBytes(32).toString('base64')}`;
const SETTLE_MS = 60_000;
const FAR = '2099-01-01T12:00:00Z';
const CONVERSATIONS = ['payment_promised', 'paid', 'refused', 'disputed', 'other', 'callback_requested', 'opted_out'];

// `persona`: what the simulated customer does on each attempt. Unreached ones get one attempt.
const BATCH = [
  { key: 'kept', persona: 'promise', currency: 'EUR', amount: 40000 },
  { key: 'open', persona: 'promise', currency: 'USD', amount: 12345 },
  { key: 'open2', persona: 'promise', currency: 'USD', amount: 5000 },
  { key: 'dispute', persona: 'dispute', currency: 'USD', amount: 23050 },
  { key: 'refuse', persona: 'refuse', currency: 'USD', amount: 9900 },
  { key: 'optout', persona: 'opt_out', currency: 'USD', amount: 7700 },
  { key: 'wrong', persona: 'wrong_number', currency: 'USD', amount: 6600, max_attempts: 1 },
  { key: 'noanswer', persona: 'no_answer', currency: 'USD', amount: 5500, max_attempts: 1 },
  { key: 'busy', persona: 'busy,no_answer', currency: 'GBP', amount: 4400, max_attempts: 2 },
  { key: 'uncalled', persona: 'promise', currency: 'USD', amount: 3000, scheduled_for: FAR },
];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.once('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

/** A fixed-offset zone where it is about midday now: the whole test runs inside one local day. */
function middayZone() {
  const offset = 12 - new Date().getUTCHours();
  if (offset === 0) return { zone: 'Etc/UTC', offset: 0 };
  return { zone: `Etc/GMT${offset > 0 ? '-' : '+'}${Math.abs(offset)}`, offset };
}

let server;
let exited = null;
let base;
let workdir;
let logFile;
const ids = {};
const ZONE = middayZone();

const logTail = () => {
  try {
    return readFileSync(logFile, 'utf8').slice(-4000);
  } catch {
    return '(no log)';
  }
};

async function api(path, { method = 'GET', body } = {}) {
  const headers = { authorization: `Bearer ${API_KEY}` };
  if (body) headers['content-type'] = 'application/json';
  const res = await fetch(base + path, {
    method,
    headers,
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  return { status: res.status, text, json: () => JSON.parse(text) };
}

async function startServer() {
  if (!existsSync(BIN)) throw new Error(`no duecall binary at ${BIN}: run \`cargo build\` first, or set DUECALL_BIN`);
  workdir = mkdtempSync(join(tmpdir(), 'duecall-glance-'));
  logFile = join(workdir, 'duecall.log');
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const env = {
    PATH: process.env.PATH || '/usr/bin:/bin',
    HOME: workdir,
    RUST_LOG: process.env.RUST_LOG || 'info',
    DATABASE_URL: `sqlite://${join(workdir, 'duecall.db')}`,
    BIND_ADDR: `127.0.0.1:${port}`,
    DIALER: 'simulated',
    WEBHOOK_SECRET,
    DUECALL_API_KEY: API_KEY,
    DASHBOARD_PASSWORD: PASSWORD,
    DEFAULT_TIMEZONE: ZONE.zone,
    SCHEDULER_INTERVAL_SECS: '1',
    RETRY_DELAY_SECS: '1',
    DISPATCH_TIMEOUT_SECS: '20',
    CALL_TIMEOUT_SECS: '30',
    CALLING_WINDOW: '00:00-24:00',
    CALLING_DAYS: 'Mon-Sun',
  };
  const out = openSync(logFile, 'a');
  server = spawn(BIN, ['serve'], { cwd: workdir, env, stdio: ['ignore', out, out] });
  server.once('exit', (code, signal) => {
    exited = { code, signal };
  });
  process.once('exit', () => server && exited == null && server.kill('SIGKILL'));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) throw new Error(`duecall serve exited (${JSON.stringify(exited)}):\n${logTail()}`);
    try {
      if ((await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(1_000) })).status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`duecall serve did not answer within 30 s:\n${logTail()}`);
    await sleep(100);
  }
}

async function stopServer() {
  if (!server || exited) return;
  const gone = new Promise((r) => server.once('exit', r));
  server.kill('SIGTERM');
  const timer = setTimeout(() => server.kill('SIGKILL'), 10_000);
  await gone;
  clearTimeout(timer);
}

const settled = (r) =>
  r.status === 'completed' || r.status === 'cancelled' || (r.status === 'failed' && r.next_attempt_at == null);

/** Load the batch, pay, and wait (bounded) until every call has ended. */
async function loadBatch() {
  for (const [i, s] of BATCH.entries()) {
    const body = {
      external_id: `glance-${i + 1}-${s.key}`,
      customer_name: `Customer ${s.key}`,
      phone_number: `+1415555${String(200 + i).padStart(4, '0')}`,
      amount_due_minor: s.amount,
      currency: s.currency,
      due_date: '2027-01-15',
      timezone: ZONE.zone,
      metadata: { persona: s.persona },
    };
    if (s.max_attempts) body.max_attempts = s.max_attempts;
    if (s.scheduled_for) body.scheduled_for = s.scheduled_for;
    const r = await api('/api/reminders', { method: 'POST', body });
    assert.equal(r.status, 201, `creating ${s.key}: ${r.text}`);
    ids[s.key] = r.json().id;
  }
  const pay = async (key, amount) => {
    const r = await api(`/api/reminders/${ids[key]}/payments`, { method: 'POST', body: { amount_minor: amount } });
    assert.equal(r.status, 201, `paying ${key}: ${r.text}`);
  };
  await pay('uncalled', 3000); // settles a debt that was never called: not the calls' doing
  const deadline = Date.now() + SETTLE_MS;
  let paidKept = false;
  for (;;) {
    const waiting = [];
    for (const s of BATCH) {
      const rem = (await api(`/api/reminders/${ids[s.key]}`)).json();
      if (s.key === 'kept' && !paidKept && rem.promise?.status === 'open') {
        await pay('kept', rem.promise.amount_minor); // keeps the promise
        paidKept = true;
      }
      if (!settled(rem) || (s.key === 'kept' && rem.promise?.status !== 'kept')) waiting.push(`${s.key}: ${rem.status}`);
    }
    if (waiting.length === 0) return;
    if (exited) throw new Error(`duecall serve exited:\n${logTail()}`);
    if (Date.now() > deadline) throw new Error(`not settled within ${SETTLE_MS / 1000} s: ${waiting.join(', ')}\n${logTail()}`);
    await sleep(250);
  }
}

/** What the page should say, from the API's JSON alone. */
async function expectedFromApi() {
  const list = await api('/api/reminders?limit=200');
  assert.equal(list.status, 200, list.text);
  const e = { attempts: 0, right_party: 0, promises: 0, kept: 0, broken: 0, open: 0, promised: {}, paid: {}, paid_count: 0 };
  for (const summary of list.json().reminders) {
    const r = (await api(`/api/reminders/${summary.id}`)).json();
    e.attempts += r.attempts.length;
    e.right_party += r.attempts.filter((a) => CONVERSATIONS.includes(a.outcome?.result)).length;
    if (r.promise) {
      e.promises += 1;
      e[r.promise.status] += 1;
      e.promised[r.currency] = (e.promised[r.currency] ?? 0) + r.promise.amount_minor;
    }
    const firstCall = Math.min(...r.attempts.map((a) => Date.parse(a.dispatched_at)));
    for (const p of r.payments) {
      if (firstCall < Date.parse(p.paid_at)) {
        e.paid[r.currency] = (e.paid[r.currency] ?? 0) + p.amount_minor;
        e.paid_count += 1;
      }
    }
  }
  const sup = (await api('/api/suppressions?limit=200')).json();
  e.opt_outs = sup.suppressions.filter((s) => s.reason === 'opted_out').length;
  return e;
}

/** The figures and charts as the browser shows them. */
const readGlance = (page) =>
  page.evaluate(() => {
    const figure = (name) => document.querySelector(`[data-figure="${name}"]`);
    const value = (name) => Number(figure(name)?.dataset.value);
    const amounts = (name) =>
      Object.fromEntries(
        [...figure(name).querySelectorAll('.amount')].map((a) => [a.dataset.currency, Number(a.dataset.minor)]),
      );
    const shown = (name) => figure(name)?.querySelector('.value')?.textContent.trim();
    const chart = (id) => {
      const svg = document.getElementById(id);
      return {
        role: svg?.getAttribute('role'),
        label: svg?.getAttribute('aria-label'),
        title: svg?.querySelector(':scope > title')?.textContent,
        bars: [...svg.querySelectorAll('g.bar')].map((g) => ({ ...g.dataset, segments: g.querySelectorAll('rect.segment').length })),
        segmentCounts: [...svg.querySelectorAll('rect.segment')].map((r) => Number(r.dataset.count)),
      };
    };
    return {
      attempts: value('attempts'),
      right_party: value('right_party'),
      contact_rate: shown('right_party'),
      promises: value('promises'),
      promise_rate: shown('promises'),
      kept: value('kept'),
      broken: value('broken'),
      open: value('open'),
      promised: amounts('amount_promised'),
      paid: amounts('paid_after_call'),
      paid_count: value('paid_after_call'),
      opt_outs: value('opt_outs'),
      attemptsChart: chart('attempts-chart'),
      promisesChart: chart('promises-chart'),
      legends: [...document.querySelectorAll('.legend li')].map((li) => li.dataset.key),
    };
  });

const pct = (part, whole) => (whole ? `${((part / whole) * 100).toFixed(1)} %` : '—');

describe('dashboard at a glance', { timeout: 180_000 }, () => {
  let browser;
  let page;

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    mkdirSync(DOC_SHOTS, { recursive: true });
    await startServer();
    await loadBatch();
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, timeout: 30_000 });
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    context.setDefaultTimeout(10_000);
    page = await context.newPage();
    await page.goto(`${base}/login?next=%2Fglance`);
    await page.fill('#name', 'Glance Tester');
    await page.fill('#password', PASSWORD);
    await Promise.all([page.waitForURL((u) => u.pathname === '/glance'), page.click('#login button[type=submit]')]);
  }, { timeout: 120_000 });

  after(async () => {
    try {
      if (browser) await browser.close();
    } finally {
      await stopServer();
      if (workdir) rmSync(workdir, { recursive: true, force: true });
    }
  }, { timeout: 30_000 });

  test('the figures equal what the API reports', async () => {
    const e = await expectedFromApi();
    assert.ok(e.attempts >= 10 && e.kept === 1 && e.open === 2 && e.opt_outs === 1, `the batch: ${JSON.stringify(e)}`);
    const g = await readGlance(page);
    assert.equal(g.attempts, e.attempts);
    assert.equal(g.right_party, e.right_party);
    assert.equal(g.contact_rate, pct(e.right_party, e.attempts));
    assert.equal(g.promises, e.promises);
    assert.equal(g.promise_rate, pct(e.promises, e.right_party));
    assert.deepEqual([g.kept, g.broken, g.open], [e.kept, e.broken, e.open]);
    assert.deepEqual(g.promised, e.promised);
    assert.deepEqual(g.paid, e.paid);
    assert.equal(g.paid_count, e.paid_count);
    assert.equal(g.opt_outs, e.opt_outs);
    // The README's picture, rewritten only when asked (a test run leaves the checkout clean).
    if (process.env.UPDATE_DOC_SCREENSHOTS === '1') {
      await page.screenshot({ path: join(DOC_SHOTS, 'dashboard-glance.png'), fullPage: true });
    }
  });

  test('the charts have a bar a day and a week, the segments add up, and they are labelled', async () => {
    const e = await expectedFromApi();
    for (const days of [30, 7, 90]) {
      await page.click(`#periods a[data-period="${days}"]`);
      await page.waitForURL((u) => u.searchParams.get('period') === String(days));
      const g = await readGlance(page);
      const a = g.attemptsChart;
      assert.equal(a.role, 'img');
      assert.equal(a.label, `Attempts per day by outcome, last ${days} days`);
      assert.equal(a.title, a.label);
      assert.equal(a.bars.length, days, `${days} days, ${days} bars`);
      const today = a.bars[a.bars.length - 1];
      assert.equal(Number(today.total), e.attempts, 'every attempt was made today');
      assert.ok(a.bars.slice(0, -1).every((b) => b.total === '0' && b.segments === 0), 'earlier days are empty');
      assert.equal(a.segmentCounts.reduce((x, y) => x + y, 0), e.attempts, 'the segments add up to the bar');
      const p = g.promisesChart;
      assert.equal(p.role, 'img');
      // Weeks from Monday: the period's days touch ceil-ish of days / 7 weeks.
      const expectedWeeks = new Set();
      for (let i = 0; i < days; i++) {
        const local = new Date(Date.now() + ZONE.offset * 3_600_000 - i * 86_400_000);
        const monday = new Date(local);
        monday.setUTCDate(local.getUTCDate() - ((local.getUTCDay() + 6) % 7));
        expectedWeeks.add(monday.toISOString().slice(0, 10));
      }
      assert.equal(p.bars.length, expectedWeeks.size, `${days} days touch ${expectedWeeks.size} weeks`);
      const last = p.bars[p.bars.length - 1];
      assert.deepEqual([Number(last.kept), Number(last.broken), Number(last.open)], [e.kept, e.broken, e.open]);
      assert.deepEqual(g.legends, ['promised', 'conversation', 'wrong_number', 'unreached', 'no_outcome', 'kept', 'broken', 'open']);
      await page.screenshot({ path: join(SHOTS, `glance-${days}.png`), fullPage: true });
    }
    const bad = await page.goto(`${base}/glance?period=14`);
    assert.equal(bad.status(), 400);
    assert.match(await page.textContent('body'), /Unknown period/);
  });
});
