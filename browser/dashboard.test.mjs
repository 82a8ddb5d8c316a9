// Browser tests of the dashboard that `duecall serve` renders, against the real binary.
//
// One `duecall serve` (SQLite in a temporary directory, the simulated dialer, a tick a second)
// gets a handful of reminders through the reminders API whose simulated customers promise, dispute,
// fail, are retried; once they have settled, Chromium (Debian's, through playwright-core) checks
// what a person would: the login wall, a wrong and a right password, the counts against the API,
// the status filter, reminder pages with their attempt timelines, signing out. Each step leaves a
// full-page screenshot in browser/screenshots/.
//
// Environment: DUECALL_BIN (default target/debug/duecall), CHROMIUM (default /usr/bin/chromium).
// Run: node --test browser/        (from the repository root, after `cargo build`)

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, unlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..');
const BIN = resolve(ROOT, process.env.DUECALL_BIN || 'target/debug/duecall');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = join(HERE, 'screenshots');

const SETTLE_MS = 60_000; // every reminder reaches a final status within this
const STATUSES = ['pending', 'in_progress', 'processing', 'completed', 'failed', 'cancelled'];

const API_KEY = randomBytes(24).toString('base64url');
const PASSWORD = `pw-${randomBytes(12).toString('base64url')}`; // ≥ 12 characters
const OPERATOR = 'Browser Tester'; // the name signed in with
const WEBHOOK_SECRET = `whsec_${randomBytes(32).toString('base64')}`;
const FAR_FUTURE = '2099-01-01T12:00:00Z';
const DUE = '2027-01-15';

// The batch. `key` names each one in the tests; `persona` is what its simulated customer does
// (one entry per attempt, the last repeating). The fifth name checks that names are escaped.
const BATCH = [
  { key: 'promise', customer_name: 'Ada Lovelace', phone_number: '+14155550101', amount_due_minor: 12345, currency: 'USD', persona: 'promise' },
  { key: 'dispute', customer_name: 'Hedy Lamarr', phone_number: '+14155550102', amount_due_minor: 23050, currency: 'EUR', persona: 'dispute' },
  { key: 'failed', customer_name: 'Edsger Dijkstra', phone_number: '+14155550103', amount_due_minor: 64000, currency: 'EUR', persona: 'invalid_number', max_attempts: 1 },
  { key: 'retried', customer_name: 'Alan Turing', phone_number: '+14155550104', amount_due_minor: 89900, currency: 'GBP', persona: 'no_answer,promise', max_attempts: 2 },
  { key: 'paid', customer_name: "Zoë O'Brien <b>Bold</b> & Co", phone_number: '+14155550105', amount_due_minor: 4200, currency: 'USD', persona: 'paid' },
  { key: 'cancelled', customer_name: 'Grace Hopper', phone_number: '+14155550106', amount_due_minor: 7500, currency: 'USD', persona: 'promise', scheduled_for: FAR_FUTURE },
  { key: 'pending', customer_name: 'Barbara Liskov', phone_number: '+14155550107', amount_due_minor: 9999, currency: 'USD', persona: 'promise', scheduled_for: FAR_FUTURE },
];
const NAMES = BATCH.map((s) => s.customer_name);
const PHONES = BATCH.map((s) => s.phone_number);

// ---------------------------------------------------------------------------------------------
// Helpers

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** `promise`, or `false` after `ms` — whichever comes first; the timer never keeps the process alive. */
function within(promise, ms) {
  let timer;
  const late = new Promise((r) => {
    timer = setTimeout(() => r(false), ms);
  });
  return Promise.race([promise.then(() => true), late]).finally(() => clearTimeout(timer));
}

/** A free loopback port: bind port 0, read it, let it go. */
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

/** An IANA zone where it is about midday now, so CALLING_WINDOW=00:00-23:59 never defers a call. */
function middayZone() {
  const offset = 12 - new Date().getUTCHours(); // -11 … +12
  if (offset === 0) return 'Etc/UTC';
  return `Etc/GMT${offset > 0 ? '-' : '+'}${Math.abs(offset)}`; // Etc/GMT signs are inverted
}

/** Collapse whitespace, as a person reads text. */
const squash = (s) => (s ?? '').replace(/\s+/g, ' ').trim();

/** "USD 123.45" from minor units (the currencies used here all have two decimals). */
const money = (minor, currency) => `${currency} ${Math.floor(minor / 100)}.${String(minor % 100).padStart(2, '0')}`;

const settled = (r) =>
  r.status === 'completed' || r.status === 'cancelled' || (r.status === 'failed' && r.next_attempt_at == null);

