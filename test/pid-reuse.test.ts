// Across a monitor restart a bot's pid may have changed hands. The registry rebuilds from
// bot_status, which holds each bot's process start time: a live bot whose pid is gone is dead
// (process_exited), one whose pid now belongs to a process with another start time is dead
// (pid_reused), before the sampler could record that process's CPU/RSS under the bot's name.
//
// How the reuse is made: pids cannot be chosen, so while the monitor is down the test kills the
// bot and writes the pid of another real process (a child started for this) into the bot's
// bot_status row, keeping the bot's persisted start time. That is exactly what the monitor finds
// after a real reuse: the row's pid alive, with a start time other than the registered one.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { readProcStat } from '../src/proc.js';
import {
  botStatus,
  flush,
  killStarted,
  query,
  startBot,
  startMonitor,
  startProcess,
  status,
  stopMonitor,
  TestDir,
  waitFor,
  type MonitorProcess,
} from './helpers/monitor-process.js';

const startTimeOf = (pid: number) => (readProcStat(pid) as { startTime: number }).startTime;

describe('bot identity across a monitor restart', () => {
  const dir = new TestDir();
  let monitor: MonitorProcess | null = null;
  after(async () => {
    await killStarted();
    if (monitor) await stopMonitor(monitor);
    dir.remove();
  });

  it('a pid gone is dead (process_exited), a pid now another process is dead (pid_reused) and never sampled', async () => {
    const args = ['--sample-interval', '0.3', '--stale-after', '60'];
    monitor = await startMonitor(dir, args);
    const kept = startBot(monitor.socket, 'id_kept', 200);
    const gone = startBot(monitor.socket, 'id_gone', 200);
    const reused = startBot(monitor.socket, 'id_reused', 200);
    await waitFor('three bots online with their start time', async () => {
      const bots = (await status(monitor!)).filter((b) => b.channel.startsWith('id_'));
      return bots.length === 3 && bots.every((b) => b.status === 'online' && b.start_time !== null);
    });
    await flush(monitor);
    // Persisted: the start time /proc gives for each bot's process.
    for (const bot of [kept, gone, reused]) {
      const [row] = query<{ start_time: number }>(dir.db, 'SELECT start_time FROM bot_status WHERE pid = ?', bot.pid);
      assert.equal(row.start_time, startTimeOf(bot.pid));
    }
    assert.equal(await stopMonitor(monitor), 0);
    monitor = null;

    // While the monitor is down: id_gone's process ends; id_reused's ends and its pid "goes" to another process.
    for (const bot of [gone, reused]) {
      bot.child.kill('SIGKILL');
      await bot.exited;
    }
    const other = startProcess(['-e', 'setInterval(() => {}, 1000)']);
    const db = new Database(dir.db);
    try {
      db.prepare("UPDATE bot_status SET pid = ? WHERE channel = 'id_reused'").run(other.pid);
    } finally {
      db.close();
    }
    assert.notEqual(
      startTimeOf(other.pid),
      query<{ start_time: number }>(dir.db, "SELECT start_time FROM bot_status WHERE channel = 'id_reused'")[0]
        .start_time,
    );

    const restartedAt = new Date().toISOString();
    monitor = await startMonitor(dir, args);
    await waitFor(
      'id_gone and id_reused dead',
      async () =>
        (await botStatus(monitor!, 'id_gone'))?.status === 'dead' &&
        (await botStatus(monitor!, 'id_reused'))?.status === 'dead',
    );
    assert.equal((await botStatus(monitor, 'id_kept'))?.status, 'online');
    // The sampler runs: id_kept (same process, same start time) gets new rows. Two rows: the
    // first round after a watch is a baseline only, so by then every watched pid was judged.
    await waitFor(
      'id_kept sampled twice after the restart',
      async () => {
        await flush(monitor!);
        return query(dir.db, "SELECT 1 FROM bot_metrics WHERE channel = 'id_kept' AND ts > ?", restartedAt).length >= 2;
      },
      15_000,
      200,
    );
    assert.deepEqual(
      query(dir.db, "SELECT ts FROM bot_metrics WHERE channel IN ('id_gone', 'id_reused') AND ts > ?", restartedAt),
      [],
      'no sample recorded under a dead bot',
    );
    assert.deepEqual(
      query(dir.db, 'SELECT ts FROM bot_metrics WHERE pid = ?', other.pid),
      [],
      "the other process's CPU/RSS is not recorded",
    );
    const events = query<{ channel: string; from_status: string; to_status: string; reason: string; pid: number }>(
      dir.db,
      "SELECT channel, pid, from_status, to_status, reason FROM bot_events WHERE channel IN ('id_gone', 'id_reused') AND ts > ? ORDER BY channel",
      restartedAt,
    );
    assert.deepEqual(events, [
      { channel: 'id_gone', pid: gone.pid, from_status: 'online', to_status: 'dead', reason: 'process_exited' },
      { channel: 'id_reused', pid: other.pid, from_status: 'online', to_status: 'dead', reason: 'pid_reused' },
    ]);
    assert.match(monitor.output(), /"died":2/);
  });
});
