// A bot that keeps hanging and recovering: past flap.maxTransitions stale<->online changes in
// flap.windowMs it gets one BotFlapping, and its stale alerts are held (pending) from then on:
// at most 4 notifications about BotStale reach the receiver.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AlertView } from '../src/actors/alerter-messages.js';
import { requestControl } from '../src/http/control-client.js';
import { alertMonitor } from './helpers/alerts.js';
import { botStatus, sleep, startBot, waitFor } from './helpers/monitor-process.js';

describe('BotFlapping', () => {
  const ctx = alertMonitor((_dir, receiver) => ({
    alerts: {
      receivers: [{ url: receiver.url('/am') }],
      groupWaitMs: 200,
      groupIntervalMs: 400,
      flap: { windowMs: 120_000, maxTransitions: 4 },
    },
    other: { staleAfterMs: 1_500 },
  }));

  it('raises one BotFlapping and holds the stale alerts back', async () => {
    const { monitor, receiver } = ctx;
    const bot = startBot(monitor.socket, 'flappy', 200);
    const state = async () => (await botStatus(monitor, 'flappy'))?.status;
    await waitFor('bot online', async () => (await state()) === 'online');
    const alerts = async () =>
      (await requestControl<{ alerts: AlertView[] }>(monitor.control, 'GET', '/alerts')).alerts;
    // Four hang/recover cycles: eight transitions, flapping from the fifth on.
    for (let cycle = 0; cycle < 4; cycle++) {
      process.kill(bot.pid, 'SIGSTOP');
      await waitFor(`stale (cycle ${cycle})`, async () => (await state()) === 'stale', 30_000);
      await sleep(1_000); // past groupWait: a stale alert that is not held gets notified
      if (cycle === 3) {
        // Flapping by now: this stale alert is held, visible as pending, not sent.
        const stale = (await alerts()).find((a) => a.alertname === 'BotStale' && a.state !== 'resolved');
        assert.equal(stale?.state, 'pending', JSON.stringify(stale));
      }
      process.kill(bot.pid, 'SIGCONT');
      await waitFor(`online again (cycle ${cycle})`, async () => (await state()) === 'online', 30_000);
      await sleep(500);
    }
    await sleep(1_500);
    const seen = receiver.seen('/am');
    const flapping = seen.filter((n) => n.alerts.some((a) => a.alertname === 'BotFlapping'));
    assert.deepEqual(flapping, [
      { status: 'firing', alerts: [{ status: 'firing', alertname: 'BotFlapping', channel: 'flappy' }] },
    ]);
    const stale = seen.filter((n) => n.alerts.some((a) => a.alertname === 'BotStale'));
    assert.ok(
      stale.length >= 1 && stale.length <= 4,
      `${stale.length} BotStale notifications: ${JSON.stringify(stale)}`,
    );
    assert.equal(seen.length, flapping.length + stale.length, 'nothing else was sent');
    const firing = (await alerts()).filter((a) => a.state === 'firing').map((a) => a.alertname);
    assert.deepEqual(firing, ['BotFlapping'], 'still flapping: it resolves only after a stable window');
  });
});
