// The monitor guarding itself, measured (docs/PERFORMANCE.md "Self-protection"):
//
//   node dist/bench/self-protection.js [--rows 50000] [--bots 1000]
//
// 1. Shutdown with the write lock held by another connection (default 20 s deadline): how long
//    SIGTERM takes to exit, how many rows went to the spool, how long the next start takes to
//    replay them, and whether each landed exactly once (distinct ids).
// 2. Heartbeat latency while stdout is a pipe nobody reads (a wedged journald), against stdout
//    going to /dev/null, under the same `kissmon loadtest`.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import Database from 'better-sqlite3';
import { controlSocketFor } from '../src/config.js';
import { requestControl } from '../src/http/control-client.js';
import { TestDir } from '../test/helpers/monitor-process.js';
import { waitFor } from '../test/helpers/wait.js';
import { CLI, runLoadtestCli } from './harness.js';

const args = process.argv.slice(2);
const argValue = (flag: string, fallback: number) => {
  const i = args.indexOf(flag);
  return i === -1 ? fallback : Number(args[i + 1]);
};
const ROWS = argValue('--rows', 50_000);
const BOTS = argValue('--bots', 1_000);

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/** `kissmon start`; stdout 'unread' is a pipe that is never read. */
async function start(
  dir: TestDir,
  stdout: 'unread' | 'ignore',
): Promise<{ child: ChildProcess; exit: Promise<{ code: number | null; signal: string | null }> }> {
  const child = spawn(process.execPath, [CLI, 'start', '--socket', dir.socket, '--db', dir.db, '--log-level', 'info'], {
    stdio: ['ignore', stdout === 'unread' ? 'pipe' : 'ignore', 'ignore'],
  });
  children.add(child);
  child.stdout?.pause();
  const exit = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    }),
  );
  await waitFor(
    'the monitor to answer',
    () => requestControl(controlSocketFor(dir.socket), 'GET', '/status', 1_000).then(() => true),
    30_000,
    100,
  );
  return { child, exit };
}

async function shutdownWithLockHeld(): Promise<Record<string, unknown>> {
  const dir = new TestDir();
  try {
    let monitor = await start(dir, 'ignore');
    const lock = new Database(dir.db);
    lock.exec('BEGIN IMMEDIATE');
    const lines = Array.from(
      { length: ROWS },
      (_, i) =>
        `${JSON.stringify({ type: 'llm_usage', id: `bench-${i}`, channel: 'bench', model: 'gpt-4o', feature: 'shutdown', tokens_in: i, tokens_out: 1 })}\n`,
    ).join('');
    await new Promise<void>((resolve, reject) => {
      const socket = net.connect(dir.socket, () => socket.end(lines, resolve));
      socket.once('error', reject);
    });
    await waitFor(
      'every line read',
      async () =>
        (
          await requestControl<{ ingest: { accepted: { llm_usage: number } } }>(
            controlSocketFor(dir.socket),
            'GET',
            '/health',
          )
        ).ingest.accepted.llm_usage >= ROWS,
      60_000,
      100,
    );
    const stopAt = performance.now();
    monitor.child.kill('SIGTERM');
    const exit = await monitor.exit;
    const stopMs = Math.round(performance.now() - stopAt);
    const spoolPath = `${dir.db}.spool`;
    const spooledLines = existsSync(spoolPath) ? readFileSync(spoolPath, 'utf8').split('\n').filter(Boolean).length : 0;
    lock.exec('ROLLBACK');
    lock.close();
    const restartAt = performance.now();
    monitor = await start(dir, 'ignore');
    const db = new Database(dir.db, { readonly: true });
    const count = db.prepare(
      "SELECT count(*) AS n, count(DISTINCT id) AS ids FROM llm_usage WHERE feature = 'shutdown'",
    );
    const stored = await waitFor(
      'the spool replayed',
      () => {
        const row = count.get() as { n: number; ids: number };
        return row.n >= ROWS && row;
      },
      120_000,
      50,
    );
    const replayMs = Math.round(performance.now() - restartAt);
    db.close();
    monitor.child.kill('SIGTERM');
    await monitor.exit;
    return {
      rows: ROWS,
      exit_code: exit.code,
      exit_signal: exit.signal,
      stop_ms: stopMs,
      spooled_lines: spooledLines,
      restart_to_all_stored_ms: replayMs,
      stored: stored.n,
      distinct_ids: stored.ids,
    };
  } finally {
    dir.remove();
  }
}

async function heartbeatsWith(stdout: 'unread' | 'ignore'): Promise<Record<string, unknown>> {
  const dir = new TestDir();
  try {
    const monitor = await start(dir, stdout);
    const { report, command } = await runLoadtestCli([
      '--socket',
      dir.socket,
      '--db',
      dir.db,
      '--bots',
      String(BOTS),
      '--duration',
      '15',
      '--heartbeat-interval',
      '1',
      '--llm-rate',
      '500',
    ]);
    const health = await requestControl<{ log: { lines_dropped: number } }>(
      controlSocketFor(dir.socket),
      'GET',
      '/health',
    );
    monitor.child.kill('SIGTERM');
    const exit = await monitor.exit;
    return {
      stdout: stdout === 'unread' ? 'a pipe nobody reads' : '/dev/null',
      command,
      heartbeat_p50_ms: report.latency_ms.p50,
      heartbeat_p99_ms: report.latency_ms.p99,
      lost: report.lost,
      false_stale: report.false_stale,
      log_lines_dropped: health.log.lines_dropped,
      exit_code_after_sigterm: exit.code,
    };
  } finally {
    dir.remove();
  }
}

const results = {
  shutdown_with_lock_held: await shutdownWithLockHeld(),
  heartbeats_stdout_wedged: await heartbeatsWith('unread'),
  heartbeats_stdout_dev_null: await heartbeatsWith('ignore'),
};
process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
