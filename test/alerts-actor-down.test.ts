// MonitorActorDown when the supervisor gives up: with supervisor.intensity 1, the sampler crashed
// twice (kissmon fault crash) is past the limit, the monitor exits 1, and before it does the alerter
// delivers MonitorActorDown{actor="sampler"} at once (its "last words", not after groupWaitMs). The
// monitor the service manager starts next has its actors back: it sends the alert resolved.
import assert from 'node:assert/strict';
import { defaultHostName } from '../src/config.js';
import { describe, it } from 'node:test';
import { alertConfig, alertMonitor } from './helpers/alerts.js';
import { actorHealth, runKissmon, startMonitor, waitFor } from './helpers/monitor-process.js';

interface Notification {
  alerts: { status: string; labels: Record<string, string>; annotations: { summary: string }; endsAt: string }[];
}

describe('MonitorActorDown', () => {
  // groupWaitMs of 60 s: a notification within the exit proves the last-words path, not the timer.
  const ctx = alertMonitor((_dir, receiver) => ({
    alerts: { receivers: [{ url: receiver.url('/am') }], groupWaitMs: 60_000 },
    other: { faults: { enabled: true }, supervisor: { intensity: 1, periodMs: 600_000 } },
  }));

  it('a sampler crashed past the intensity limit: the monitor exits 1 after delivering MonitorActorDown', async () => {
    const { monitor, receiver, dir } = ctx;
    const crash = () => runKissmon(['fault', 'crash', 'sampler', '--socket', dir.socket]);
    assert.equal((await crash()).code, 0, 'first crash asked');
    await waitFor('sampler restarted once', async () => (await actorHealth(monitor, 'sampler')).restarts === 1, 30_000);
    assert.equal(monitor.child.exitCode, null, 'one restart is within the limit');
    assert.deepEqual(receiver.seen('/am'), [], 'nothing delivered for a restart within the limit');
    // The monitor may be gone before it answers the second one; a sampler still starting refuses the
    // fault, so it is asked again until it took it (a refusal left this test waiting for an exit forever).
    await waitFor(
      'the second crash taken',
      async () => monitor.child.exitCode !== null || (await crash()).code === 0,
      30_000,
    );
    assert.equal(await monitor.exited, 1, 'exit code after giving up');
    assert.match(monitor.output(), /actor sampler restarted more than 1 times/);
    assert.deepEqual(
      receiver.seen('/am'),
      [{ status: 'firing', alerts: [{ status: 'firing', alertname: 'MonitorActorDown' }] }],
      'exactly one notification, received before the exit',
    );
    const body = receiver.received[0].body as Notification;
    assert.deepEqual(body.alerts[0].labels, {
      alertname: 'MonitorActorDown',
      severity: 'critical',
      host: defaultHostName(),
      actor: 'sampler',
    });
    assert.match(body.alerts[0].annotations.summary, /sampler restarted past the intensity limit/);
  });

  it('the next monitor process sends it resolved', async () => {
    const { receiver, dir } = ctx;
    ctx.config = alertConfig(dir, { receivers: [{ url: receiver.url('/am') }] });
    ctx.monitor = await startMonitor(dir, ['--config', ctx.config]);
    await waitFor('resolved notification', () => receiver.seen('/am').length >= 2, 30_000);
    assert.deepEqual(receiver.seen('/am')[1], {
      status: 'resolved',
      alerts: [{ status: 'resolved', alertname: 'MonitorActorDown' }],
    });
    const resolved = (receiver.received[1].body as Notification).alerts[0];
    assert.deepEqual(resolved.labels, {
      alertname: 'MonitorActorDown',
      severity: 'critical',
      host: defaultHostName(),
      actor: 'sampler',
    });
    assert.ok(Date.parse(resolved.endsAt) > 0, `endsAt set: ${resolved.endsAt}`);
  });
});
