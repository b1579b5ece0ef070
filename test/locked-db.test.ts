// Another process holding the SQLite write lock (BEGIN IMMEDIATE) must cost no row and must not
// block the monitor: rows wait in memory and are committed once the lock is released.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { requestControl } from '../src/http/control-client.js';
import type { HealthReport } from '../src/monitor.js';
import {
  flush,
  killStarted,
  line,
  lockDatabase,
  query,
  startMonitor,
  status,
  stopMonitor,
  TestDir,
  waitFor,
} from './helpers/monitor-process.js';

describe('write-locked database', () => {
  const dir = new TestDir();
  after(async () => {
    await killStarted();
    dir.remove();
  });

  it('keeps every row while another connection holds BEGIN IMMEDIATE, then commits them all', async () => {
    const monitor = await startMonitor(dir);
    const locker = lockDatabase(dir.db);
    try {
      const rows = 10_000;
      await new Promise<void>((resolve, reject) => {
        const c = net.connect(monitor.socket, () =>
          c.end(
            Array.from(
              { length: rows },
              (_, i) =>
                `${line({ type: 'llm_usage', channel: 'locked', model: 'gpt-4', feature: 'lock', tokens_in: i, tokens_out: 0 })}\n`,
            ).join(''),
            resolve,
          ),
        );
        c.on('error', reject);
      });
      const writer = await waitFor(
        'busy retries counted',
        async () => {
          const { actors } = await requestControl<{ actors: HealthReport }>(monitor.control, 'GET', '/health');
          const db = actors.find((a) => a.actor === 'db')!;
          return Number(db.detail.busy_retries) > 0 && db;
        },
        30_000,
      );
      // The monitor keeps answering while its writer waits for the lock. A status call that
      // waited on the writer would wait as long as the lock is held (until this test ends it).
      const started = Date.now();
      await status(monitor);
      assert.ok(
        Date.now() - started < 10_000,
        `status answered in ${Date.now() - started} ms while the database is locked`,
      );
      assert.ok(writer.queue_depth > 0, `rows held while locked: ${writer.queue_depth}`);
      assert.equal(query<{ n: number }>(dir.db, 'SELECT count(*) n FROM llm_usage')[0].n, 0);
    } finally {
      locker.release();
    }
    await flush(monitor);
    assert.equal(query<{ n: number; s: number }>(dir.db, 'SELECT count(*) n FROM llm_usage')[0].n, 10_000);
    assert.equal(await stopMonitor(monitor), 0);
  });
});
