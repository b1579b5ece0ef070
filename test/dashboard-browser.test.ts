// The dashboard in a real browser (headless Chromium), against a real monitor with real bot
// processes: rows appear, a hung bot's row turns `stale` without a reload, the detail view draws
// its history, nothing on the page errors; screenshots (light and dark) go to docs/img/.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { dashboardUrl, launchChromium, openPage, seriesPixels } from './helpers/browser.js';
import {
  killStarted,
  line,
  sendLines,
  startBot,
  startMonitor,
  stopMonitor,
  TestDir,
  waitFor,
  type MonitorProcess,
} from './helpers/monitor-process.js';
import { stopProcess } from './helpers/wait.js';

const IMG = (name: string) => fileURLToPath(new URL(`../../docs/img/${name}`, import.meta.url));
/** The bound: a hung bot's row shows `stale` within 3 s of the monitor deciding so. */
const STALE_VISIBLE_MS = 3_000;

const dir = new TestDir();
let monitor: MonitorProcess;
let browser: Browser | null = null;

before(async () => {
  monitor = await startMonitor(dir, ['--http-port', '0', '--stale-after', '1.5', '--sample-interval', '0.5']);
});

after(async () => {
  await browser?.close();
  await killStarted();
  await stopMonitor(monitor);
  dir.remove();
});

test('bots appear as rows, a hung one turns stale live, the detail view charts its history', async (t) => {
  browser = await launchChromium(t);
  if (!browser) return;
  const channels = ['alpha_bot', 'beta_bot', 'gamma_bot'];
  const bots = channels.map((c) => startBot(monitor.socket, c, 200));
  await sendLines(
    monitor.socket,
    channels.flatMap((channel, i) =>
      Array.from({ length: 5 }, (_, k) =>
        line({
          type: 'llm_usage',
          channel,
          model: i === 0 ? 'gpt-4o' : 'gpt-4o-mini',
          feature: 'chat',
          tokens_in: 1000 * (k + 1),
          tokens_out: 300,
          latency_ms: 400,
        }),
      ),
    ),
  );
  const url = await dashboardUrl(monitor.output);
  const { page, problems, responses } = await openPage(browser, url);

  for (const c of channels)
    await page.locator(`tr.bot[data-channel="${c}"][data-status="online"]`).waitFor({ timeout: 20_000 });
  assert.equal(await page.locator('#summary-online').textContent(), '3');
  assert.match(
    (await page.locator('tr.bot[data-channel="beta_bot"] td').nth(1).textContent()) ?? '',
    /online/,
    'status is shown as text, not colour alone',
  );

  // A reload would lose this marker: the row must change in place.
  await page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));
  await stopProcess(bots[1].pid);
  const staleAt = await waitFor(
    'the registry to call beta_bot stale',
    async () => {
      const res = await fetch(`${url}api/status`);
      const bot = ((await res.json()) as { channel: string; status: string }[]).find((b) => b.channel === 'beta_bot');
      return bot?.status === 'stale' && Date.now();
    },
    20_000,
    20,
  );
  await page.locator('tr.bot[data-channel="beta_bot"][data-status="stale"]').waitFor({ timeout: 20_000 });
  const visibleAfter = Date.now() - staleAt;
  assert.ok(
    visibleAfter < STALE_VISIBLE_MS,
    `the row turned stale ${visibleAfter} ms after the registry did (bound ${STALE_VISIBLE_MS} ms)`,
  );
  assert.equal(await page.evaluate(() => (window as unknown as { marker?: number }).marker), 42, 'no reload');
  assert.match((await page.locator('tr.bot[data-channel="beta_bot"]').textContent()) ?? '', /stale/);
  process.kill(bots[1].pid, 'SIGCONT');

  // Sorting: the header is a button, aria-sort says the order.
  await page.getByRole('button', { name: 'channel' }).click();
  assert.equal(await page.locator('th:has(button:text-is("channel"))').getAttribute('aria-sort'), 'ascending');
  assert.equal(await page.locator('tr.bot').first().getAttribute('data-channel'), 'alpha_bot');

  // Detail view: history from bot_metrics and bot_events, drawn on a canvas.
  await page.locator('tr.bot[data-channel="alpha_bot"] button').click();
  await page.locator('#detail-title').filter({ hasText: 'alpha_bot' }).waitFor();
  await waitFor(
    'samples in the detail view',
    async () => {
      const caption = (await page.locator('#rss-chart').locator('xpath=..').locator('figcaption').textContent()) ?? '';
      const points = Number(/\((\d+) points/.exec(caption)?.[1] ?? 0);
      return points >= 2;
    },
    30_000,
    500,
  );
  await waitFor('the RSS line drawn', async () => (await seriesPixels(page, '#rss-chart canvas')) > 50, 15_000, 200);
  assert.ok((await page.locator('#detail-events tbody tr').count()) >= 1, 'the events timeline lists the register');
  assert.match((await page.locator('#detail-events').textContent()) ?? '', /registered/);

  // LLM panel: spend per day drawn, by model listed; worker health listed.
  await page.locator('#usage-model').filter({ hasText: 'gpt-4o-mini' }).waitFor({ timeout: 20_000 });
  assert.ok((await seriesPixels(page, '#spend-chart canvas')) > 20, 'the spend chart has bars');
  await page.locator('#workers-table').filter({ hasText: 'registry' }).waitFor({ timeout: 20_000 });
  assert.notEqual(await page.locator('#summary-spend').textContent(), '$0.0000');

  // Keyboard: Escape closes the detail view.
  await page.locator('#detail-title').focus();
  await page.keyboard.press('Escape');
  await page.locator('#detail').waitFor({ state: 'detached' });

  await page.locator('tr.bot[data-channel="alpha_bot"] button').click();
  await page.locator('#rss-chart canvas').waitFor();
  await waitFor(
    'the RSS line drawn again',
    async () => (await seriesPixels(page, '#rss-chart canvas')) > 50,
    15_000,
    200,
  );
  await page.screenshot({ path: IMG('dashboard-light.png'), fullPage: true });
  const dark = await openPage(browser, url, { colorScheme: 'dark' });
  await dark.page.locator('tr.bot[data-channel="alpha_bot"] button').click();
  await waitFor(
    'the dark RSS line drawn',
    async () => (await seriesPixels(dark.page, '#rss-chart canvas')) > 50,
    30_000,
    200,
  );
  assert.notEqual(
    await dark.page.evaluate(() => getComputedStyle(document.body).backgroundColor),
    await page.evaluate(() => getComputedStyle(document.body).backgroundColor),
    'dark differs from light',
  );
  await dark.page.screenshot({ path: IMG('dashboard-dark.png'), fullPage: true });

  assert.ok(
    responses.some((r) => r.includes('/api/bot?')),
    "the watcher saw the page's requests",
  );
  assert.deepEqual(problems, []);
  assert.deepEqual(dark.problems, []);
});
