// The dashboard's alerts panel against the alerter's routes (issue 11): a bot killed shows its
// BotDead alert firing in the page; a silence made in the page is the one `kissmon silence list`
// shows, and the alert is then shown silenced (as `kissmon alerts --json` says); unsilencing in the
// page ends it. The budgets table (issue 12) shows when its route exists, "not available" when not.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { alertConfig } from './helpers/alerts.js';
import { dashboardUrl, launchChromium, openPage, type WatchedPage } from './helpers/browser.js';
import {
  botStatus,
  killStarted,
  runKissmon,
  startBot,
  startMonitor,
  stopMonitor,
  TestDir,
  waitFor,
  type MonitorProcess,
} from './helpers/monitor-process.js';

const TOKEN = 'alerts-test-token-0123456789';
const dir = new TestDir();
let monitor: MonitorProcess;
let url: string;
let routes: string[];
let browser: Browser | null = null;

before(async () => {
  const tokenFile = join(dir.path, 'http-token');
  writeFileSync(tokenFile, TOKEN, { mode: 0o600 });
  const config = alertConfig(dir, {}, { staleAfterMs: 10_000 });
  // A fixed host name: every alert carries it as its `host` label (issue 14), shown in the subject.
  monitor = await startMonitor(dir, [
    '--http-port',
    '0',
    '--http-token-file',
    tokenFile,
    '--config',
    config,
    '--host-name',
    'dash',
  ]);
  url = await dashboardUrl(monitor.output);
  routes = (
    (await (await fetch(`${url}api/session`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as {
      routes: string[];
    }
  ).routes;
  // The alerter is part of this build: a missing route is a failure, not a reason to skip.
  for (const r of ['GET /alerts', 'GET /silences', 'POST /silences', 'POST /silences/remove']) {
    assert.ok(routes.includes(r), `route ${r}`);
  }
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

interface SilenceList {
  silences: { id: string; matcher: { channel?: string }; comment: string; createdBy: string; active: boolean }[];
}
async function silenceList(): Promise<SilenceList> {
  const r = await runKissmon(['silence', 'list', '--json', '--socket', dir.socket]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as SilenceList;
}

interface AlertList {
  alerts: {
    alertname: string;
    labels: Record<string, string>;
    state: string;
    silenced: boolean;
    silencedBy: string[];
  }[];
}
async function alertList(): Promise<AlertList> {
  const r = await runKissmon(['alerts', '--json', '--socket', dir.socket]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as AlertList;
}

async function submitSilence(page: Page, channel: string, comment: string): Promise<void> {
  const form = page.locator('#silence-form');
  await form.getByLabel('Silence').selectOption('channel');
  await form.getByLabel('name or glob').fill(channel);
  await form.getByLabel('for').fill('30m');
  await form.getByLabel('comment').fill(comment);
  await form.getByRole('button', { name: 'Silence' }).click();
}

test('a firing alert silenced in the page: in `kissmon silence list`, shown silenced; unsilence ends it', async (t) => {
  browser ??= await launchChromium(t);
  if (!browser) return;
  const bot = startBot(monitor.socket, 'quiet_bot', 200);
  await waitFor('quiet_bot online', async () => (await botStatus(monitor, 'quiet_bot'))?.status === 'online');
  bot.child.kill('SIGKILL');
  const { page, problems, responses } = await signedIn(browser);
  const row = page.locator('#alerts-table tr').filter({ hasText: 'BotDead' }).filter({ hasText: 'quiet_bot' });
  await row.waitFor({ timeout: 20_000 });
  const cells = () => row.locator('td').allTextContents();
  // alert, severity, subject, state, since, summary, silenced, actions
  assert.deepEqual(
    (await cells()).filter((_, i) => [0, 1, 2, 3, 6].includes(i)),
    ['BotDead', 'critical', 'host=dash quiet_bot reason=process_exited', 'firing', 'no'],
  );
  const summary = () => page.locator('#summary-alerts').textContent();
  await waitFor('summary counts the firing alert', async () => (await summary()) === '1');

  await submitSilence(page, 'quiet_bot', 'deploy from the dashboard test');
  await page.getByRole('status').filter({ hasText: 'silenced channel quiet_bot for 30m' }).waitFor({ timeout: 10_000 });
  await page.locator('#silences-table tr').filter({ hasText: 'channel quiet_bot' }).waitFor({ timeout: 10_000 });

  const made = (await silenceList()).silences.find((s) => s.matcher.channel === 'quiet_bot');
  assert.ok(made, 'kissmon silence list shows the silence made in the page');
  assert.equal(made.comment, 'deploy from the dashboard test');
  assert.equal(made.createdBy, 'dashboard');
  assert.equal(made.active, true);
  const dead = (await alertList()).alerts.find((a) => a.alertname === 'BotDead' && a.labels.channel === 'quiet_bot');
  assert.deepEqual(dead && { state: dead.state, silenced: dead.silenced, silencedBy: dead.silencedBy }, {
    state: 'firing',
    silenced: true,
    silencedBy: [made.id],
  });
  await waitFor('the page shows it silenced', async () => (await cells())[6] === `yes (${made.id})`);
  assert.equal(await summary(), '0', 'a silenced alert is not counted active');

  await page
    .locator(`#silences-table tr[data-silence="${made.id}"]`)
    .getByRole('button', { name: 'Unsilence' })
    .click();
  await page
    .getByRole('status')
    .filter({ hasText: `removed silence ${made.id}` })
    .waitFor({ timeout: 10_000 });
  const stillActive = async () => (await silenceList()).silences.some((s) => s.id === made.id && s.active);
  await waitFor('the silence gone or inactive', async () => !(await stillActive()));
  await waitFor('the page shows it unsilenced', async () => (await cells())[6] === 'no');
  const removed = responses.some((r) => r.startsWith('POST 200') && r.includes('/api/silences/remove?'));
  assert.ok(removed, 'the watcher saw the page remove it');
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
  assert.notEqual(await page.locator('#summary-alerts').textContent(), 'n/a');
  assert.deepEqual(problems, []);
});
