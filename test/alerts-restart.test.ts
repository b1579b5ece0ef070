// The monitor restarted while an alert is firing: the alert, its group and what was notified live
// in SQLite, so the new process does not send it again as new, and sends the resolution once the
// bot recovers. A notification queued for a receiver that is down survives the restart and
// arrives once the receiver is back, exactly once.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AlertView } from '../src/actors/alerter-messages.js';
import { requestControl } from '../src/http/control-client.js';
import { alertMonitor } from './helpers/alerts.js';
import {
  actorHealth,
  botStatus,
  sleep,
  startBot,
  startMonitor,
  stopMonitor,
  waitFor,
} from './helpers/monitor-process.js';

describe('alerts across a monitor restart', () => {
  const ctx = alertMonitor((_dir, receiver) => ({
    alerts: { receivers: [{ url: receiver.url('/am') }] },
    other: { staleAfterMs: 2_000 },
  }));

  it('does not re-send a firing alert as new, and resolves it after the restart', async () => {
    const { receiver } = ctx;
    let monitor = ctx.monitor;
    const bot = startBot(monitor.socket, 'sleepy_bot', 200);
    await waitFor('bot online', async () => (await botStatus(monitor, 'sleepy_bot'))?.status === 'online');
    process.kill(bot.pid, 'SIGSTOP');
    await waitFor('firing notification', () => receiver.seen('/am').length >= 1, 30_000);
    const before = (await requestControl<{ alerts: AlertView[] }>(monitor.control, 'GET', '/alerts')).alerts;
    assert.equal(await stopMonitor(monitor), 0);

    monitor = ctx.monitor = await startMonitor(ctx.dir, ['--config', ctx.config]);
    const after = await waitFor(
      'alert state reloaded',
      async () => {
        const alerts = (await requestControl<{ alerts: AlertView[] }>(monitor.control, 'GET', '/alerts')).alerts;
        return alerts.length > 0 && alerts;
      },
      30_000,
    );
    assert.deepEqual(
      after.map((a) => [a.fingerprint, a.state, a.startsAt]),
      before.map((a) => [a.fingerprint, a.state, a.startsAt]),
      'the same alert, still firing',
    );
    await sleep(2_500); // past groupWait and a group interval of the new process
    assert.equal(receiver.seen('/am').length, 1, 'nothing re-sent after the restart');

    process.kill(bot.pid, 'SIGCONT');
    await waitFor('resolved notification', () => receiver.seen('/am').length >= 2, 30_000);
    await sleep(1_500);
    assert.deepEqual(receiver.seen('/am'), [
      { status: 'firing', alerts: [{ status: 'firing', alertname: 'BotStale', channel: 'sleepy_bot' }] },
      { status: 'resolved', alerts: [{ status: 'resolved', alertname: 'BotStale', channel: 'sleepy_bot' }] },
    ]);
  });
});

describe('the delivery queue across a monitor restart', () => {
  const ctx = alertMonitor((_dir, receiver) => ({
    alerts: {
      receivers: [{ url: receiver.url('/am') }],
      retryInitialMs: 200,
      retryMaxMs: 1_000,
      deliveryTimeoutMs: 2_000,
    },
  }));

  it('keeps the queue across restarts', async () => {
    const { receiver } = ctx;
    let monitor = ctx.monitor;
    const bot = startBot(monitor.socket, 'doomed_bot', 200);
    await waitFor('bot online', async () => (await botStatus(monitor, 'doomed_bot'))?.status === 'online');
    await receiver.close();
    bot.child.kill('SIGKILL');
    await waitFor(
      'a failed attempt',
      async () => {
        const alert = (await requestControl<{ alerts: AlertView[] }>(monitor.control, 'GET', '/alerts')).alerts[0];
        return alert?.lastDelivery?.ok === false;
      },
      30_000,
    );
    assert.equal(await stopMonitor(monitor), 0);

    monitor = ctx.monitor = await startMonitor(ctx.dir, ['--config', ctx.config]);
    await waitFor(
      'the queued notification reloaded',
      async () => (await actorHealth(monitor, 'alerter')).queue_depth === 1,
      30_000,
    );
    await receiver.listen(); // same port
    await waitFor('notification arrives', () => receiver.seen('/am').length >= 1, 30_000);
    await sleep(2_000); // retries and group intervals of the new process: a second copy would be here
    assert.deepEqual(receiver.seen('/am'), [
      {
        status: 'firing',
        alerts: [{ status: 'firing', alertname: 'BotDead', channel: 'doomed_bot', reason: 'process_exited' }],
      },
    ]);
  });
});
