// A receiver that is down for five failed attempts (backoff 200, 400, 800 ms, then capped at 1 s):
// the notification is retried and arrives once it is back, exactly once; `kissmon alerts` shows the
// failed attempt meanwhile.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AlertView } from '../src/actors/alerter-messages.js';
import { requestControl } from '../src/http/control-client.js';
import { alertMonitor } from './helpers/alerts.js';
import { actorDetail, botStatus, sleep, startBot, waitFor } from './helpers/monitor-process.js';

describe('receiver down', () => {
  const ctx = alertMonitor((_dir, receiver) => ({
    alerts: {
      receivers: [{ url: receiver.url('/am') }],
      retryInitialMs: 200,
      retryMaxMs: 1_000,
      deliveryTimeoutMs: 2_000,
    },
    other: { staleAfterMs: 2_000 },
  }));

  it('delivers the notification after the receiver is back', async () => {
    const { monitor, receiver } = ctx;
    const bot = startBot(monitor.socket, 'lonely_bot', 200);
    await waitFor('bot online', async () => (await botStatus(monitor, 'lonely_bot'))?.status === 'online');
    await receiver.close();
    process.kill(bot.pid, 'SIGSTOP');
    const failed = await waitFor(
      'a failed attempt shown',
      async () => {
        const alert = (await requestControl<{ alerts: AlertView[] }>(monitor.control, 'GET', '/alerts')).alerts[0];
        return alert?.lastDelivery?.ok === false && alert;
      },
      30_000,
    );
    assert.ok(failed.lastDelivery!.error, 'the error is shown');
    // Down until the retries have run past retryMaxMs (the fifth waits the capped 1 s).
    await waitFor(
      'five failed attempts while the receiver is down',
      async () => (await actorDetail(monitor, 'alerter', 'delivery_failures')) >= 5,
      30_000,
    );
    assert.equal(receiver.received.length, 0);
    await receiver.listen(); // same port
    await waitFor('notification arrives', () => receiver.seen('/am').length >= 1, 30_000);
    await sleep(1_500);
    assert.deepEqual(receiver.seen('/am'), [
      { status: 'firing', alerts: [{ status: 'firing', alertname: 'BotStale', channel: 'lonely_bot' }] },
    ]);
    const alert = (await requestControl<{ alerts: AlertView[] }>(monitor.control, 'GET', '/alerts')).alerts[0];
    assert.equal(alert.lastDelivery?.ok, true);
  });
});
