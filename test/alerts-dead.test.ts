// A bot that dies without unregistering raises BotDead with the reason; a bot that stops with a
// planned unregister (reason "deploy") and one with a plain unregister raise nothing.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { alertMonitor } from './helpers/alerts.js';
import { botStatus, sleep, startBot, waitFor } from './helpers/monitor-process.js';

describe('BotDead', () => {
  const ctx = alertMonitor((_dir, receiver) => ({
    alerts: { receivers: [{ url: receiver.url('/am') }] },
    other: { staleAfterMs: 10_000 },
  }));

  it('fires for a killed bot with reason process_exited, and not for planned or clean stops', async () => {
    const { monitor, receiver } = ctx;
    const killed = startBot(monitor.socket, 'killed_bot', 200);
    const deployed = startBot(monitor.socket, 'deployed_bot', 200, ['deploy']);
    const stopped = startBot(monitor.socket, 'stopped_bot', 200);
    for (const channel of ['killed_bot', 'deployed_bot', 'stopped_bot']) {
      await waitFor(`${channel} online`, async () => (await botStatus(monitor, channel))?.status === 'online');
    }
    deployed.child.kill('SIGTERM');
    stopped.child.kill('SIGTERM');
    await Promise.all([deployed.exited, stopped.exited]);
    killed.child.kill('SIGKILL');
    await waitFor('BotDead notification', () => receiver.seen('/am').length >= 1, 30_000);
    for (const channel of ['deployed_bot', 'stopped_bot'])
      assert.equal((await botStatus(monitor, channel))?.status, 'offline', `${channel} went offline`);
    await sleep(2_000);
    assert.deepEqual(receiver.seen('/am'), [
      {
        status: 'firing',
        alerts: [{ status: 'firing', alertname: 'BotDead', channel: 'killed_bot', reason: 'process_exited' }],
      },
    ]);
    const alert = (
      receiver.received[0].body as { alerts: { labels: Record<string, string>; annotations: { summary: string } }[] }
    ).alerts[0];
    assert.equal(alert.labels.severity, 'critical');
    assert.match(alert.annotations.summary, /killed_bot.*exited/);
  });
});
