// The HTTP front's security model: a token configured → every /api and /metrics request needs it
// (401 without), the page asks for it once and then works; no token → read-only and loopback
// only; off loopback without a token the monitor refuses to start. Security headers on every answer.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { Browser } from 'playwright-core';
import { requestControl } from '../src/http/control-client.js';
import { dashboardUrl, launchChromium, openPage } from './helpers/browser.js';
import {
  killStarted,
  runKissmon,
  startBot,
  startMonitor,
  stopMonitor,
  TestDirs,
  type MonitorProcess,
} from './helpers/monitor-process.js';

const TOKEN = 'test-token-0123456789abcdef';
const dirs = new TestDirs();
const monitors: MonitorProcess[] = [];
let browser: Browser | null = null;

after(async () => {
  await browser?.close();
  await killStarted();
  for (const m of monitors) await stopMonitor(m);
  dirs.removeAll();
});

async function start(args: string[]): Promise<{ monitor: MonitorProcess; url: string }> {
  const dir = dirs.create();
  const tokenFile = join(dir.path, 'http-token');
  writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  const monitor = await startMonitor(dir, [
    '--http-port',
    '0',
    ...args.map((a) => (a === 'TOKEN_FILE' ? tokenFile : a)),
  ]);
  monitors.push(monitor);
  return { monitor, url: await dashboardUrl(monitor.output) };
}

const bearer = { authorization: `Bearer ${TOKEN}` };

/** node:http sends the path as written (fetch() would resolve `..` and could re-encode it). */
function rawStatus(url: string, method: string, path: string, headers: Record<string, string> = {}): Promise<number> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    http
      .request({ host: hostname, port, method, path, headers }, (res) => {
        resolve(res.statusCode!);
        res.destroy(); // /api/events stays open
      })
      .on('error', reject)
      .end();
  });
}

test('with a token: 401 without it, the API and admin routes with it, the page after entering it', async (t) => {
  const { monitor, url } = await start(['--http-token-file', 'TOKEN_FILE', '--enable-faults']);
  for (const path of ['api/status', 'api/health', 'api/bot?channel=x', 'metrics', 'api/events']) {
    const res = await fetch(`${url}${path}`);
    assert.equal(res.status, 401, `${path} without the token`);
    assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer/);
  }
  assert.equal(
    (await fetch(`${url}api/status`, { headers: { authorization: 'Bearer wrong-token-0123456789' } })).status,
    401,
  );
  assert.equal((await fetch(`${url}api/status`, { headers: bearer })).status, 200);
  assert.match(await (await fetch(`${url}metrics`, { headers: bearer })).text(), /kissmon_lines_total/);
  const flush = await fetch(`${url}api/flush`, { method: 'POST', headers: bearer });
  assert.deepEqual(await flush.json(), { flushed: true }, 'admin routes are served with the token');

  // Auth is decided on the matched route, not the raw URL: fastify decodes `/%61pi/status` to
  // /api/status and serves it (200 with the token proves the path reaches the route), so without
  // the token it must be 401 too. Paths no route matches need the token as well.
  const reachable = ['/%61pi/status', '/%61pi/alerts', '/%6detrics', '/%61pi/events', '/api/%73tatus'];
  for (const path of reachable) {
    assert.equal(await rawStatus(url, 'GET', path, bearer), 200, `${path} with the token reaches its route`);
  }
  for (const path of [
    ...reachable,
    '/%2561pi/status',
    '//api/status',
    '/api/../api/status',
    '/api//status',
    '/api/status/',
    '/API/status',
    '/%61pi/%2e%2e/api/status',
    '/nope',
  ]) {
    assert.equal(await rawStatus(url, 'GET', path), 401, `${path} without the token`);
  }
  assert.equal(await rawStatus(url, 'POST', '/%61pi/flush'), 401, 'an encoded admin route without the token');
  // What loads without the token: the page's files and the session bootstrap, nothing else.
  for (const path of ['/', '/app.js', '/app.css', '/favicon.ico', '/api/session']) {
    assert.equal(await rawStatus(url, 'GET', path), 200, `${path} loads without the token`);
  }

  // Fault injection is on the admin socket only, never on HTTP, token or not.
  const session = (await (await fetch(`${url}api/session`, { headers: bearer })).json()) as { routes: string[] };
  assert.ok(session.routes.includes('POST /flush'), 'the session lists the admin routes');
  assert.ok(!session.routes.some((r) => r.includes('/fault/')), 'no fault route is offered over HTTP');
  assert.equal((await fetch(`${url}api/fault/crash?actor=registry`, { method: 'POST', headers: bearer })).status, 404);
  assert.equal((await fetch(`${url}api/fault/unhandled-rejection`, { method: 'POST', headers: bearer })).status, 404);
  // The monitor's file paths (GET /settings) stay on the control sockets too.
  assert.ok(!session.routes.includes('GET /settings'), 'GET /settings is not offered over HTTP');
  assert.equal((await fetch(`${url}api/settings`, { headers: bearer })).status, 404);
  assert.equal((await requestControl<{ db: string }>(monitor.control, 'GET', '/settings')).db, monitor.db);
  await assert.rejects(
    requestControl(monitor.admin, 'POST', '/fault/crash?actor=nobody'),
    /query parameter actor/,
    'the admin socket still serves the fault route (a bad actor is refused by its schema, nothing crashes)',
  );

  browser = await launchChromium(t);
  if (!browser) return;
  startBot(monitor.socket, 'token_bot', 200);
  const { page, problems, responses } = await openPage(browser, url);
  await page.locator('#token-form').waitFor();
  await page.getByLabel('Token').fill('not-the-token-0123456789');
  await page.getByRole('button', { name: 'Open the dashboard' }).click();
  await page.getByRole('alert').filter({ hasText: 'refused' }).waitFor();
  await page.getByLabel('Token').fill(TOKEN);
  await page.getByRole('button', { name: 'Open the dashboard' }).click();
  await page.locator('tr.bot[data-channel="token_bot"]').waitFor({ timeout: 20_000 });
  // Kept for this tab: a reload does not ask again.
  await page.reload();
  await page.locator('tr.bot[data-channel="token_bot"]').waitFor({ timeout: 20_000 });
  assert.equal(await page.locator('#token-form').count(), 0);
  assert.ok(responses.some((r) => r.startsWith('GET 200') && r.includes('/api/session')));
  assert.deepEqual(problems, []);
});

