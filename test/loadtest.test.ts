// `kissmon loadtest` end to end, through the real CLI against real monitors: a small mixed fleet
// passes (lost 0, false_stale 0, exit 0) with only the socket given (the database is the one the
// monitor names in GET /settings), and a monitor whose writer silently drops rows fails it
// (lost > 0, non-zero exit) — so the numbers the tool reports cannot be vacuous.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { requestControl } from '../src/http/control-client.js';
import type { MonitorSettings } from '../src/http/settings-routes.js';
import { after, before, describe, it } from 'node:test';
import type { LoadtestReport } from '../src/loadtest/run.js';
import {
  CLI,
  killStarted,
  runKissmon,
  startMonitor,
  stopMonitor,
  TestDir,
  type MonitorProcess,
} from './helpers/monitor-process.js';

const runs = new Set<ChildProcess>();

/**
 * Runs `kissmon loadtest … --json` (by default with the monitor's socket as the only path, from a
 * directory without a database in it); resolves with its exit code, parsed report and stderr.
 */
function loadtest(
  m: MonitorProcess,
  args: string[],
  paths = ['--socket', m.socket],
  cwd?: string,
): Promise<{ code: number | null; report: LoadtestReport; stderr: string }> {
  const child = spawn(process.execPath, [CLI, 'loadtest', ...paths, '--json', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd,
  });
  runs.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => {
      runs.delete(child);
      try {
        resolve({ code, report: JSON.parse(stdout) as LoadtestReport, stderr });
      } catch {
        reject(new Error(`loadtest exited ${code} without a JSON report:\n${stdout}\n${stderr}`));
      }
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('kissmon loadtest', () => {
  const healthyDir = new TestDir();
  const faultyDir = new TestDir();
  let healthy: MonitorProcess;
  let faulty: MonitorProcess;

  before(async () => {
    // A short stale window (yet eight heartbeat intervals: a generator starved by a loaded box does
    // not trip it) and fast sampling: a registry that lost heartbeats, or a sampler that took the
    // bot processes for dead, would show up within the 8 s run.
    [healthy, faulty] = await Promise.all([
      startMonitor(healthyDir, ['--stale-after', '4', '--sample-interval', '1']),
      startMonitor(faultyDir, ['--enable-faults', '--fault-writer-drop', '0.2']),
    ]);
  });
  after(async () => {
    for (const child of runs) {
      try {
        process.kill(child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await killStarted();
    await Promise.all([healthy && stopMonitor(healthy), faulty && stopMonitor(faulty)]);
    healthyDir.remove();
    faultyDir.remove();
  });

  it('200 bots, mixed persistent and one-shot, 3 processes, no --db: nothing lost in the database the monitor names, nobody falsely stale, exit 0', async () => {
    // From a directory where the client's default (./kissbot_monitor.db) does not exist: only the
    // monitor's answer can lead the loadtest to its database.
    const cwd = healthyDir.path;
    assert.equal(existsSync(join(cwd, 'kissbot_monitor.db')), false);
    const { code, report, stderr } = await loadtest(
      healthy,
      [
        '--bots',
        '200',
        '--duration',
        '8',
        '--processes',
        '3',
        '--mode',
        'mixed',
        '--heartbeat-interval',
        '0.5',
        '--llm-rate',
        '300',
      ],
      undefined,
      cwd,
    );
    assert.equal(code, 0, `${JSON.stringify(report.problems)}\n${stderr}`);
    assert.equal(report.ok, true);
    assert.equal(report.bots, 200);
    assert.equal(report.bots_registered, 200);
    assert.equal(report.lost, 0);
    assert.equal(report.false_stale, 0);
    assert.ok(report.llm_rows_expected >= 1_000, `only ${report.llm_rows_expected} llm_usage rows written`);
    assert.equal(report.llm_rows_landed, report.llm_rows_expected);
    // Counted here too, in the file the monitor was started with.
    const db = new BetterSqlite3(healthy.db, { readonly: true });
    try {
      const ours = db
        .prepare('SELECT count(*) AS n FROM llm_usage WHERE channel >= ? AND channel < ?')
        .get(`${report.prefix}_`, `${report.prefix}\``) as { n: number };
      assert.equal(ours.n, report.llm_rows_landed);
    } finally {
      db.close();
    }
    assert.ok(report.oneshot_connections > 0, 'mixed mode used one-shot connections');
    assert.ok(report.latency_ms.count >= 1_000, `latency from ${report.latency_ms.count} heartbeats`);
    // Half the stale window: slower heartbeats would start to cost false stales; a loaded box's
    // scheduling delays stay far below it.
    assert.ok(report.latency_ms.p99 < 2_000, `heartbeat p99 ${report.latency_ms.p99} ms (bound 2000 ms)`);
    assert.equal(report.monitor.pid, healthy.pid);
    assert.ok(report.monitor.rss_mb > 0 && report.monitor.cpu_pct >= 0);
    assert.equal(report.generator.pids.length, 3);
    for (const pid of report.generator.pids) assert.equal(alive(pid), false, `bot process ${pid} was ended`);
  });

  it("GET /settings names the monitor's database and limits; the loadtest refuses what they rule out, and --db overrides", async () => {
    const settings = await requestControl<MonitorSettings>(healthy.control, 'GET', '/settings');
    assert.equal(settings.db, healthy.db);
    assert.equal(settings.socket, healthy.socket);
    assert.equal(settings.pid, healthy.pid);
    assert.equal(settings.auth_required, false);
    assert.equal(settings.stale_after_ms, 4_000);
    assert.equal(settings.sample_interval_ms, 1_000);
    // Refused in preflight (exit 2), before any bot process starts: 4 s ±10 % reaches the 4 s window.
    const stale = await runKissmon([
      'loadtest',
      '--socket',
      healthy.socket,
      '--bots',
      '5',
      '--duration',
      '1',
      '--heartbeat-interval',
      '4',
    ]);
    assert.equal(stale.code, 2, stale.stderr);
    assert.match(stale.stderr, /stale window \(4 s, staleAfterMs\)/);
    // --db names another file: it is the one looked for, whatever the monitor says.
    const other = join(healthyDir.path, 'other.db');
    const overridden = await runKissmon([
      'loadtest',
      '--socket',
      healthy.socket,
      '--db',
      other,
      '--bots',
      '5',
      '--duration',
      '1',
    ]);
    assert.equal(overridden.code, 1, overridden.stderr);
    assert.ok(overridden.stderr.includes(`no database at ${other}`), overridden.stderr);
  });

  it('detects loss: a monitor whose writer drops 20 % of llm_usage rows fails the run (paths from --config)', async () => {
    // The monitor's socket and database named only in a config file, as `kissmon start` reads it.
    const config = join(faultyDir.path, 'loadtest.json');
    writeFileSync(config, JSON.stringify({ socketPath: faulty.socket, dbPath: faulty.db }));
    const { code, report } = await loadtest(
      faulty,
      ['--bots', '50', '--duration', '2', '--heartbeat-interval', '1', '--llm-rate', '500'],
      ['--config', config],
    );
    assert.equal(report.ok, false);
    assert.ok(report.lost > 0, `lost ${report.lost}`);
    assert.ok(
      report.lost < report.llm_rows_expected / 2,
      `lost ${report.lost} of ${report.llm_rows_expected}: about a fifth, not everything`,
    );
    assert.equal(report.llm_rows_landed + report.lost, report.llm_rows_expected);
    assert.match(report.problems.join('\n'), /never landed/);
    assert.equal(code, 3);
  });
});
