// A hung bot (SIGSTOP) raises BotStale: one notification firing, then, once it heartbeats again,
// one resolved; nothing else reaches the receiver.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { requestControl } from '../src/http/control-client.js';
import type { AlertView } from '../src/actors/alerter-messages.js';
import { alertMonitor } from './helpers/alerts.js';
import { botStatus, sleep, startBot, waitFor } from './helpers/monitor-process.js';

describe('BotStale', () => {
  const ctx = alertMonitor((_dir, receiver) => ({
    alerts: { receivers: [{ url: receiver.url('/am') }] },
    other: { staleAfterMs: 2_000 },
  }));

  it('fires once when a bot hangs and resolves once when it is back', async () => {
    const { monitor, receiver } = ctx;
    const bot = startBot(monitor.socket, 'hung_bot', 200);
    await waitFor('bot online', async () => (await botStatus(monitor, 'hung_bot'))?.status === 'online');
    process.kill(bot.pid, 'SIGSTOP');
    await waitFor('firing notification', () => receiver.seen('/am').length >= 1, 30_000);
    const firing = (await requestControl<{ alerts: AlertView[] }>(monitor.control, 'GET', '/alerts')).alerts;
    assert.deepEqual(
      firing.map((a) => [a.alertname, a.labels.channel, a.state, a.severity]),
      [['BotStale', 'hung_bot', 'firing', 'warning']],
    );
    assert.equal(firing[0].lastDelivery?.ok, true, 'the delivery result is shown');
    process.kill(bot.pid, 'SIGCONT');
    await waitFor('resolved notification', () => receiver.seen('/am').length >= 2, 30_000);
    await sleep(2_000); // a group interval and more: anything extra would have come by now
    assert.deepEqual(receiver.seen('/am'), [
      { status: 'firing', alerts: [{ status: 'firing', alertname: 'BotStale', channel: 'hung_bot' }] },
      { status: 'resolved', alerts: [{ status: 'resolved', alertname: 'BotStale', channel: 'hung_bot' }] },
    ]);
    const body = receiver.received[0].body as Record<string, unknown>;
    assert.equal(body.version, '4');
    assert.deepEqual(body.groupLabels, { alertname: 'BotStale' });
    assert.match(String(body.groupKey), /alertname="BotStale"/);
    const [alert] = body.alerts as {
      endsAt: string;
      startsAt: string;
      fingerprint: string;
      annotations: { summary: string };
    }[];
    assert.equal(alert.endsAt, '0001-01-01T00:00:00Z', 'a firing alert has no end (Alertmanager zero time)');
    assert.ok(Date.parse(alert.startsAt) > 0 && /^[0-9a-f]{16}$/.test(alert.fingerprint));
    assert.match(alert.annotations.summary, /hung_bot/);
    const resolved = (receiver.received[1].body as { alerts: { endsAt: string }[] }).alerts[0];
    assert.ok(Date.parse(resolved.endsAt) > Date.parse(alert.startsAt), 'the resolved alert has its end time');
  });
});
