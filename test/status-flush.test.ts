// The registry's periodic bot_status flush (heartbeat-only changes, every 5 s, written a slice per
// event-loop turn): every heartbeating bot's row gets its heartbeat, across more bots than one
// slice holds, without POST /flush; and a channel that began a new life since its last heartbeat
// keeps the new life's row (the old life's pending heartbeat must not be written over it).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import {
  killStarted,
  line,
  query,
  sendLines,
  sleep,
  startMonitor,
  status,
  stopMonitor,
  TestDir,
  waitFor,
  type MonitorProcess,
} from './helpers/monitor-process.js';

const BOTS = 1_200; // more than two slices of STATUS_SLICE (500)
const CONNECTIONS = 4;

describe('bot_status flush', () => {
  const dir = new TestDir();
  let monitor: MonitorProcess;
  const pid = process.pid; // a live pid: this test process stands in for every bot

  before(async () => {
    monitor = await startMonitor(dir, ['--stale-after', '60']);
  });
  after(async () => {
    if (monitor) await stopMonitor(monitor);
    await killStarted();
    dir.remove();
  });

  /** The same message for every bot, over CONNECTIONS connections. */
  const toAll = (type: 'register' | 'heartbeat') =>
    Promise.all(
      Array.from({ length: CONNECTIONS }, (_, c) =>
        sendLines(
          monitor.socket,
          Array.from({ length: BOTS / CONNECTIONS }, (_, i) =>
            line({ type, channel: `flush_${c * (BOTS / CONNECTIONS) + i}`, pid }),
          ),
        ),
      ),
    );

  it('writes every heartbeating bot and keeps a new life over the old one', async () => {
    // A bot with a pending heartbeat, then registered again by a process that has already exited.
    await sendLines(monitor.socket, [line({ type: 'register', channel: 'reborn', pid })]);
    await waitFor('reborn online', async () => (await status(monitor)).some((b) => b.channel === 'reborn'));
    await sleep(20);
    await sendLines(monitor.socket, [line({ type: 'heartbeat', channel: 'reborn', pid })]);
    const gone = spawnSync(process.execPath, ['-e', '0']).pid;
    await waitFor('reborn heartbeat applied', async () => {
      const bot = (await status(monitor)).find((b) => b.channel === 'reborn')!;
      return bot.last_heartbeat! > bot.registered_at;
    });
    await sendLines(monitor.socket, [line({ type: 'register', channel: 'reborn', pid: gone })]);

    await toAll('register');
    await waitFor(
      `${BOTS} bots online`,
      async () =>
        (await status(monitor)).filter((b) => b.channel.startsWith('flush_') && b.status === 'online').length === BOTS,
      60_000,
    );
    await sleep(20); // a later millisecond for the heartbeats
    await toAll('heartbeat');
    const heartbeated = `SELECT count(*) AS n FROM bot_status WHERE channel LIKE 'flush\\_%' ESCAPE '\\' AND last_heartbeat > registered_at`;
    // No POST /flush: the periodic flush (every 5 s) writes them, a slice at a time.
    await waitFor(
      `all ${BOTS} heartbeats in bot_status`,
      () => query<{ n: number }>(monitor.db, heartbeated)[0].n === BOTS,
      30_000,
      200,
    );
    const [reborn] = query<{ pid: number; status: string }>(
      monitor.db,
      "SELECT pid, status FROM bot_status WHERE channel = 'reborn'",
    );
    assert.deepEqual(reborn, { pid: gone, status: 'dead' }, 'the old life was written over the new one');
  });
});
