// The expected fleet: an expected channel that never registers shows as `missing` in kissmon
// status and raises BotMissing after the grace; the registered one does not. SIGHUP re-reads the
// expected file: dropping the channel from it resolves the alert.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { alertMonitor } from './helpers/alerts.js';
import { botStatus, runKissmon, sleep, startBot, waitFor } from './helpers/monitor-process.js';

describe('BotMissing', () => {
  const ctx = alertMonitor((dir, receiver) => {
    writeFileSync(join(dir.path, 'expected.txt'), '# the fleet\npresent_bot\nghost_bot  # never starts\n');
    return {
      alerts: { receivers: [{ url: receiver.url('/am') }], missingGraceMs: 10_000 }, // long enough for present_bot to start on a loaded box,
      other: { staleAfterMs: 10_000, expected: join(dir.path, 'expected.txt') },
    };
  });

  it('lists the unregistered expected channel as missing and raises BotMissing for it only', async () => {
    const { monitor, receiver } = ctx;
    const expectedFile = join(ctx.dir.path, 'expected.txt');
    startBot(monitor.socket, 'present_bot', 200);
    await waitFor('present_bot online', async () => (await botStatus(monitor, 'present_bot'))?.status === 'online');
    const listed = await runKissmon(['status', '--socket', monitor.socket, '--json']);
    const rows = (JSON.parse(listed.stdout) as { channel: string; status: string; pid: number | null }[]).map((r) => [
      r.channel,
      r.status,
      r.pid === null,
    ]);
    assert.deepEqual(rows.sort(), [
      ['ghost_bot', 'missing', true],
      ['present_bot', 'online', false],
    ]);
    const table = await runKissmon(['status', '--socket', monitor.socket]);
    assert.match(table.stdout, /ghost_bot\s*│\s*-\s*│\s*missing/);

    await waitFor('BotMissing notification', () => receiver.seen('/am').length >= 1, 30_000);
    await sleep(1_500);
    assert.deepEqual(receiver.seen('/am'), [
      { status: 'firing', alerts: [{ status: 'firing', alertname: 'BotMissing', channel: 'ghost_bot' }] },
    ]);

    writeFileSync(expectedFile, 'present_bot\n');
    monitor.child.kill('SIGHUP');
    await waitFor('BotMissing resolved after the reload', () => receiver.seen('/am').length >= 2, 30_000);
    assert.deepEqual(receiver.seen('/am')[1], {
      status: 'resolved',
      alerts: [{ status: 'resolved', alertname: 'BotMissing', channel: 'ghost_bot' }],
    });
    const after = JSON.parse((await runKissmon(['status', '--socket', monitor.socket, '--json'])).stdout) as {
      channel: string;
    }[];
    assert.deepEqual(
      after.map((r) => r.channel),
      ['present_bot'],
    );
  });
});
