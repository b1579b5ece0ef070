// The host dimension of alerts, on the alert engine itself: every alert carries this monitor's
// `host` label; MonitorHostDown (the leader's 'monitor' input) carries the down host's instead, is
// critical, and resolves when the leader says the host is back; a `host` silence covers exactly
// the alerts about that host. (The leader election and the heartbeat: test/multi-host.test.ts.)
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AlerterInput } from '../src/actors/alerter-messages.js';
import { AlertEngine } from '../src/alerts/engine.js';
import { checkMatcher, type Notification } from '../src/alerts/model.js';

const settings = {
  groupWaitMs: 100,
  groupIntervalMs: 100,
  repeatIntervalMs: 86_400_000,
  flapWindowMs: 60_000,
  flapMaxTransitions: 4,
  missingGraceMs: 1_000,
  staleAfterMs: 1_000,
  host: 'vps1',
};

const hostDown = (host: string, firing: boolean, at: number): AlerterInput => ({
  type: 'monitor',
  at,
  alertname: 'MonitorHostDown',
  firing,
  labels: { host },
  summary: `monitor on host ${host} down`,
});

function harness() {
  const sent: Notification[] = [];
  const engine = new AlertEngine(settings, (n) => sent.push(n));
  let now = Date.UTC(2026, 11, 1, 12);
  const step = (input: AlerterInput | null) => {
    if (input) engine.apply(input, now);
    now += 1_000;
    engine.tick(now);
  };
  const alerts = () => sent.flatMap((n) => (n.type === 'alerts' ? n.alerts : []));
  return { engine, step, alerts, now: () => now };
}

describe('alerts and hosts', () => {
  it('labels every alert with this monitor host, MonitorHostDown with the host that is down', () => {
    const { step, alerts, now } = harness();
    step({
      type: 'transition',
      at: now(),
      channel: 'bot1',
      pid: 42,
      from: 'online',
      to: 'dead',
      reason: 'process_exited',
      planned: false,
    });
    step(hostDown('vps3', true, now()));
    assert.deepEqual(
      alerts().map((a) => [a.status, a.labels]),
      [
        [
          'firing',
          { alertname: 'BotDead', severity: 'critical', host: 'vps1', channel: 'bot1', reason: 'process_exited' },
        ],
        ['firing', { alertname: 'MonitorHostDown', severity: 'critical', host: 'vps3' }],
      ],
    );
    step(hostDown('vps3', false, now()));
    assert.deepEqual(alerts().at(-1)?.status, 'resolved');
    assert.deepEqual(alerts().at(-1)?.labels.host, 'vps3');
  });

  it('a host silence covers the alerts about that host and nothing else', () => {
    const { engine, step, alerts, now } = harness();
    engine.addSilence(
      { matcher: { host: 'vps3' }, forMs: 3_600_000, comment: 'maintenance', createdBy: 'test' },
      now(),
    );
    step(hostDown('vps3', true, now()));
    step(hostDown('vps4', true, now()));
    assert.deepEqual(
      alerts().map((a) => a.labels.host),
      ['vps4'],
    );
    assert.equal(engine.alertViews(now()).find((a) => a.labels.host === 'vps3')?.silenced, true);
    assert.throws(() => checkMatcher({ host: 'bad host' }), /host must be/);
    assert.throws(() => checkMatcher({ host: 'vps3', all: true }), /exactly one of channel, match, host or all/);
  });
});
