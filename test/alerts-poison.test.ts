// A receiver that answers 500 to one notification forever: it is tried maxDeliveryAttempts times,
// then given up (counted in the alerter's health and dropped), and the notification behind it in
// the same queue still arrives.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { alertMonitor } from './helpers/alerts.js';
import { actorDetail, botStatus, startBot, waitFor } from './helpers/monitor-process.js';

describe('poisoned notification', () => {
  const ctx = alertMonitor((_dir, receiver) => {
    receiver.refuseFirstPayload = true;
    return {
      alerts: {
        receivers: [{ url: receiver.url('/am') }],
        retryInitialMs: 200,
        retryMaxMs: 500,
        maxDeliveryAttempts: 3,
      },
    };
  });

  it('gives up on it after maxDeliveryAttempts and delivers the next one', async () => {
    const { monitor, receiver } = ctx;
    const channels = (body: unknown) =>
      (body as { alerts: { labels: Record<string, string> }[] }).alerts.map((a) => a.labels.channel);
    const poison = startBot(monitor.socket, 'poison_bot', 200);
    await waitFor('poison_bot online', async () => (await botStatus(monitor, 'poison_bot'))?.status === 'online');
    poison.child.kill('SIGKILL');
    await waitFor('the first notification refused', () => receiver.received.some((r) => r.status === 500), 30_000);
    const good = startBot(monitor.socket, 'good_bot', 200);
    await waitFor('good_bot online', async () => (await botStatus(monitor, 'good_bot'))?.status === 'online');
    good.child.kill('SIGKILL');
    const delivered = await waitFor(
      'the next notification arrives',
      () => receiver.received.find((r) => r.status === 200 && channels(r.body).includes('good_bot')),
      30_000,
    );
    assert.equal(delivered.path, '/am');
    const refused = receiver.received.filter((r) => r.status === 500);
    assert.equal(refused.length, 3, 'tried exactly maxDeliveryAttempts times');
    assert.deepEqual(channels(refused[0].body), ['poison_bot']);
    await waitFor(
      'given up and counted',
      async () => (await actorDetail(monitor, 'alerter', 'delivery_abandoned')) === 1,
      10_000,
    );
  });
});