let step = 0;
async function shot(page, name) {
  step += 1;
  const file = join(SHOTS, `${String(step).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true, timeout: 15_000 });
  return file;
}

// ---------------------------------------------------------------------------------------------
// The service

let server; // the child process
let serverExited = null; // { code, signal } once it has exited
let base; // http://127.0.0.1:<port>
let workdir;
let logFile;

function logTail(n = 4000) {
  try {
    return readFileSync(logFile, 'utf8').slice(-n);
  } catch {
    return '(no log)';
  }
}

async function http(path, { method = 'GET', headers = {}, body, auth = false, cookie } = {}) {
  const h = { ...headers };
  if (auth) h.authorization = `Bearer ${API_KEY}`;
  if (cookie) h.cookie = cookie;
  let payload = body;
  if (body && typeof body === 'object' && !(body instanceof URLSearchParams)) {
    h['content-type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const res = await fetch(base + path, {
    method,
    headers: h,
    body: payload,
    redirect: 'manual',
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) };
}

async function api(path, opts = {}) {
  const res = await http(path, { ...opts, auth: true });
  return res;
}

async function startServer() {
  if (!existsSync(BIN)) {
    throw new Error(`no duecall binary at ${BIN}: run \`cargo build\` first, or set DUECALL_BIN`);
  }
  workdir = mkdtempSync(join(tmpdir(), 'duecall-browser-'));
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
    // These tests sign in about ten times a minute from one address; the limit has its own tests.
    DASHBOARD_SIGN_IN_LIMIT_PER_ADDRESS: '100',
    SCHEDULER_INTERVAL_SECS: '1',
    RETRY_DELAY_SECS: '1',
    DISPATCH_TIMEOUT_SECS: '20',
    CALL_TIMEOUT_SECS: '30',
    CALLING_WINDOW: '00:00-23:59',
    CALLING_DAYS: 'Mon-Sun',
  };
  const out = openSync(logFile, 'a');
  // cwd is the temporary directory, so no stray .env is read.
  server = spawn(BIN, ['serve'], { cwd: workdir, env, stdio: ['ignore', out, out] });
  server.once('exit', (code, signal) => {
    serverExited = { code, signal };
  });
  process.once('exit', () => server && serverExited == null && server.kill('SIGKILL'));

  const deadline = Date.now() + 30_000;
  for (;;) {
    if (serverExited) {
      throw new Error(`duecall serve exited (${JSON.stringify(serverExited)}) before answering:\n${logTail()}`);
    }
    try {
      const r = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(1_000) });
      if (r.status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`duecall serve did not answer /healthz within 30 s:\n${logTail()}`);
    await sleep(100);
  }
}

async function stopServer() {
  if (!server || serverExited) return;
  const exited = new Promise((r) => server.once('exit', r));
  server.kill('SIGTERM');
  if (!(await within(exited, 10_000))) {
    server.kill('SIGKILL');
    await within(exited, 5_000);
  }
}

// ---------------------------------------------------------------------------------------------
// The data

const ids = {}; // key → reminder id
const final = {}; // key → the reminder as the API shows it once settled (with attempts)
let settledAfterMs = null;

async function loadBatch() {
  const timezone = middayZone();
  for (const [i, s] of BATCH.entries()) {
    const body = {
      external_id: `browser-${String(i + 1).padStart(2, '0')}-${s.key}`,
      customer_name: s.customer_name,
      phone_number: s.phone_number,
      amount_due_minor: s.amount_due_minor,
      currency: s.currency,
      due_date: DUE,
      timezone,
      language: 'en',
      metadata: { persona: s.persona },
    };
    if (s.max_attempts) body.max_attempts = s.max_attempts;
    if (s.scheduled_for) body.scheduled_for = s.scheduled_for;
    const r = await api('/api/reminders', { method: 'POST', body });
    assert.equal(r.status, 201, `creating ${s.key}: ${r.status} ${r.text}`);
    ids[s.key] = r.json().id;
  }

  const c = await api(`/api/reminders/${ids.cancelled}/cancel`, { method: 'POST' });
  assert.equal(c.status, 200, `cancelling: ${c.status} ${c.text}`);
  assert.equal(c.json().status, 'cancelled');

  // Wait, bounded, for every reminder to reach a final status (the pending one stays pending).
  const started = Date.now();
  const deadline = started + SETTLE_MS;
  for (;;) {
    const waiting = [];
    for (const s of BATCH) {
      const r = await api(`/api/reminders/${ids[s.key]}`);
      assert.equal(r.status, 200, `reading ${s.key}: ${r.status} ${r.text}`);
      const rem = r.json();
      final[s.key] = rem;
      const done = s.key === 'pending' ? rem.status === 'pending' : settled(rem);
      if (!done) waiting.push(`${s.key} (persona ${s.persona}): ${rem.status}, attempt ${rem.attempt_count}, next ${rem.next_attempt_at}`);
    }
    if (waiting.length === 0) {
      settledAfterMs = Date.now() - started;
      break;
    }
    if (serverExited) throw new Error(`duecall serve exited (${JSON.stringify(serverExited)}):\n${logTail()}`);
    if (Date.now() > deadline) {
      throw new Error(`reminders not settled within ${SETTLE_MS / 1000} s:\n  ${waiting.join('\n  ')}\nserver log:\n${logTail()}`);
    }
    await sleep(250);
  }

  // What the simulated customers did, as the API reports it: the browser checks build on this.
  const f = final;
  assert.equal(f.promise.status, 'completed');
  assert.equal(f.promise.outcome?.result, 'payment_promised');
  assert.equal(f.dispute.outcome?.result, 'disputed');
  assert.equal(f.paid.outcome?.result, 'paid');
  assert.equal(f.failed.status, 'failed');
  assert.equal(f.failed.attempts.length, 1);
  assert.equal(f.retried.status, 'completed');
  assert.equal(f.retried.attempts.length, 2);
  assert.equal(f.retried.attempts[0].outcome?.result, 'no_answer');
  assert.equal(f.cancelled.status, 'cancelled');
  assert.equal(f.pending.status, 'pending');
}

