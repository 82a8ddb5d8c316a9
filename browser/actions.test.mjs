// Browser tests of the dashboard's operator actions, against the real binary.
//
// One `duecall serve` of its own (SQLite in a temporary directory, the simulated dialer, a tick a
// second, calls at any hour) gets four reminders scheduled for 2099 through the reminders API.
// Chromium signs in with a name, then, on each reminder's page, presses a button: cancel (the
// status changes, the history names who did it), call at the next lawful moment (the next tick
// dials it, the simulated customer promises), never call this number (the number is on the
// suppression list, reason "operator: <name>"). A form whose hidden token was removed is answered
// 403 and changes nothing. Screenshots go to browser/screenshots/actions/ and the reminder
// page with its actions and history to docs/screenshots/reminder-actions.png.
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
const SHOTS = join(HERE, 'screenshots', 'actions');
const DOC_SHOTS = join(ROOT, 'docs', 'screenshots');

const API_KEY = randomBytes(24).toString('base64url');
const PASSWORD = `pw-${randomBytes(12).toString('base64url')}`;
const WEBHOOK_SECRET = `whsec_${randomBytes(32).toString('base64')}`;
const OPERATOR = 'Grace Operator';
const FAR = '2099-01-01T12:00:00Z';

const REMINDERS = {
  cancel: { customer_name: 'Barbara Liskov', phone_number: '+14155550201' },
  callNow: { customer_name: 'Ada Lovelace', phone_number: '+14155550202' },
  suppress: { customer_name: 'Katherine Johnson', phone_number: '+14155550203' },
  forged: { customer_name: 'Margaret Hamilton', phone_number: '+14155550204' },
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const squash = (s) => (s ?? '').replace(/\s+/g, ' ').trim();

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

let server;
let exited = null;
let base;
let workdir;
let logFile;
const ids = {};

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

async function reminder(key) {
  const r = await api(`/api/reminders/${ids[key]}`);
  assert.equal(r.status, 200, r.text);
  return r.json();
}

async function startServer() {
  if (!existsSync(BIN)) throw new Error(`no duecall binary at ${BIN}: run \`cargo build\` first, or set DUECALL_BIN`);
  workdir = mkdtempSync(join(tmpdir(), 'duecall-actions-'));
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
    SCHEDULER_INTERVAL_SECS: '1',
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

/** The reminder page's history: [{ action, actor, what }]. */
const readHistory = (page) =>
  page.$$eval('#history li[data-action]', (lis) =>
    lis.map((li) => ({
      action: li.dataset.action,
      actor: li.querySelector('[data-field=actor]')?.textContent ?? null,
      what: li.querySelector('[data-field=what]')?.textContent ?? null,
    })),
  );

/** Press an action's button; the answer to its POST (after which the browser is on the page again). */
async function press(page, action) {
  const button = `#actions form[data-action=${action}] button[type=submit]`;
  assert.ok(await page.isVisible(button), `no ${action} button`);
  const [answer] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST'),
    page.click(button),
  ]);
  await page.waitForLoadState('load');
  return answer;
}

