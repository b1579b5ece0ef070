// SIGTERM while another connection holds the SQLite write lock (BEGIN IMMEDIATE): the monitor
// exits 0 within its shutdown deadline, the rows it could not commit are in the spool, and the
// next start replays them: every row exactly once, the spool gone. A second signal takes the
// fast path. A replay interrupted after its commit (spool left behind) inserts nothing twice.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readdirSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { requestControl } from '../src/http/control-client.js';
import type { HealthReport } from '../src/monitor.js';
import {
  killStarted,
  line,
  lockDatabase,
  type MonitorProcess,
  query,
  sendLines,
  startMonitor,
  stopMonitor,
  TestDir,
  waitFor,
} from './helpers/monitor-process.js';

const ROWS = 5_000;
// Half the rows carry an id, half do not: exactly-once must hold without ids too (batch cursors).
const usage = (i: number) =>
  line({
    type: 'llm_usage',
    ...(i % 2 === 0 && { id: `call-${i}` }),
    channel: `bot_${i % 10}`,
    model: 'gpt-4o',
    feature: 'spool',
    tokens_in: i,
    tokens_out: 1,
  });

async function health(m: MonitorProcess) {
  return requestControl<{ actors: HealthReport; ingest: { accepted: Record<string, number> } }>(
    m.control,
    'GET',
    '/health',
  );
}

/** Sends ROWS llm_usage lines over ten connections and waits until the monitor has read them all. */
async function sendRows(m: MonitorProcess): Promise<void> {
  await Promise.all(
    Array.from({ length: 10 }, (_, k) =>
      sendLines(
        m.socket,
        Array.from({ length: ROWS / 10 }, (_, j) => usage(j * 10 + k)),
      ),
    ),
  );
  await waitFor('all rows read', async () => (await health(m)).ingest.accepted.llm_usage === ROWS);
}

function spoolLines(path: string): number {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.length > 0).length;
}

function assertEveryRowOnce(dbPath: string): void {
  const [stats] = query<{ n: number; ids: number; contents: number }>(
    dbPath,
    "SELECT count(*) n, count(DISTINCT id) ids, count(DISTINCT channel || ':' || tokens_in) contents FROM llm_usage WHERE feature = 'spool'",
  );
  assert.deepEqual(stats, { n: ROWS, ids: ROWS / 2, contents: ROWS });
}

describe('shutdown with the database write-locked', () => {
  const dirs: TestDir[] = [];
  after(async () => {
    await killStarted();
    for (const dir of dirs) dir.remove();
  });

  it(
    'SIGTERM exits 0 within the deadline, spools the rows, and the next start replays each once',
    { timeout: 120_000 },
    async () => {
      const dir = new TestDir();
      dirs.push(dir);
      const deadlineMs = 4_000;
      const config = join(dir.path, 'config.json');
      writeFileSync(config, JSON.stringify({ shutdownDeadlineMs: deadlineMs }));
      const spool = `${dir.db}.spool`;
      const monitor = await startMonitor(dir, ['--config', config]);
      const locker = lockDatabase(dir.db);
      let replayCopy: string;
      try {
        await sendRows(monitor);
        const signalled = Date.now();
        monitor.child.kill('SIGTERM');
        const code = await monitor.exited;
        const stopMs = Date.now() - signalled;
        assert.equal(code, 0, monitor.output().slice(-3000));
        assert.equal(monitor.child.signalCode, null, 'exited, not killed by a signal (no SIGABRT)');
        // The deadline is the monitor's own promise; 3 s more covers process exit on a busy box.
        assert.ok(stopMs < deadlineMs + 3_000, `stopped after ${stopMs} ms (deadline ${deadlineMs} ms)`);
        assert.ok(
          existsSync(spool),
          `spool written (files: ${readdirSync(dir.path).join(', ')})\n${monitor.output().slice(-4000)}`,
        );
        assert.ok(spoolLines(spool) >= ROWS, `spool holds ${spoolLines(spool)} lines`);
        assert.equal(
          query<{ n: number }>(dir.db, 'SELECT count(*) n FROM llm_usage')[0].n,
          0,
          'nothing committed while locked',
        );
        assert.doesNotMatch(monitor.output(), /not everything could be flushed|rows_lost":[1-9]/);
        console.log(`# shutdown with a locked database: ${stopMs} ms, ${spoolLines(spool)} spool lines`);
        replayCopy = join(dir.path, 'spool.copy');
        copyFileSync(spool, replayCopy);
      } finally {
        locker.release();
      }

      const again = await startMonitor(dir, ['--config', config]);
      await waitFor('spool replayed', () => !existsSync(spool));
      assertEveryRowOnce(dir.db);
      const writer = (await health(again)).actors.find((a) => a.actor === 'db')!;
      assert.equal(writer.detail.rows_replayed, ROWS);
      assert.equal(await stopMonitor(again), 0);

      // A crash after the replay's commit but before the file was removed: the same spool is back,
      // with a line torn by the crash at its end. Nothing is inserted twice.
      copyFileSync(replayCopy, spool);
      appendFileSync(spool, '{"from":"ingest:torn","seq":99,"n":2,"row":{"t":"llm_u');
      const third = await startMonitor(dir, ['--config', config]);
      await waitFor('spool removed again', () => !existsSync(spool));
      assertEveryRowOnce(dir.db);
      const detail = (await health(third)).actors.find((a) => a.actor === 'db')!.detail;
      assert.equal(detail.rows_replayed, 0);
      assert.equal(detail.spool_skipped_lines, 1);
      assert.equal(await stopMonitor(third), 0);
    },
  );

  it('a second SIGTERM spools at once and exits, long before the deadline', { timeout: 120_000 }, async () => {
    const dir = new TestDir();
    dirs.push(dir);
    const config = join(dir.path, 'config.json');
    writeFileSync(config, JSON.stringify({ shutdownDeadlineMs: 60_000 }));
    const monitor = await startMonitor(dir, ['--config', config]);
    const locker = lockDatabase(dir.db);
    try {
      await sendRows(monitor);
      const signalled = Date.now();
      monitor.child.kill('SIGTERM');
      await waitFor('shutdown started', () => monitor.output().includes('shutting down'));
      monitor.child.kill('SIGTERM');
      assert.equal(await monitor.exited, 0, monitor.output().slice(-3000));
      const stopMs = Date.now() - signalled;
      // Without the fast path this would take the 60 s deadline.
      assert.ok(stopMs < 20_000, `stopped after ${stopMs} ms`);
      assert.match(monitor.output(), /second signal/);
      assert.ok(spoolLines(`${dir.db}.spool`) >= ROWS);
    } finally {
      locker.release();
    }
    const again = await startMonitor(dir, ['--config', config]);
    await waitFor('spool replayed', () => !existsSync(`${dir.db}.spool`));
    assertEveryRowOnce(dir.db);
    assert.equal(await stopMonitor(again), 0);
  });
});
