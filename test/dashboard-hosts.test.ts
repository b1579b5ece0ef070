// The dashboard with several hosts (issue 14: "the dashboard shows hosts when there are several"),
// in a real browser against two real monitors (host names a and b, own sockets, one PostgreSQL
// database) with real bot processes on each:
//   - the host column and filter appear; every bot is listed once, with its own host (a channel
//     `shared` runs on both: rows are per host and channel)
//   - filtering by host b shows only b's bots
//   - SIGKILL b's monitor → within --host-stale-after + 10 s its bots show `unknown` in the page,
//     without a reload
//   - a monitor alone on its store (SQLite) shows no host column and no host filter
// and nothing on the page errors.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { createPgDatabase, postgresMissing } from './helpers/backends.js';
import { dashboardUrl, launchChromium, openPage } from './helpers/browser.js';
import {
  killStarted,
  startBot,
  startMonitor,
  stopMonitor,
  TestDirs,
  waitFor,
  type MonitorProcess,
  type TestDir,
} from './helpers/monitor-process.js';
import { requireResource } from './helpers/resources.js';

const STALE_AFTER_S = 5;
const dirs = new TestDirs();
let browser: Browser | null = null;

after(async () => {
  await browser?.close();
  await killStarted();
  dirs.removeAll();
});

function config(dir: TestDir): string {
  const path = join(dir.path, 'config.json');
  // The spool in the test dir, not the working directory; heartbeats every second.
  writeFileSync(path, JSON.stringify({ spool: { path: join(dir.path, 'm.spool') }, healthIntervalMs: 1_000 }));
  return path;
}

/** The rows the page shows now, as `host/channel:status` (sorted). */
async function shownRows(page: Page): Promise<string[]> {
  const rows = await page.locator('tr.bot').evaluateAll((trs) =>
    trs.map((tr) => {
      const host = tr.querySelector('td[data-host]')?.getAttribute('data-host') ?? '-';
      return `${host}/${tr.getAttribute('data-channel')}:${tr.getAttribute('data-status')}`;
    }),
  );
  return rows.sort();
}

const headers = (page: Page) => page.locator('table.fleet thead th').allTextContents();