describe('operator actions', { timeout: 180_000 }, () => {
  let browser;
  let context;
  let page;
  let step = 0;
  const shot = (name) => {
    step += 1;
    return page.screenshot({ path: join(SHOTS, `${String(step).padStart(2, '0')}-${name}.png`), fullPage: true });
  };

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    mkdirSync(DOC_SHOTS, { recursive: true });
    await startServer();
    for (const [key, r] of Object.entries(REMINDERS)) {
      const res = await api('/api/reminders', {
        method: 'POST',
        body: {
          ...r,
          external_id: `actions-${key}`,
          amount_due_minor: 25000,
          currency: 'USD',
          due_date: '2027-01-15',
          timezone: 'America/New_York',
          scheduled_for: FAR,
          metadata: { persona: 'promise' },
        },
      });
      assert.equal(res.status, 201, res.text);
      ids[key] = res.json().id;
    }
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, timeout: 30_000 });
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    context.setDefaultTimeout(10_000);
    page = await context.newPage();
  }, { timeout: 90_000 });

  after(async () => {
    try {
      if (browser) await browser.close();
    } finally {
      await stopServer();
      if (workdir) rmSync(workdir, { recursive: true, force: true });
    }
  }, { timeout: 30_000 });

  test('sign in with a name: the header shows it', async () => {
    await page.goto(`${base}/reminders/${ids.cancel}`);
    assert.equal(new URL(page.url()).pathname, '/login');
    await page.fill('#name', `  ${OPERATOR}  `);
    await page.fill('#password', PASSWORD);
    await Promise.all([page.waitForURL((u) => u.pathname === `/reminders/${ids.cancel}`), page.click('#login button[type=submit]')]);
    assert.equal(squash(await page.textContent('#operator strong')), OPERATOR);
    assert.ok(await page.isVisible('#no-history'), 'a new reminder has no history');
  });

  test('cancel: the status changes and the history names who did it', async () => {
    await page.goto(`${base}/reminders/${ids.cancel}`);
    const answer = await press(page, 'cancel');
    assert.equal(answer.status(), 303);
    assert.equal(new URL(page.url()).pathname, `/reminders/${ids.cancel}`);
    assert.equal(squash(await page.textContent('#reminder dd[data-field=status]')), 'cancelled');
    assert.ok(await page.isVisible('#flash'), 'no message after the action');
    assert.deepEqual(await readHistory(page), [{ action: 'cancel', actor: OPERATOR, what: 'Cancelled' }]);
    assert.ok(!(await page.isVisible('#actions form[data-action=cancel]')), 'cancel offered again');
    const r = await reminder('cancel');
    assert.equal(r.status, 'cancelled');
    assert.equal(r.actions[0].actor, OPERATOR);
    await shot('cancelled');
  });

  test('call at the next lawful moment: the next tick dials it', async () => {
    await page.goto(`${base}/reminders/${ids.callNow}`);
    const answer = await press(page, 'call_now');
    assert.equal(answer.status(), 303);
    const history = await readHistory(page);
    assert.equal(history.length, 1);
    assert.equal(history[0].action, 'call_now');
    assert.equal(history[0].actor, OPERATOR);
    // The window is open all day here: within a few ticks the simulated customer has been called.
    const deadline = Date.now() + 30_000;
    let r = await reminder('callNow');
    while (r.attempt_count === 0 || r.status !== 'completed') {
      if (Date.now() > deadline) throw new Error(`not called within 30 s: ${JSON.stringify(r)}\n${logTail()}`);
      await sleep(250);
      r = await reminder('callNow');
    }
    assert.equal(r.attempts.length, 1);
    await page.reload();
    assert.equal(await page.$$eval('#timeline > li', (lis) => lis.length), 1);
    await shot('called-now');
  });

  test('never call this number: it is on the suppression list, in the operator\'s name', async () => {
    await page.goto(`${base}/reminders/${ids.suppress}`);
    const answer = await press(page, 'suppress');
    assert.equal(answer.status(), 303);
    const entry = await api(`/api/suppressions/%2B${REMINDERS.suppress.phone_number.slice(1)}`);
    assert.equal(entry.status, 200, entry.text);
    assert.equal(entry.json().reason, `operator: ${OPERATOR}`);
    assert.deepEqual(await readHistory(page), [
      { action: 'suppress', actor: OPERATOR, what: 'Number added to the suppression list' },
    ]);
    assert.ok(!(await page.isVisible('#actions form[data-action=suppress]')), 'suppress offered again');
    // The page with its remaining actions and its history, for the README
    // (rewritten only when asked: UPDATE_DOC_SCREENSHOTS=1, so a test run
    // leaves the checkout clean).
    if (process.env.UPDATE_DOC_SCREENSHOTS === '1') {
      await page.screenshot({ path: join(DOC_SHOTS, 'reminder-actions.png'), fullPage: true });
    }
    await shot('suppressed');
  });

  test('a form without its token is refused with 403 and changes nothing', async () => {
    await page.goto(`${base}/reminders/${ids.forged}`);
    const before = await reminder('forged');
    await page.evaluate(() => {
      for (const input of document.querySelectorAll('#actions form[data-action=cancel] input[name=csrf_token]')) input.remove();
    });
    const [answer] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST'),
      page.click('#actions form[data-action=cancel] button[type=submit]'),
    ]);
    await page.waitForLoadState('load');
    assert.equal(answer.status(), 403);
    assert.match(squash(await page.textContent('main')), /security token is missing or wrong/);
    assert.match(squash(await page.textContent('main')), /Nothing was changed/);
    await shot('forged-refused');
    const after = await reminder('forged');
    assert.equal(after.status, 'pending');
    assert.equal(after.next_attempt_at, before.next_attempt_at);
    assert.deepEqual(after.actions, []);
    // A wrong token is refused the same way.
    await page.goto(`${base}/reminders/${ids.forged}`);
    await page.evaluate(() => {
      document.querySelector('#actions form[data-action=suppress] input[name=csrf_token]').value = 'not-the-token';
    });
    const [wrong] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST'),
      page.click('#actions form[data-action=suppress] button[type=submit]'),
    ]);
    assert.equal(wrong.status(), 403);
    const listed = await api(`/api/suppressions/%2B${REMINDERS.forged.phone_number.slice(1)}`);
    assert.equal(listed.status, 404, 'suppressed without a token');
    assert.deepEqual((await reminder('forged')).actions, []);
  });
});
