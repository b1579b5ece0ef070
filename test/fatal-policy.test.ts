// An error nobody handles on the main thread (here a promise rejection injected through the admin
// fault route) ends the monitor through its normal shutdown: a fatal log line, every received row
// flushed, exit code 1. A second fatal while that shutdown is stuck ends the process at once.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { requestControl } from '../src/http/control-client.js';
import type { IngestCounters } from '../src/server/ingest-server.js';
import {
  killStarted,
  line,
  query,
  sendLines,
  startMonitor,
  TestDir,
  TestDirs,
  waitFor,
  type MonitorProcess,
} from './helpers/monitor-process.js';

const ROWS = 200;

/** The writer commits only at shutdown (or after 10 min): rows in the database prove the shutdown flush. */
function configFile(dir: TestDir, extra: Record<string, unknown> = {}): string {
  const path = join(dir.path, 'config.json');
  writeFileSync(path, JSON.stringify({ writer: { flushIntervalMs: 600_000 }, ...extra }));
  return path;
}

async function sendUsage(monitor: MonitorProcess): Promise<void> {
  await sendLines(
    monitor.socket,
    Array.from({ length: ROWS }, (_, i) =>
      line({ type: 'llm_usage', channel: 'fatal_bot', model: 'gpt-4', feature: 'f', tokens_in: i, tokens_out: 1 }),
    ),
  );
  await waitFor(
    'rows accepted',
    async () =>
      (await requestControl<{ ingest: IngestCounters }>(monitor.control, 'GET', '/health')).ingest.accepted.llm_usage >=
      ROWS,
  );
}

const usageRows = (db: string) =>
  query<{ n: number }>(db, "SELECT count(*) n FROM llm_usage WHERE channel = 'fatal_bot'")[0].n;

describe('process-level fatal policy', () => {
  const dirs = new TestDirs();
  const newDir = () => dirs.create();
  after(async () => {
    await killStarted();
    dirs.removeAll();
  });

  it('an unhandled rejection logs fatal, flushes every received row and exits 1', async () => {
    const dir = newDir();
    const monitor = await startMonitor(dir, ['--enable-faults', '--config', configFile(dir)]);
    await sendUsage(monitor);
    assert.equal(usageRows(dir.db), 0, 'not committed yet: the writer waits for its (long) interval');
    await requestControl(monitor.admin, 'POST', '/fault/unhandled-rejection');
    assert.equal(await monitor.exited, 1, 'exit code');
    assert.match(monitor.output(), /"level":60,.*"kind":"unhandledRejection".*shutting down/, 'a fatal log line');
    assert.equal(usageRows(dir.db), ROWS, 'every row received before the fault is in the database');
  });

  it('a second fatal while the shutdown is stuck on a locked database ends the process at once', async () => {
    const dir = newDir();
    // Without the second fatal, this shutdown would wait up to a minute for the lock.
    const monitor = await startMonitor(dir, [
      '--enable-faults',
      '--config',
      configFile(dir, { supervisor: { shutdownMs: 60_000 } }),
    ]);
    const locker = new Database(dir.db);
    try {
      locker.exec('BEGIN IMMEDIATE');
      await sendUsage(monitor);
      await requestControl(monitor.admin, 'POST', '/fault/unhandled-rejection');
      await waitFor('first fatal logged', () => /shutting down \(flush/.test(monitor.output()));
      const second = Date.now();
      await requestControl(monitor.admin, 'POST', '/fault/unhandled-rejection').catch(() => {}); // it may exit before answering
      assert.equal(await monitor.exited, 1, 'exit code');
      // 15 s: far below the 60 s the stuck shutdown would take, with room for a loaded box.
      assert.ok(Date.now() - second < 15_000, `exited ${Date.now() - second} ms after the second fatal`);
      assert.match(monitor.output(), /"fatals":2.*exiting now/, 'the second fatal is logged');
    } finally {
      locker.exec('ROLLBACK');
      locker.close();
    }
  });
});