/** Every reminder through the API (all pages). */
async function listAll(status) {
  const all = [];
  let cursor = null;
  for (let page = 0; page < 50; page++) {
    const q = new URLSearchParams({ limit: '200' });
    if (status) q.set('status', status);
    if (cursor) q.set('cursor', cursor);
    const r = await api(`/api/reminders?${q}`);
    assert.equal(r.status, 200, `listing: ${r.status} ${r.text}`);
    const body = r.json();
    all.push(...body.reminders);
    cursor = body.next_cursor;
    if (!cursor) return all;
  }
  throw new Error('more than 50 pages of reminders');
}

// ---------------------------------------------------------------------------------------------
// Reading pages

/** The status counts of the dashboard: { pending: 1, …, all: 7 }, as text and as numbers. */
async function readCounts(page) {
  const raw = await page.$$eval('#counts li[data-status]', (lis) =>
    lis.map((li) => [li.dataset.status, li.querySelector('.count')?.textContent ?? null]),
  );
  const counts = {};
  for (const [status, text] of raw) {
    assert.ok(text != null, `#counts li[data-status=${status}] has no .count`);
    assert.match(text.trim(), /^\d+$/, `count of ${status} reads ${JSON.stringify(text)}`);
    assert.ok(!(status in counts), `two counts for ${status}`);
    counts[status] = Number(text.trim());
  }
  return counts;
}

/** The rows of the reminders table: [{ id, status, links: [{ href, text }], text }]. */
async function readRows(page) {
  await page.waitForSelector('#reminders', { timeout: 5_000 });
  return page.$$eval('#reminders tbody tr', (trs) =>
    trs.map((tr) => ({
      id: tr.dataset.id ?? null,
      status: tr.dataset.status ?? null,
      text: tr.textContent,
      bold: tr.querySelectorAll('b').length,
      links: [...tr.querySelectorAll('a[href]')].map((a) => ({ href: a.getAttribute('href'), text: a.textContent })),
    })),
  );
}

/** A reminder page: its h1, its fields, and its timeline. */
async function readReminderPage(page) {
  return page.evaluate(() => {
    const fields = {};
    for (const dd of document.querySelectorAll('#reminder dd[data-field]')) fields[dd.dataset.field] = dd.textContent;
    const timeline = document.querySelector('#timeline');
    const attempts = timeline
      ? [...timeline.querySelectorAll(':scope > li')].map((li) => {
          const f = {};
          for (const dd of li.querySelectorAll('dd[data-field]')) f[dd.dataset.field] = dd.textContent;
          return { attempt: li.dataset.attempt ?? null, status: li.dataset.status ?? null, fields: f };
        })
      : null;
    return {
      h1: document.querySelector('h1')?.textContent ?? null,
      h1Bold: document.querySelectorAll('h1 b').length,
      hasReminder: !!document.querySelector('#reminder'),
      fields,
      attempts,
    };
  });
}

function assertNoCustomerData(text, where) {
  for (const s of [...NAMES, ...PHONES, 'Lovelace', 'Dijkstra']) {
    assert.ok(!text.includes(s), `${where} shows ${JSON.stringify(s)} without a session`);
  }
}

/** The path and query of a page's URL. */
const local = (url) => {
  const u = new URL(url);
  return u.pathname + u.search;
};

// ---------------------------------------------------------------------------------------------
// The tests