test('two hosts on one PostgreSQL store: host column and filter, a killed host’s bots turn unknown live', async (t) => {
  if (!requireResource(t, 'PostgreSQL', await postgresMissing())) return;
  browser ??= await launchChromium(t);
  if (!browser) return;
  t.after(() => killStarted()); // before the database is dropped (hooks run in order)
  const database = await createPgDatabase(t);
  const monitors = new Map<'a' | 'b', MonitorProcess>();
  // One after the other: the first migrates the new database, the second finds it migrated.
  for (const host of ['a', 'b'] as const) {
    const dir = dirs.create();
    monitors.set(
      host,
      await startMonitor(
        dir,
        [
          '--socket',
          dir.socket,
          '--db',
          database.url,
          '--host-name',
          host,
          '--host-stale-after',
          String(STALE_AFTER_S),
          '--config',
          config(dir),
          ...(host === 'a' ? ['--http-port', '0'] : []),
        ],
        { pathFlags: false },
      ),
    );
  }
  const a = monitors.get('a')!;
  const b = monitors.get('b')!;
  for (const channel of ['a_one', 'shared']) startBot(a.socket, channel, 300);
  for (const channel of ['b_one', 'b_two', 'shared']) startBot(b.socket, channel, 300);

  const { page, problems, responses } = await openPage(browser, await dashboardUrl(a.output));
  const online = ['a/a_one:online', 'a/shared:online', 'b/b_one:online', 'b/b_two:online', 'b/shared:online'];
  await waitFor(
    'both hosts’ bots listed online with their host',
    async () => JSON.stringify(await shownRows(page)) === JSON.stringify(online),
    30_000,
  ).catch(async (err: Error) => {
    throw new Error(`${err.message}; the page shows ${JSON.stringify(await shownRows(page))}`);
  });
  assert.ok(
    (await headers(page)).some((h) => h.trim() === 'host'),
    'a host column',
  );
  const filter = page.locator('#host-filter');
  assert.deepEqual(await filter.locator('option').allTextContents(), ['all', 'a (this monitor)', 'b']);
  assert.equal(await page.locator('#shown').textContent(), '5 of 5 shown');

  await filter.selectOption('b');
  await waitFor(
    'only b’s bots shown',
    async () => (await shownRows(page)).every((r) => r.startsWith('b/')) && (await shownRows(page)).length === 3,
  );
  assert.deepEqual(await shownRows(page), ['b/b_one:online', 'b/b_two:online', 'b/shared:online']);
  assert.equal(await page.locator('#shown').textContent(), '3 of 5 shown');
  await filter.selectOption('');
  await waitFor('all bots shown again', async () => (await shownRows(page)).length === 5);

  // b's monitor vanishes (its bots keep running, unwatched): the page learns it from the store.
  const killedAt = Date.now();
  b.child.kill('SIGKILL');
  await b.exited;
  const down = ['a/a_one:online', 'a/shared:online', 'b/b_one:unknown', 'b/b_two:unknown', 'b/shared:unknown'];
  await waitFor(
    'b’s bots unknown in the page',
    async () => JSON.stringify(await shownRows(page)) === JSON.stringify(down),
    (STALE_AFTER_S + 30) * 1000,
  ).catch(async (err: Error) => {
    throw new Error(`${err.message}; the page shows ${JSON.stringify(await shownRows(page))}`);
  });
  const tookMs = Date.now() - killedAt;
  t.diagnostic(`b's bots shown unknown ${tookMs} ms after SIGKILL (stale after ${STALE_AFTER_S} s)`);
  assert.ok(tookMs <= (STALE_AFTER_S + 10) * 1000, `unknown after ${tookMs} ms (bound ${(STALE_AFTER_S + 10) * 1000})`);
  assert.match(
    (await page.locator('tr.bot:has(td[data-host="b"]) td[data-host]').first().textContent()) ?? '',
    /b \(down\)/,
  );
  // The summary counts them too (the tile shows only while some bot is unknown).
  assert.deepEqual(
    [await page.locator('#summary-online').textContent(), await page.locator('#summary-unknown').textContent()],
    ['2', '3'],
  );
  // The summary and the fleet panel: the host view for docs/DASHBOARD.md.
  await page.screenshot({
    path: new URL('../../docs/img/dashboard-hosts.png', import.meta.url).pathname,
    clip: { x: 0, y: 0, width: 1280, height: 310 },
  });

  assert.ok(
    responses.some((r) => r.startsWith('GET 200') && r.includes('/api/fleet')),
    'the watcher saw the page read /fleet',
  );
  assert.deepEqual(problems, []);
  await stopMonitor(a);
});

test('a monitor alone on its store shows no host column and no host filter', async (t) => {
  browser ??= await launchChromium(t);
  if (!browser) return;
  const dir = dirs.create();
  const monitor = await startMonitor(dir, ['--http-port', '0', '--host-name', 'a', '--config', config(dir)]);
  t.after(() => stopMonitor(monitor));
  startBot(monitor.socket, 'solo_bot', 300);
  const { page, problems, responses } = await openPage(browser, await dashboardUrl(monitor.output));
  await page.locator('tr.bot[data-channel="solo_bot"][data-status="online"]').waitFor({ timeout: 20_000 });
  // The page has asked for the hosts (when the monitor serves them) before we look for their absence.
  const session = (await (await page.request.get(new URL('api/session', page.url()).toString())).json()) as {
    routes: string[];
  };
  if (session.routes.includes('GET /hosts'))
    await waitFor('the page read /hosts', () =>
      responses.some((r) => r.startsWith('GET 200') && r.includes('/api/hosts')),
    );
  await page.waitForTimeout(500);
  assert.ok(!(await headers(page)).some((h) => h.trim() === 'host'), 'no host column');
  assert.equal(await page.locator('#host-filter').count(), 0, 'no host filter');
  assert.equal(await page.locator('td[data-host]').count(), 0);
  assert.deepEqual(problems, []);
});
