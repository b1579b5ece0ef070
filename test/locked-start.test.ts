// A database that is write-locked (or whose directory is missing) when the monitor starts is
// waited for, not fatal: the socket serves, the registry works, health says why the writer waits,
// rows are held (past writer.maxHeldRows, spooled) and land once the database can be written.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { requestControl } from '../src/http/control-client.js';
import type { HealthReport } from '../src/monitor.js';
import {
  botStatus,
  killStarted,
  line,
  lockDatabase,
  type MonitorProcess,
  query,
  sendLines,
  startBot,
  startMonitor,
  stopMonitor,
  TestDir,
  waitFor,
} from './helpers/monitor-process.js';

const usage = (i: number) =>
  line({
    type: 'llm_usage',
    id: `start-${i}`,
    channel: 'early',
    model: 'gpt-4o',
    feature: 'locked_start',
    tokens_in: i,
    tokens_out: 1,
  });

async function writerHealth(m: MonitorProcess) {
  const { actors } = await requestControl<{ actors: HealthReport }>(m.control, 'GET', '/health');
  return actors.find((a) => a.actor === 'db')!;
}

describe('database not writable at start-up', () => {
  const dirs: TestDir[] = [];
  after(async () => {
    await killStarted();
    for (const dir of dirs) dir.remove();
  });

  it(
    'write-locked before start: serves, says it waits, and commits every row once the lock is gone',
    { timeout: 120_000 },
    async () => {
      const dir = new TestDir();
      dirs.push(dir);
      const config = join(dir.path, 'config.json');
      // A small bound so part of the rows takes the spool path while the lock is held.
      writeFileSync(config, JSON.stringify({ writer: { maxHeldRows: 1_000 } }));
      const locker = lockDatabase(dir.db);
      let monitor: MonitorProcess;
      const rows = 3_000;
      try {
        monitor = await startMonitor(dir, ['--config', config]);
        const waiting = await writerHealth(monitor);
        assert.equal(waiting.detail.waiting, 'locked', JSON.stringify(waiting.detail));
        const bot = startBot(monitor.socket, 'locked_start_bot', 200);
        await waitFor(
          'bot online while the database is locked',
          async () => (await botStatus(monitor, 'locked_start_bot'))?.status === 'online',
        );
        await sendLines(
          monitor.socket,
          Array.from({ length: rows }, (_, i) => usage(i)),
        );
        const held = await waitFor('rows held or spooled', async () => {
          const h = await writerHealth(monitor);
          return h.queue_depth + Number(h.detail.rows_spooled) >= rows && h;
        });
        assert.ok(Number(held.detail.rows_spooled) > 0, 'past maxHeldRows rows were spooled');
        assert.ok(held.queue_depth <= 1_000, `held ${held.queue_depth} rows, bound 1000`);
        assert.match(monitor.output(), /database not writable yet/);
        process.kill(bot.pid, 'SIGKILL');
      } finally {
        locker.release();
      }
      await waitFor(
        'rows committed after the lock',
        () =>
          query<{ n: number }>(dir.db, "SELECT count(*) n FROM llm_usage WHERE feature = 'locked_start'")[0].n === rows,
        20_000,
      );
      const [stats] = query<{ n: number; ids: number }>(
        dir.db,
        "SELECT count(*) n, count(DISTINCT tokens_in) ids FROM llm_usage WHERE feature = 'locked_start'",
      );
      assert.deepEqual(stats, { n: rows, ids: rows });
      assert.equal(
        query(dir.db, "SELECT 1 FROM bot_status WHERE channel = 'locked_start_bot'").length,
        1,
        "the registry's rows landed too",
      );
      const after = await writerHealth(monitor!);
      assert.equal(after.detail.waiting, null);
      assert.equal(existsSync(`${dir.db}.spool`), false, 'spool replayed and removed');
      assert.equal(await stopMonitor(monitor!), 0);
    },
  );

  it('database directory missing at start: waits until it exists', { timeout: 60_000 }, async () => {
    const dir = new TestDir();
    dirs.push(dir);
    const dbDir = join(dir.path, 'state');
    const dbPath = join(dbDir, 'm.db');
    const monitor = await startMonitor(dir, ['--db', dbPath]);
    const waiting = await writerHealth(monitor);
    assert.equal(waiting.detail.waiting, 'cannot_open', JSON.stringify(waiting.detail));
    await sendLines(
      monitor.socket,
      Array.from({ length: 100 }, (_, i) => usage(i)),
    );
    await waitFor('rows held', async () => (await writerHealth(monitor)).queue_depth === 100);
    mkdirSync(dbDir);
    await waitFor(
      'rows committed once the directory exists',
      () => existsSync(dbPath) && query<{ n: number }>(dbPath, 'SELECT count(*) n FROM llm_usage')[0].n === 100,
      20_000,
    );
    assert.equal(await stopMonitor(monitor), 0);
  });
});