describe('dashboard', { timeout: 240_000 }, () => {
  let browser;
  let context;
  let page;

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    for (const f of readdirSync(SHOTS)) if (f.endsWith('.png')) unlinkSync(join(SHOTS, f));
    await startServer();
    await loadBatch();
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, timeout: 30_000 });
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    context.setDefaultTimeout(10_000);
    context.setDefaultNavigationTimeout(15_000);
    page = await context.newPage();
  }, { timeout: 120_000 });

  after(async () => {
    try {
      if (browser) await within(browser.close(), 10_000);
    } finally {
      await stopServer();
      if (logFile && existsSync(logFile) && existsSync(SHOTS)) {
        try {
          copyFileSync(logFile, join(SHOTS, 'duecall-serve.log'));
        } catch {
          // a missing log is no reason to fail
        }
      }
      if (workdir) rmSync(workdir, { recursive: true, force: true });
    }
  }, { timeout: 40_000 });

  test('without a session, plain HTTP gets a redirect and no data; the API wants its token', async (t) => {
    t.diagnostic(`the batch of ${BATCH.length} settled ${(settledAfterMs / 1000).toFixed(1)} s after it was loaded`);
    for (const [path, next] of [
      ['/', '/'],
      [`/reminders/${ids.promise}`, `/reminders/${ids.promise}`],
      ['/?status=completed', '/?status=completed'],
    ]) {
      const r = await http(path);
      assert.equal(r.status, 303, `GET ${path} without a session: ${r.status}`);
      const loc = new URL(r.headers.get('location') ?? '', base);
      assert.equal(loc.origin, base, `GET ${path}: redirect leaves the site: ${r.headers.get('location')}`);
      assert.equal(loc.pathname, '/login', `GET ${path}: redirect to ${r.headers.get('location')}`);
      assert.equal(loc.searchParams.get('next'), next, `GET ${path}: next= in ${r.headers.get('location')}`);
      assertNoCustomerData(r.text, `GET ${path}`);
    }
    // A made-up session cookie is no session.
    const forged = await http('/', { cookie: `duecall_session=${randomBytes(32).toString('base64url')}` });
    assert.equal(forged.status, 303, 'a forged duecall_session cookie opened the dashboard');
    assertNoCustomerData(forged.text, 'GET / with a forged cookie');

    const noToken = await http('/api/reminders');
    assert.equal(noToken.status, 401, `GET /api/reminders without a token: ${noToken.status}`);
    assertNoCustomerData(noToken.text, 'GET /api/reminders without a token');
    const wrongToken = await http('/api/reminders', { headers: { authorization: `Bearer ${API_KEY}x` } });
    assert.equal(wrongToken.status, 401, `GET /api/reminders with a wrong token: ${wrongToken.status}`);
  });

  test('plain HTTP login: a wrong password is 401 without a cookie; the right one a 303 to a local next, with a strict HttpOnly cookie', async () => {
    const wrong = await http('/login', { method: 'POST', body: new URLSearchParams({ name: OPERATOR, password: `${PASSWORD}!`, next: '/' }) });
    assert.equal(wrong.status, 401);
    assert.ok(!wrong.headers.getSetCookie().some((c) => /^duecall_session=[^;]+/.test(c)), 'a wrong password set a session cookie');
    assertNoCustomerData(wrong.text, 'the wrong-password page');

    const right = await http('/login', { method: 'POST', body: new URLSearchParams({ name: OPERATOR, password: PASSWORD, next: `/reminders/${ids.promise}` }) });
    assert.equal(right.status, 303, `right password: ${right.status} ${right.text.slice(0, 200)}`);
    assert.equal(right.headers.get('location'), `/reminders/${ids.promise}`);
    const cookie = right.headers.getSetCookie().find((c) => c.startsWith('duecall_session='));
    assert.ok(cookie, `no duecall_session cookie in ${JSON.stringify(right.headers.getSetCookie())}`);
    assert.match(cookie, /;\s*HttpOnly/i, `session cookie not HttpOnly: ${cookie.replace(/=[^;]*/, '=…')}`);
    assert.match(cookie, /;\s*SameSite=Strict/i, `session cookie not SameSite=Strict: ${cookie.replace(/=[^;]*/, '=…')}`);
    const session = cookie.split(';')[0];

    // The session opens the pages, and only the pages: the API still wants its bearer token.
    const dash = await http('/', { cookie: session });
    assert.equal(dash.status, 200);
    assert.ok(dash.text.includes('Lovelace'), 'the dashboard with a session does not list Ada Lovelace');
    const apiWithCookie = await http('/api/reminders', { cookie: session });
    assert.equal(apiWithCookie.status, 401, 'a dashboard session opened the reminders API');

    // `next` is followed only to local paths.
    for (const evil of ['https://evil.example/', '//evil.example/x', '/\\evil.example', 'javascript:alert(1)']) {
      const r = await http('/login', { method: 'POST', body: new URLSearchParams({ name: OPERATOR, password: PASSWORD, next: evil }) });
      assert.equal(r.status, 303, `next=${evil}: ${r.status}`);
      const loc = r.headers.get('location') ?? '';
      assert.ok(loc.startsWith('/') && !loc.startsWith('//') && !loc.startsWith('/\\'), `next=${evil} redirected to ${loc}`);
      assert.equal(new URL(loc, base).origin, base, `next=${evil} redirected off the site: ${loc}`);
    }
  });

  test('the login wall: the dashboard and a reminder page land on the login form', async () => {
    const resp = await page.goto(`${base}/`);
    assert.equal(resp.status(), 200);
    const first = resp.request().redirectedFrom();
    assert.ok(first, 'GET / was not redirected');
    assert.equal((await first.response()).status(), 303);
    let u = new URL(page.url());
    assert.equal(u.pathname, '/login');
    assert.equal(u.searchParams.get('next'), '/');
    assert.ok(await page.isVisible('form#login'), 'no form#login');
    assert.equal(await page.getAttribute('form#login', 'method').then((m) => m?.toLowerCase()), 'post');
    assert.equal(await page.getAttribute('form#login', 'action'), '/login');
    assert.equal(await page.getAttribute('#login input#password', 'type'), 'password');
    assert.equal(await page.getAttribute('#login input#password', 'name'), 'password');
    assert.equal(await page.inputValue('#login input[type=hidden][name=next]'), '/');
    assert.equal(squash(await page.textContent('#login button[type=submit]')), 'Sign in');
    assertNoCustomerData(await page.content(), 'the login page');
    assert.equal(await page.$('#counts'), null);
    assert.equal(await page.$('#reminders'), null);
    await shot(page, 'login-wall');

    await page.goto(`${base}/reminders/${ids.promise}`);
    u = new URL(page.url());
    assert.equal(u.pathname, '/login');
    assert.equal(u.searchParams.get('next'), `/reminders/${ids.promise}`);
    assert.equal(await page.inputValue('#login input[type=hidden][name=next]'), `/reminders/${ids.promise}`);
    assertNoCustomerData(await page.content(), 'the login page (from a reminder page)');
  });

  test('a wrong password shows the error and no data', async () => {
    await page.goto(`${base}/`);
    await page.fill('#name', OPERATOR);
    await page.fill('#password', 'not-the-password-at-all');
    const [resp] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).pathname === '/login' && r.request().method() === 'POST'),
      page.click('#login button[type=submit]'),
    ]);
    await page.waitForLoadState('load');
    assert.equal(resp.status(), 401);
    assert.equal(new URL(page.url()).pathname, '/login');
    const error = page.locator('p.error[role=alert]');
    assert.equal(await error.count(), 1, 'no <p class="error" role="alert">');
    assert.ok(await error.isVisible(), 'the error is not visible');
    assert.ok(squash(await error.textContent()).length > 0, 'the error is empty');
    assert.ok(await page.isVisible('form#login'), 'the login form is gone after a wrong password');
    assertNoCustomerData(await page.content(), 'the wrong-password page');
    assert.equal(await page.$('#counts'), null);
    assert.equal(await page.$('#reminders'), null);
    assert.ok(!(await context.cookies()).some((c) => c.name === 'duecall_session'), 'a wrong password set duecall_session');
    await shot(page, 'wrong-password');
  });

  test('the right password lands on the dashboard, whose counts match the API', async () => {
    await page.goto(`${base}/`);
    assert.equal(new URL(page.url()).pathname, '/login');
    await page.fill('#name', OPERATOR);
    await page.fill('#password', PASSWORD);
    await Promise.all([page.waitForURL((u) => u.pathname === '/'), page.click('#login button[type=submit]')]);
    assert.equal(local(page.url()), '/', 'next=/ not honoured');
    assert.equal(squash(await page.textContent('#operator strong')), OPERATOR, 'the header names who signed in');

    const cookie = (await context.cookies()).find((c) => c.name === 'duecall_session');
    assert.ok(cookie, 'no duecall_session cookie after signing in');
    assert.equal(cookie.httpOnly, true, 'duecall_session is not HttpOnly');
    assert.equal(cookie.sameSite, 'Strict', 'duecall_session is not SameSite=Strict');

    const refresh = await page.getAttribute('meta[http-equiv="refresh" i]', 'content');
    assert.match(refresh ?? '', /^\s*\d+/, `meta refresh content ${JSON.stringify(refresh)}`);

    const all = await listAll();
    const expected = Object.fromEntries(STATUSES.map((s) => [s, 0]));
    for (const r of all) expected[r.status] += 1;
    expected.all = all.length;
    assert.equal(all.length, BATCH.length);

    const counts = await readCounts(page);
    assert.deepEqual(Object.keys(counts).sort(), [...STATUSES, 'all'].sort(), 'the statuses #counts shows');
    assert.deepEqual(counts, expected, 'dashboard counts vs the API');
    assert.equal(counts.all, STATUSES.reduce((n, s) => n + counts[s], 0), 'the total is not the sum of the counts');

    const rows = await readRows(page);
    assert.equal(rows.length, all.length, 'one row per reminder');
    const byId = new Map(all.map((r) => [r.id, r]));
    for (const row of rows) {
      const r = byId.get(row.id);
      assert.ok(r, `row ${row.id} is no reminder of the API`);
      assert.equal(row.status, r.status, `row ${row.id}: data-status`);
      const link = row.links.find((l) => l.href === `/reminders/${r.id}` || l.href === `${base}/reminders/${r.id}`);
      assert.ok(link, `row of ${r.customer_name}: no link to /reminders/${r.id} (links ${JSON.stringify(row.links)})`);
      assert.equal(squash(link.text), squash(r.customer_name), 'the link text is the customer name');
      assert.equal(row.bold, 0, `row ${row.id}: markup in a name was not escaped`);
    }
    assert.deepEqual(rows.map((r) => r.id).sort(), all.map((r) => r.id).sort(), 'the rows vs the API');
    assert.equal(await page.$('#next-page'), null, 'a next-page link with every row shown');
    // Calling at any hour on any day is looser than the law: the page says so, naming each rule.
    const looser = await page.$$eval('#looser-than-law li[data-variable]', (lis) => lis.map((li) => [li.dataset.variable, li.textContent]));
    assert.deepEqual(looser.map(([v]) => v), ['CALLING_WINDOW', 'CALLING_DAYS'], 'the looser-than-law banner');
    assert.ok(looser[0][1].includes('1006.6(b)(1)(i)'), `the window's source: ${looser[0][1]}`);
    await shot(page, 'dashboard');
  });

  test('filtering on completed shows only the completed reminders', async () => {
    await page.goto(`${base}/`);
    await page.selectOption('#filter select[name=status]', 'completed');
    await Promise.all([
      page.waitForURL((u) => u.searchParams.get('status') === 'completed'),
      page.click('#filter button[type=submit]'),
    ]);
    assert.equal(new URL(page.url()).pathname, '/');
    const rows = await readRows(page);
    const completed = await listAll('completed');
    assert.equal(completed.length, 4, 'promise, dispute, paid, retried');
    assert.ok(rows.every((r) => r.status === 'completed'), `statuses shown: ${rows.map((r) => r.status)}`);
    assert.deepEqual(rows.map((r) => r.id).sort(), completed.map((r) => r.id).sort(), 'the completed rows vs the API');
    assert.equal(await page.inputValue('#filter select[name=status]'), 'completed', 'the filter does not show its choice');
    await shot(page, 'filtered');
  });

  test('searching a phone number as people type it finds its reminder', async () => {
    const s = BATCH.find((b) => b.key === 'retried');
    await page.goto(`${base}/`);
    // +14155550104 typed the way it is read out: spaces, brackets, a dash.
    const typed = `${s.phone_number.slice(0, 2)} (${s.phone_number.slice(2, 5)}) ${s.phone_number.slice(5, 8)}-${s.phone_number.slice(8)}`;
    await page.fill('#filter input[name=q]', typed);
    await Promise.all([
      page.waitForURL((u) => u.searchParams.get('q') === typed),
      page.click('#filter button[type=submit]'),
    ]);
    const rows = await readRows(page);
    assert.deepEqual(rows.map((r) => r.id), [ids.retried], 'only the reminder with that number');
    assert.equal(await page.inputValue('#filter input[name=q]'), s.phone_number, 'the box shows the number it searched');
    await shot(page, 'searched');
  });

  test('the promised reminder: completed, payment_promised, amount and date, one attempt', async () => {
    const s = BATCH.find((b) => b.key === 'promise');
    await page.goto(`${base}/`);
    await Promise.all([
      page.waitForURL((u) => u.pathname === `/reminders/${ids.promise}`),
      page.click(`#reminders tr[data-id="${ids.promise}"] a[href$="/reminders/${ids.promise}"]`),
    ]);
    const p = await readReminderPage(page);
    assert.ok(squash(p.h1).includes(s.customer_name), `h1 reads ${JSON.stringify(p.h1)}`);
    const f = Object.fromEntries(Object.entries(p.fields).map(([k, v]) => [k, squash(v)]));
    for (const field of ['status', 'external_id', 'phone_number', 'amount_due', 'due_date', 'attempts', 'next_attempt_at', 'outcome', 'promised_amount', 'promised_date', 'summary']) {
      assert.ok(field in f, `no <dd data-field="${field}"> in #reminder (fields: ${Object.keys(f)})`);
    }
    assert.equal(f.status, 'completed');
    assert.equal(f.external_id, final.promise.external_id);
    assert.ok(f.phone_number.includes(s.phone_number), `phone_number reads ${f.phone_number}`);
    assert.ok(f.amount_due.includes(money(s.amount_due_minor, s.currency)), `amount_due reads ${f.amount_due}`);
    assert.ok(f.due_date.includes(DUE), `due_date reads ${f.due_date}`);
    assert.match(f.attempts, /^1(\D|$)/, `attempts reads ${f.attempts}`);
    assert.ok(f.outcome.includes('payment_promised'), `outcome reads ${f.outcome}`);
    assert.ok(f.promised_amount.includes(money(s.amount_due_minor, s.currency)), `promised_amount reads ${f.promised_amount}`);
    assert.ok(f.promised_date.includes(DUE), `promised_date reads ${f.promised_date}`);
    assert.ok(f.summary.includes('agreed to pay the full amount'), `summary reads ${f.summary}`);

    assert.ok(p.attempts, 'no #timeline');
    assert.equal(p.attempts.length, 1, 'one timeline entry per attempt');
    const [a] = p.attempts;
    assert.equal(a.attempt, '1');
    assert.equal(a.status, 'completed');
    for (const field of ['dispatched_at', 'answered_at', 'ended_at', 'outcome', 'promised_amount', 'promised_date', 'summary', 'failure']) {
      assert.ok(field in a.fields, `attempt 1: no <dd data-field="${field}"> (fields: ${Object.keys(a.fields)})`);
    }
    assert.ok(squash(a.fields.outcome).includes('payment_promised'), `attempt 1 outcome reads ${a.fields.outcome}`);
    assert.ok(squash(a.fields.promised_amount).includes(money(s.amount_due_minor, s.currency)));
    assert.ok(squash(a.fields.promised_date).includes(DUE));
    await shot(page, 'reminder');
  });

  test('the retried reminder: two attempts, the first unanswered, the second a promise', async () => {
    const s = BATCH.find((b) => b.key === 'retried');
    const resp = await page.goto(`${base}/reminders/${ids.retried}`);
    assert.equal(resp.status(), 200);
    const p = await readReminderPage(page);
    assert.ok(squash(p.h1).includes(s.customer_name), `h1 reads ${JSON.stringify(p.h1)}`);
    assert.equal(squash(p.fields.status), 'completed');
    assert.match(squash(p.fields.attempts), /^2(\D|$)/, `attempts reads ${p.fields.attempts}`);
    assert.ok(squash(p.fields.outcome).includes('payment_promised'));
    assert.ok(squash(p.fields.promised_amount).includes(money(s.amount_due_minor, s.currency)), `promised_amount reads ${p.fields.promised_amount}`);
    assert.equal(p.attempts?.length, 2, 'one timeline entry per attempt');
    assert.deepEqual(p.attempts.map((a) => a.attempt), ['1', '2'], 'oldest first');
    assert.match(squash(p.attempts[0].fields.outcome), /no.answer/i, `attempt 1 outcome reads ${p.attempts[0].fields.outcome}`);
    assert.ok(squash(p.attempts[1].fields.outcome).includes('payment_promised'), `attempt 2 outcome reads ${p.attempts[1].fields.outcome}`);
    assert.deepEqual(p.attempts.map((a) => a.status), final.retried.attempts.map((a) => a.status), 'attempt statuses vs the API');
    await shot(page, 'reminder-retried');
  });

  test('the failed reminder shows its failure reason', async () => {
    const s = BATCH.find((b) => b.key === 'failed');
    await page.goto(`${base}/reminders/${ids.failed}`);
    const p = await readReminderPage(page);
    assert.ok(squash(p.h1).includes(s.customer_name));
    assert.equal(squash(p.fields.status), 'failed');
    assert.equal(p.attempts?.length, 1);
    assert.equal(p.attempts[0].status, 'failed');
    assert.ok(squash(p.attempts[0].fields.failure).includes('invalid number'), `failure reads ${p.attempts[0].fields.failure}`);
    await shot(page, 'reminder-failed');
  });

  test('the dispute, the escaped name, the cancelled and the pending reminder read as the API says', async () => {
    await page.goto(`${base}/reminders/${ids.dispute}`);
    let p = await readReminderPage(page);
    assert.equal(squash(p.fields.status), 'completed');
    assert.ok(squash(p.fields.outcome).includes('disputed'), `outcome reads ${p.fields.outcome}`);

    await page.goto(`${base}/reminders/${ids.paid}`);
    p = await readReminderPage(page);
    assert.equal(squash(p.h1).includes(BATCH.find((b) => b.key === 'paid').customer_name), true, `h1 reads ${JSON.stringify(p.h1)}`);
    assert.equal(p.h1Bold, 0, 'markup in a name was not escaped');
    assert.ok(squash(p.fields.outcome).includes('paid'));

    await page.goto(`${base}/reminders/${ids.cancelled}`);
    p = await readReminderPage(page);
    assert.equal(squash(p.fields.status), 'cancelled');
    assert.equal(p.attempts?.length ?? 0, 0, 'a never-called reminder has no attempts');
    await shot(page, 'reminder-cancelled');

    await page.goto(`${base}/reminders/${ids.pending}`);
    p = await readReminderPage(page);
    assert.equal(squash(p.fields.status), 'pending');
    assert.ok(squash(p.fields.next_attempt_at).includes('2099-01-01'), `next_attempt_at reads ${p.fields.next_attempt_at}`);
    assert.equal(squash(p.fields.waiting), 'its scheduled time', `waiting reads ${p.fields.waiting}`);
    const pending = (await listAll()).find((r) => r.id === ids.pending);
    assert.equal(squash(p.fields.calling_zones), pending.calling_zones.join(', '), 'the calling zones, as the API lists them');
    assert.equal(p.attempts?.length ?? 0, 0);
    await shot(page, 'reminder-pending');
  });

  test('an unknown reminder is a 404 page', async () => {
    const known = await page.goto(`${base}/reminders/${ids.promise}`);
    assert.equal(known.status(), 200, 'signed in, a known reminder opens');
    for (const id of [randomUUID(), 'not-a-uuid']) {
      const resp = await page.goto(`${base}/reminders/${id}`);
      assert.equal(resp.status(), 404, `/reminders/${id}`);
      assert.match(resp.headers()['content-type'] ?? '', /^text\/html/, `/reminders/${id}: a page, not ${resp.headers()['content-type']}`);
      assert.equal(await page.$('#reminder'), null);
    }
    await shot(page, 'not-found');
  });

  test('signing in from a reminder page lands back on it (next is honoured)', async () => {
    const other = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    try {
      other.setDefaultTimeout(10_000);
      const p2 = await other.newPage();
      await p2.goto(`${base}/reminders/${ids.retried}`);
      assert.equal(new URL(p2.url()).pathname, '/login');
      await p2.fill('#name', OPERATOR);
      await p2.fill('#password', PASSWORD);
      await Promise.all([
        p2.waitForURL((u) => u.pathname === `/reminders/${ids.retried}`),
        p2.click('#login button[type=submit]'),
      ]);
      assert.equal(local(p2.url()), `/reminders/${ids.retried}`);
      assert.ok(squash(await p2.textContent('h1')).includes('Alan Turing'));
      await shot(p2, 'next-honoured');
    } finally {
      await other.close();
    }
  });

  test('signing out returns to the login wall', async (t) => {
    await page.goto(`${base}/`);
    const before = (await context.cookies()).find((c) => c.name === 'duecall_session');
    assert.equal(local(page.url()), '/');
    assert.equal(await page.getAttribute('form#logout', 'action'), '/logout');
    assert.equal((await page.getAttribute('form#logout', 'method'))?.toLowerCase(), 'post');
    await Promise.all([page.waitForURL((u) => u.pathname === '/login'), page.click('#logout button')]);
    const left = (await context.cookies()).find((c) => c.name === 'duecall_session');
    assert.ok(!left || left.value === '', 'duecall_session is still set after signing out');
    assertNoCustomerData(await page.content(), 'the page after signing out');
    await shot(page, 'signed-out');

    await page.goto(`${base}/`);
    assert.equal(new URL(page.url()).pathname, '/login', 'the dashboard opened after signing out');
    assertNoCustomerData(await page.content(), 'the dashboard after signing out');
    await page.goto(`${base}/reminders/${ids.promise}`);
    assert.equal(new URL(page.url()).pathname, '/login', 'a reminder page opened after signing out');

    // Not in the contract, so only reported: does a copy of the cookie outlive the sign-out?
    if (before) {
      const replay = await http('/', { cookie: `duecall_session=${before.value}` });
      t.diagnostic(`a copy of the session cookie taken before signing out ${replay.status === 200 ? 'STILL opens the dashboard' : `answers ${replay.status}`} after it`);
    }
  });
});