test('no token: read-only, loopback Host only, security headers, a clear error for bad queries', async () => {
  const { url } = await start([]);
  const page = await fetch(url);
  assert.equal(page.status, 200);
  const csp = page.headers.get('content-security-policy') ?? '';
  assert.match(csp, /frame-ancestors 'none'/);
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
  assert.doesNotMatch(await page.text(), /<script>|<style>| style=/, 'no inline script or style for the CSP to allow');
  assert.equal((await fetch(`${url}favicon.ico`)).status, 200);

  assert.equal((await fetch(`${url}api/status`)).status, 200);
  const flush = await fetch(`${url}api/flush`, { method: 'POST' });
  assert.equal(flush.status, 403);
  assert.match(((await flush.json()) as { error: string }).error, /--http-token-file/);
  // fetch() will not send another Host; node:http will.
  const rebinding = await new Promise<number>((resolve, reject) => {
    http
      .get(`${url}api/status`, { headers: { host: 'attacker.example' } }, (res) => resolve(res.resume().statusCode!))
      .on('error', reject);
  });
  assert.equal(rebinding, 403, 'a Host that is not loopback (DNS rebinding) is refused');
  const bad = await fetch(`${url}api/bot?channel=no-dashes`);
  assert.equal(bad.status, 400);
  assert.match(((await bad.json()) as { error: string }).error, /query parameter channel must be/);
  assert.equal((await fetch(`${url}api/nope`)).status, 404);
});

test('off loopback without a token file the monitor refuses to start; a short token is refused', async () => {
  const dir = dirs.create();
  const open = await runKissmon([
    'start',
    '--socket',
    dir.socket,
    '--db',
    dir.db,
    '--http-port',
    '0',
    '--http-host',
    '0.0.0.0',
  ]);
  assert.equal(open.code, 2);
  assert.match(open.stderr, /http\.tokenFile must be set \(--http-token-file\) to serve HTTP on 0\.0\.0\.0/);
  const short = join(dir.path, 'short-token');
  writeFileSync(short, 'abc\n');
  const weak = await runKissmon([
    'start',
    '--socket',
    dir.socket,
    '--db',
    dir.db,
    '--http-port',
    '0',
    '--http-token-file',
    short,
  ]);
  assert.equal(weak.code, 2);
  assert.match(weak.stderr, /must hold one token of at least 16 characters/);
});
