// A silence (kissmon silence add --channel) keeps a stale bot's alert from every receiver; it is
// still listed, marked silenced. A bot outside the silence is notified as usual (the receiver works).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AlertView, SilenceView } from '../src/actors/alerter-messages.js';
import { requestControl } from '../src/http/control-client.js';
import { alertMonitor } from './helpers/alerts.js';
import { botStatus, runKissmon, sleep, startBot, waitFor } from './helpers/monitor-process.js';

describe('silences', () => {
  const ctx = alertMonitor((_dir, receiver) => ({
    alerts: { receivers: [{ url: receiver.url('/am') }] },
    other: { staleAfterMs: 2_000 },
  }));

  it('delivers nothing for a silenced bot and shows its alert silenced', async () => {
    const { monitor, receiver } = ctx;
    const quiet = startBot(monitor.socket, 'quiet_bot', 200);
    const loud = startBot(monitor.socket, 'loud_bot', 200);
    for (const c of ['quiet_bot', 'loud_bot'])
      await waitFor(`${c} online`, async () => (await botStatus(monitor, c))?.status === 'online');
    const added = await runKissmon([
      'silence',
      'add',
      '--socket',
      monitor.socket,
      '--channel',
      'quiet_bot',
      '--for',
      '30m',
      '--comment',
      'deploy',
      '--json',
    ]);
    assert.equal(added.code, 0, added.stderr);
    const { silence } = JSON.parse(added.stdout) as { silence: SilenceView };
    assert.deepEqual(silence.matcher, { channel: 'quiet_bot' });
    assert.equal(silence.active, true);
    assert.equal(silence.comment, 'deploy');

    process.kill(quiet.pid, 'SIGSTOP');
    const silenced = await waitFor(
      'quiet_bot alert listed',
      async () =>
        (await requestControl<{ alerts: AlertView[] }>(monitor.control, 'GET', '/alerts')).alerts.find(
          (a) => a.labels.channel === 'quiet_bot',
        ),
      30_000,
    );
    assert.equal(silenced.state, 'firing');
    assert.equal(silenced.silenced, true);
    assert.deepEqual(silenced.silencedBy, [silence.id]);
    const table = await runKissmon(['alerts', '--socket', monitor.socket]);
    assert.match(table.stdout, /BotStale.*quiet_bot.*firing.*yes \(1\)/);
    await sleep(2_000); // past groupWait and a group interval: a notification would have gone by now

    process.kill(loud.pid, 'SIGSTOP');
    await waitFor('loud_bot notified', () => receiver.seen('/am').length >= 1, 30_000);
    await sleep(1_000);
    assert.deepEqual(receiver.seen('/am'), [
      { status: 'firing', alerts: [{ status: 'firing', alertname: 'BotStale', channel: 'loud_bot' }] },
    ]);

    const list = await runKissmon(['silence', 'list', '--socket', monitor.socket, '--json']);
    assert.deepEqual(
      (JSON.parse(list.stdout) as { silences: SilenceView[] }).silences.map((s) => s.id),
      [silence.id],
    );
    const removed = await runKissmon(['silence', 'remove', '--socket', monitor.socket, silence.id]);
    assert.equal(removed.code, 0, removed.stderr);
    // Unsilenced and still firing: now it is delivered.
    await waitFor(
      'quiet_bot notified once unsilenced',
      () => receiver.seen('/am').some((n) => n.alerts.some((a) => a.channel === 'quiet_bot')),
      30_000,
    );
  });
});
