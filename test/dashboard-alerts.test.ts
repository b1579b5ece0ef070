// The dashboard's alerts panel against the alerter's routes (issue 11): a silence made in the
// page is the one `kissmon silence list` shows, and unsilencing in the page ends it; the budgets
// table (issue 12) shows when its route exists, "not available" when it does not. On a build
// without the alerts routes the silence test is skipped, saying so.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { dashboardUrl, launchChromium, openPage, type WatchedPage } from './helpers/browser.js';
import { killStarted, runKissmon, startBot, startMonitor, stopMonitor, TestDir, waitFor, type MonitorProcess } from './helpers/monitor-process.js';

const TOKEN = 'alerts-test-token-0123456789';
const dir = new TestDir();
let monitor: MonitorProcess;
let url: string;
let routes: string[];
let browser: Browser | null = null;

before(async () => {
  const tokenFile = join(dir.path, 'http-token');
  writeFileSync(tokenFile, TOKEN, { mode: 0o600 });
  monitor = await startMonitor(dir, ['--http-port', '0', '--http-token-file', tokenFile]);
  url = await dashboardUrl(monitor.output);
  routes = ((await (await fetch(`${url}api/session`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as { routes: string[] }).routes;
});

after(async () => {
  await browser?.close();
  await killStarted();
  await stopMonitor(monitor);
  dir.remove();
});

async function signedIn(b: Browser): Promise<WatchedPage> {
  const watched = await openPage(b, url);
  await watched.page.getByLabel('Token').fill(TOKEN);
  await watched.page.getByRole('button', { name: 'Open the dashboard' }).click();
  await watched.page.locator('#fleet').waitFor();
  return watched;
}

interface SilenceList { silences: { id: string; matcher: { channel?: string }; comment: string; createdBy: string; active: boolean }[] }
async function silenceList(): Promise<SilenceList> {
  const r = await runKissmon(['silence', 'list', '--json', '--socket', dir.socket]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as SilenceList;
}

async function submitSilence(page: Page, channel: string, comment: string): Promise<void> {
  const form = page.locator('#silence-form');
  await form.getByLabel('Silence').selectOption('channel');
  await form.getByLabel('name or glob').fill(channel);
  await form.getByLabel('for').fill('30m');
  await form.getByLabel('comment').fill(comment);
  await form.getByRole('button', { name: 'Silence' }).click();
}

test('a silence made in the page shows in `kissmon silence list`; unsilence ends it', async (t) => {
  if (!routes.includes('POST /silences')) return t.skip('this build has no alerts routes (issue 11): nothing to silence with');
  browser ??= await launchChromium(t);
  if (!browser) return;
  startBot(monitor.socket, 'quiet_bot', 200);
  const { page, problems } = await signedIn(browser);
  await submitSilence(page, 'quiet_bot', 'deploy from the dashboard test');
  await page.getByRole('status').filter({ hasText: 'silenced channel quiet_bot for 30m' }).waitFor({ timeout: 10_000 });
  await page.locator('#silences-table tr').filter({ hasText: 'channel quiet_bot' }).waitFor({ timeout: 10_000 });

  const made = (await silenceList()).silences.find((s) => s.matcher.channel === 'quiet_bot');
  assert.ok(made, 'kissmon silence list shows the silence made in the page');
  assert.equal(made.comment, 'deploy from the dashboard test');
  assert.equal(made.createdBy, 'dashboard');
  assert.equal(made.active, true);

  await page.locator(`#silences-table tr[data-silence="${made.id}"]`).getByRole('button', { name: 'Unsilence' }).click();
  await page.getByRole('status').filter({ hasText: `removed silence ${made.id}` }).waitFor({ timeout: 10_000 });
  await waitFor('the silence gone or inactive', async () => !(await silenceList()).silences.some((s) => s.id === made.id && s.active));
  assert.deepEqual(problems, []);
});

test('the budgets table shows when /budgets exists, "not available" when not', async (t) => {
  browser ??= await launchChromium(t);
  if (!browser) return;
  const { page, problems } = await signedIn(browser);
  const llm = page.locator('#llm');
  if (routes.includes('GET /budgets')) {
    await llm.locator('#budgets, p:text("No budgets configured.")').first().waitFor({ timeout: 20_000 });
  } else {
    await llm.getByText('Budgets: not available on this monitor.').waitFor({ timeout: 20_000 });
  }
  if (!routes.includes('GET /alerts')) await page.getByText('Alerts: not available on this monitor.').waitFor();
  else assert.notEqual(await page.locator('#summary-alerts').textContent(), 'n/a');
  assert.deepEqual(problems, []);
});
