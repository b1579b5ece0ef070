// When the writer falls behind (here: another process holds the write lock), ingest pauses
// reading instead of dropping rows at the queue bound, and the paused time is not counted against
// the bots' stale window.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { requestControl } from '../src/http/control-client.js';
import type { IngestCounters } from '../src/server/ingest-server.js';
import {
  flush,
  killStarted,
  line,
  query,
  sendOneShot,
  sleep,
  startMonitor,
  status,
  stopMonitor,
  TestDir,
  waitFor,
} from './helpers/monitor-process.js';

const FLEET = fileURLToPath(new URL('./fixtures/fleet.js', import.meta.url));
const MAX_PENDING = 2_000;

describe('backpressure', () => {
  const dir = new TestDir();
  after(async () => {
    await killStarted();
    dir.remove();
  });

  it('a locked writer pauses reading: no row dropped at the queue bound, no bot stale', async () => {
    const config = join(dir.path, 'small-queue.json');
    writeFileSync(config, JSON.stringify({ limits: { maxPendingPerLink: MAX_PENDING, idleTimeoutMs: 1_000 } }));
    // 4 s stale window: 13 of the fleet's 300 ms intervals (a starved fleet is not what this tests).
    const monitor = await startMonitor(dir, ['--config', config, '--stale-after', '4', '--sample-interval', '0.5']);
    const fleet = spawn(process.execPath, [FLEET, monitor.socket, 'bp', '20', '300'], { stdio: 'ignore' });
    try {
      await waitFor(
        '20 bots online',
        async () => (await status(monitor)).filter((b) => b.status === 'online').length === 20,
        30_000,
      );
      const locker = new Database(dir.db);
      const rows = 10 * MAX_PENDING;
      const writers: net.Socket[] = [];
      try {
        locker.exec('BEGIN IMMEDIATE');
        for (let k = 0; k < 4; k++) {
          const c = net.connect(monitor.socket);
          c.on('error', () => {});
          c.write(
            Array.from(
              { length: rows / 4 },
              (_, i) =>
                `${line({ type: 'llm_usage', channel: `bp_${k}`, model: 'gpt-4o', feature: 'bp', tokens_in: i, tokens_out: 1 })}\n`,
            ).join(''),
          );
          writers.push(c);
        }
        await waitFor(
          'reading paused',
          async () =>
            (await requestControl<{ ingest: IngestCounters }>(monitor.control, 'GET', '/health')).ingest
              .backpressure_pauses >= 1,
        );
        // A one-shot client arriving now waits unread longer than idleTimeoutMs: not idle, not cut.
        await sendOneShot(monitor.socket, line({ type: 'register', channel: 'bp_oneshot', pid: process.pid }));
        await sleep(5_000); // the stimulus: the lock held longer than the stale window and the idle timeout
        const { ingest } = await requestControl<{ ingest: IngestCounters }>(monitor.control, 'GET', '/health');
        assert.equal(ingest.idle_timeouts, 0);
        assert.equal(ingest.dropped_overflow, 0);
      } finally {
        locker.exec('ROLLBACK');
        locker.close();
      }
      const landed = await waitFor(
        'every row landed',
        async () => {
          await flush(monitor);
          const [{ n }] = query<{ n: number }>(dir.db, "SELECT count(*) n FROM llm_usage WHERE feature = 'bp'");
          return n === rows && n;
        },
        60_000,
        250,
      );
      assert.equal(landed, rows);
      for (const c of writers) c.destroy();
      const { ingest } = await requestControl<{ ingest: IngestCounters }>(monitor.control, 'GET', '/health');
      assert.equal(ingest.dropped_overflow, 0);
      assert.ok(ingest.backpressure_ms > 0);
      assert.equal(
        (await status(monitor)).filter(
          (b) => b.status === 'online' && b.channel.startsWith('bp_') && b.channel !== 'bp_oneshot',
        ).length,
        20,
      );
      await waitFor('the one-shot register that waited is applied', async () =>
        (await status(monitor)).some((b) => b.channel === 'bp_oneshot' && b.status === 'online'),
      );
      assert.deepEqual(query(dir.db, "SELECT channel FROM bot_events WHERE to_status = 'stale'"), []);
    } finally {
      fleet.kill('SIGKILL');
      await new Promise((r) => fleet.once('exit', r));
      await stopMonitor(monitor);
    }
  });
});
