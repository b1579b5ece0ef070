// 30 bots killed at once: grouping sends at most 3 notifications, and together they list all 30.
// The bots are real processes (sleep); the test registers and heartbeats for them over one
// connection, as a fleet supervisor would, so 30 node processes are not needed.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { alertConfig, TestReceiver } from './helpers/alerts.js';
import {
  line,
  sleep,
  startMonitor,
  status,
  stopMonitor,
  TestDir,
  waitFor,
  type MonitorProcess,
} from './helpers/monitor-process.js';

const BOTS = 30;

describe('fleet-wide BotDead', () => {
  const dir = new TestDir();
  const receiver = new TestReceiver();
  let monitor: MonitorProcess;
  const sleepers: ChildProcess[] = [];
  let conn: net.Socket | null = null;
  let heartbeats: NodeJS.Timeout | undefined;

  before(async () => {
    await receiver.listen();
    // groupWait 2 s: the sampler reports every 0.5 s, so all 30 deaths fall into the first flush or two.
    const config = alertConfig(
      dir,
      { receivers: [{ url: receiver.url('/am') }], groupWaitMs: 2_000, groupIntervalMs: 2_000 },
      { staleAfterMs: 30_000 },
    );
    monitor = await startMonitor(dir, ['--config', config]);
  });
  after(async () => {
    clearInterval(heartbeats);
    conn?.destroy();
    for (const s of sleepers) if (s.exitCode === null && s.signalCode === null) s.kill('SIGKILL');
    if (monitor) await stopMonitor(monitor);
    await receiver.close();
    dir.remove();
  });

  it('groups 30 deaths into at most 3 notifications listing all of them', async () => {
    for (let i = 0; i < BOTS; i++) sleepers.push(spawn('sleep', ['600'], { stdio: 'ignore' }));
    const channels = sleepers.map((_, i) => `fleet_${i}`);
    conn = net.connect(monitor.socket);
    await new Promise((resolve) => conn!.once('connect', resolve));
    conn.write(sleepers.map((s, i) => `${line({ type: 'register', channel: channels[i], pid: s.pid })}\n`).join(''));
    heartbeats = setInterval(
      () =>
        conn?.write(
          sleepers.map((s, i) => `${line({ type: 'heartbeat', channel: channels[i], pid: s.pid })}\n`).join(''),
        ),
      500,
    );
    await waitFor(
      '30 bots online',
      async () => (await status(monitor)).filter((b) => b.status === 'online').length === BOTS,
    );
    for (const s of sleepers) s.kill('SIGKILL');
    await waitFor(
      'all 30 reported dead',
      async () => (await status(monitor)).filter((b) => b.status === 'dead').length === BOTS,
      30_000,
    );
    await waitFor('30 alerts notified', () => receiver.seen('/am').flatMap((n) => n.alerts).length >= BOTS, 30_000);
    await sleep(3_000);
    const seen = receiver.seen('/am');
    assert.ok(seen.length >= 1 && seen.length <= 3, `${seen.length} notifications`);
    const listed = seen.flatMap((n) => n.alerts);
    assert.ok(
      listed.every((a) => a.alertname === 'BotDead' && a.status === 'firing' && a.reason === 'process_exited'),
      JSON.stringify(listed),
    );
    assert.deepEqual(new Set(listed.map((a) => a.channel)), new Set(channels), 'every dead bot listed');
    assert.equal(listed.length, BOTS, 'none listed twice');
  });
});
