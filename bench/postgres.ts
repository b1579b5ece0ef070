// Bench section `postgres`: end-to-end llm_usage rows/s into PostgreSQL through the real monitor
// (bot processes → Unix socket → `kissmon start --db postgres://…` → rows visible in PostgreSQL)
// beside a raw single-thread `pg` baseline (bench/raw-pg-baseline.ts: bare socket → JSON.parse →
// batched unnest INSERT) in the same run. Rounds alternate baseline, monitor, baseline, monitor…,
// each on a fresh database that the monitor's own migrations created, so both write the same
// (partitioned) table and neither inherits the other's bloat or cache.
//
//   node dist/bench/postgres.js [--rows N] [--reps N] [--write]
//
// --write puts the section into docs/PERFORMANCE.md in place ("## PostgreSQL"); without it the
// section is printed. The server is the tests' (test/helpers/backends.ts: KISSMON_TEST_PG, default
// postgres://postgres@127.0.0.1:5432/test); the bench creates and drops its own databases there.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pg from 'pg';
import { Fleet } from '../src/loadtest/fleet.js';
import { TestDir } from '../test/helpers/monitor-process.js';
import { sleep } from '../test/helpers/wait.js';
import { requestControl } from '../src/http/control-client.js';
import { TestDatabase } from '../test/helpers/postgres.js';
import { openPostgresWrite } from '../src/db/backend.js';
import { CLOCK_TICKS_PER_S, readProcStat } from '../src/proc.js';
import { cpuSnapshot, killAll, otherWorkPct, procStats, startMonitor, type Server } from './harness.js';

const BASELINE = fileURLToPath(new URL('./raw-pg-baseline.js', import.meta.url));
const DOC = fileURLToPath(new URL('../../docs/PERFORMANCE.md', import.meta.url));
const HOST = 'bench';

export interface PostgresRun {
  server: 'monitor' | 'raw pg baseline';
  rows_written: number;
  rows_landed: number;
  seconds: number;
  rows_per_s: number;
  server_cpu_pct: number;
  server_rss_peak_mb: number;
  /** CPU of the PostgreSQL backends serving this round's database (the server's and the row counter's), % of one core. */
  postgres_cpu_pct: number;
  /** Monitor only: the writer's transactions during the round and rows per transaction. */
  commits: number | null;
  rows_per_commit: number | null;
  /** CPU of everything else that is not ours (other sessions, PostgreSQL's background processes), % of one core. */
  other_work_pct: number;
}

export interface PostgresBenchResult {
  rows: number;
  bots: number;
  reps: number;
  baseline: PostgresRun[];
  monitor: PostgresRun[];
  /** Per rep, monitor ÷ the baseline run just before it; the median is the headline. */
  ratios: number[];
  ratio_median: number | null;
  baseline_median: number;
  monitor_median: number | null;
  /** Why the monitor rounds did not run (its PostgreSQL writer missing or failing), else null. */
  monitor_error: string | null;
  load_average: string;
  command: string;
  date: string;
  server_version: string;
}

/**
 * llm_usage rows so far. `count(*)` scans the table (~45 ms at 400k rows here), so it is polled
 * often only near the end: the interval is a quarter of the time the rows still missing should
 * take at the rate seen so far, between 10 and 500 ms. Both servers are polled the same way.
 */
class PgRowCounter {
  readonly #client: pg.Client;
  constructor(url: string) {
    this.#client = new pg.Client({ connectionString: url });
  }
  async open(): Promise<void> {
    await this.#client.connect();
  }
  async count(): Promise<number> {
    const { rows } = await this.#client.query<{ n: string }>('SELECT count(*) AS n FROM llm_usage');
    return Number(rows[0].n);
  }
  async close(): Promise<void> {
    await this.#client.end();
  }
}

async function startPgBaseline(dir: TestDir, url: string): Promise<Server> {
  const child = spawn(process.execPath, [BASELINE, dir.socket, url, HOST], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (c: Buffer) => c.toString().includes('ready') && resolve());
    void exited.then((code) => reject(new Error(`raw pg baseline exited with ${code}`)));
  });
  return {
    name: 'raw pg baseline',
    pid: child.pid!,
    socket: dir.socket,
    db: url,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** The db-writer's commit count (monitor only), from its health detail. */
async function writerCommits(server: Server): Promise<number | null> {
  if (!('control' in server)) return null;
  const health = await requestControl<{ actors: { actor: string; detail: { commits?: number } }[] }>(
    (server as { control: string }).control,
    'GET',
    '/health',
  );
  return health.actors.find((a) => a.actor === 'db')?.detail.commits ?? null;
}

/** CPU ticks (user + system) of the PostgreSQL backends connected to `db`, by pid. */
export async function backendTicks(db: TestDatabase): Promise<Map<number, number>> {
  const rows = await db.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = current_database()');
  const ticks = new Map<number, number>();
  for (const { pid } of rows) {
    const stat = readProcStat(pid);
    if (typeof stat === 'object') ticks.set(pid, stat.utimeTicks + stat.stimeTicks);
  }
  return ticks;
}

/** One round: fresh database and server, the fleet connects, one burst of `rows`, timed until the last row is visible. */
async function round(kind: 'monitor' | 'baseline', rows: number, bots: number): Promise<PostgresRun> {
  const dir = new TestDir();
  let scratch: TestDatabase | null = null;
  let server: Server | null = null;
  let fleet: Fleet | null = null;
  let counter: PgRowCounter | null = null;
  try {
    scratch = await new TestDatabase().create();
    // The monitor's own migrations, so the baseline writes the same partitioned table.
    await (await openPostgresWrite(scratch.url)).db.destroy();
    // With PostgreSQL the spool and the local alert store default to the working directory: keep them in the temp dir.
    const config = join(dir.path, 'config.json');
    writeFileSync(config, JSON.stringify({ spool: { path: join(dir.path, 'm.spool') } }));
    server =
      kind === 'monitor'
        ? await startMonitor(dir, ['--db', scratch.url, '--host-name', HOST, '--config', config])
        : await startPgBaseline(dir, scratch.url);
    fleet = await Fleet.start({
      socket: server.socket,
      prefix: 'bench',
      bots,
      mode: 'persistent',
      processes: 2,
      heartbeatMs: 30_000,
    });
    if (!(await fleet.waitConnected(60_000))) throw new Error('postgres: the fleet did not connect within 60 s');
    await sleep(1_000); // registrations applied, connect burst over
    counter = new PgRowCounter(scratch.url);
    await counter.open();
    const before = await counter.count();
    const s0 = procStats(server.pid);
    const pg0 = await backendTicks(scratch);
    const c0 = await writerCommits(server);
    const g0 = fleet.counters();
    const cpu0 = cpuSnapshot();
    const t0 = performance.now();
    let burstOver = false;
    void fleet.burst(rows, 300_000).then(
      () => (burstOver = true),
      () => (burstOver = true),
    );
    let landed = 0;
    let lastChangeAt = t0;
    let rssPeak = s0.rssMb;
    for (;;) {
      const elapsed = performance.now() - t0;
      const rate = landed / Math.max(1, elapsed);
      const remainingMs = rate > 0 ? (rows - landed) / rate : 500;
      await sleep(Math.min(500, Math.max(10, remainingMs / 4)));
      const now = performance.now();
      const n = (await counter.count()) - before;
      if (n !== landed) {
        landed = n;
        lastChangeAt = now;
      }
      rssPeak = Math.max(rssPeak, procStats(server.pid).rssMb);
      if (landed >= rows) break;
      if (burstOver && now - lastChangeAt > 5_000) break; // nothing more is coming
      if (now - t0 > 300_000) throw new Error(`postgres: ${kind} did not finish within 300 s`);
    }
    const s1 = procStats(server.pid);
    const pg1 = await backendTicks(scratch);
    const c1 = await writerCommits(server);
    const commits = c0 === null || c1 === null ? null : c1 - c0;
    const other = otherWorkPct(cpu0, cpuSnapshot());
    const g1 = fleet.counters();
    const seconds = (lastChangeAt - t0) / 1000;
    // A backend that connected during the round spent all its ticks in it; one that left is lost (none should).
    let pgTicks = 0;
    for (const [pid, t] of pg1) pgTicks += t - (pg0.get(pid) ?? 0);
    const pgPct = Math.round((pgTicks / CLOCK_TICKS_PER_S / ((performance.now() - t0) / 1000)) * 100);
    return {
      server: kind === 'monitor' ? 'monitor' : 'raw pg baseline',
      rows_written: g1.llm_written - g0.llm_written,
      rows_landed: landed,
      seconds: Math.round(seconds * 100) / 100,
      rows_per_s: Math.round(landed / seconds),
      server_cpu_pct: Math.round(((s1.cpuMs - s0.cpuMs) / (lastChangeAt - t0)) * 1000) / 10,
      server_rss_peak_mb: Math.max(rssPeak, s1.rssMb),
      postgres_cpu_pct: pgPct,
      commits,
      rows_per_commit: commits ? Math.round(landed / commits) : null,
      other_work_pct: Math.max(0, other - pgPct),
    };
  } finally {
    await counter?.close().catch(() => {});
    await fleet?.end(5_000);
    await server?.stop();
    await scratch?.drop();
    dir.remove();
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function benchPostgres(
  options: { rows?: number; reps?: number; bots?: number; log?: (msg: string) => void } = {},
): Promise<PostgresBenchResult> {
  const rows = options.rows ?? 400_000;
  const reps = options.reps ?? 3;
  const bots = options.bots ?? 1_000;
  const log = options.log ?? ((msg: string) => process.stderr.write(`[bench postgres] ${msg}\n`));
  const fmt = (n: number) => n.toLocaleString('en');
  const probe = await new TestDatabase().create();
  const serverVersion = (await probe.query<{ v: string }>("SELECT current_setting('server_version') AS v"))[0].v;
  await probe.drop();
  const loadBefore = os.loadavg();
  const baseline: PostgresRun[] = [];
  const monitor: PostgresRun[] = [];
  let monitorError: string | null = null;
  for (let rep = 1; rep <= reps; rep++) {
    log(`raw pg baseline (${rep}/${reps}): ${fmt(rows)} rows from ${fmt(bots)} persistent bots`);
    baseline.push(await round('baseline', rows, bots));
    log(`  ${fmt(baseline.at(-1)!.rows_per_s)} rows/s`);
    if (monitorError) continue;
    log(`monitor (${rep}/${reps})`);
    try {
      monitor.push(await round('monitor', rows, bots));
      const m = monitor.at(-1)!;
      log(`  ${fmt(m.rows_per_s)} rows/s (${fmt(m.rows_landed)}/${fmt(m.rows_written)} landed)`);
    } catch (err) {
      monitorError = (err as Error).message;
      log(`  monitor failed: ${monitorError}`);
    }
  }
  const loadAfter = os.loadavg();
  const ratios = monitor.map((m, i) => m.rows_per_s / baseline[i].rows_per_s);
  return {
    rows,
    bots,
    reps,
    baseline,
    monitor,
    ratios,
    ratio_median: ratios.length ? median(ratios) : null,
    baseline_median: median(baseline.map((b) => b.rows_per_s)),
    monitor_median: monitor.length ? median(monitor.map((m) => m.rows_per_s)) : null,
    monitor_error: monitorError,
    load_average: `${loadBefore.map((l) => l.toFixed(1)).join(' ')} before, ${loadAfter.map((l) => l.toFixed(1)).join(' ')} after`,
    command: `node dist/bench/postgres.js --rows ${rows} --reps ${reps}`,
    date: new Date().toISOString().slice(0, 16).replace('T', ' '),
    server_version: serverVersion,
  };
}

/** CPU time of the server and its PostgreSQL backends per row landed, µs: what a row costs, whatever else runs. */
const cpuPerRow = (x: PostgresRun) => ((x.server_cpu_pct + x.postgres_cpu_pct) / 100 / x.rows_per_s) * 1e6;

export function formatPostgresBench(r: PostgresBenchResult): string {
  const f = (n: number) => n.toLocaleString('en', { maximumFractionDigits: 1 });
  const verdict = (ok: boolean) => (ok ? '**met**' : '**missed**');
  const out = [
    '## PostgreSQL',
    '',
    `End-to-end llm_usage rows/s into PostgreSQL ${r.server_version} on this machine (127.0.0.1:5432, the server's default settings):`,
    `${f(r.bots)} persistent bots in 2 bot processes send one burst of ${f(r.rows)} llm_usage lines as fast as the server reads`,
    'them, timed from the burst command until the last row is visible in PostgreSQL (`count(*)` polled on its own connection,',
    'more often as the end nears). Rounds alternate baseline and monitor, each on a fresh database created by the',
    "monitor's migrations (the same partitioned `llm_usage`), dropped afterwards.",
    '',
    '- **monitor**: `kissmon start --db postgres://… --host-name bench` (defaults otherwise): main thread frames, parses,',
    '  validates and batches; the db-writer actor commits up to `writer.maxRowsPerTransaction` rows per transaction on its',
    '  pooled connection (one `unnest` INSERT per table, the exactly-once cursor in the same transaction).',
    '- **raw pg baseline** (`bench/raw-pg-baseline.ts`): one thread, bare `net` server → split on `\\n` → `JSON.parse` →',
    '  one `pg` connection, `INSERT … SELECT * FROM unnest($1::text[], …)` per batch (up to 10,000 rows; the next batch',
    '  collects while one is in flight; a 50 ms timer for the tail). No validation, auth, registry, rollups or actors.',
    '',
    '| target | measured | |',
    '| --- | --- | --- |',
    r.monitor_median === null
      ? `| monitor ≥ 50,000 rows/s into PostgreSQL | not measured: ${r.monitor_error ?? 'no monitor round'} | |`
      : `| monitor ≥ 50,000 rows/s into PostgreSQL | ${f(r.monitor_median)}/s (median) | ${verdict(r.monitor_median >= 50_000)} |`,
    r.ratio_median === null
      ? '| monitor ≥ 0.7× the raw pg baseline | not measured | |'
      : `| monitor ≥ 0.7× the raw pg baseline | ${r.ratio_median.toFixed(2)}× (median of ${r.ratios.map((x) => x.toFixed(2)).join(', ')}) | ${verdict(r.ratio_median >= 0.7)} |`,
    '',
    '| round | server | rows landed / written | time s | rows/s | server CPU % (of one core) | its PostgreSQL backends CPU % | CPU µs per row (server + backends) | server RSS peak MB | transactions (rows each) | other work % |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (let i = 0; i < r.reps; i++) {
    for (const x of [r.baseline[i], r.monitor[i]]) {
      if (!x) continue;
      out.push(
        `| ${i + 1} | ${x.server} | ${f(x.rows_landed)} / ${f(x.rows_written)} | ${x.seconds} | ${f(x.rows_per_s)} | ${x.server_cpu_pct} | ${x.postgres_cpu_pct} | ${cpuPerRow(x).toFixed(1)} | ${x.server_rss_peak_mb} | ${x.commits === null ? '-' : `${f(x.commits)} (${f(x.rows_per_commit ?? 0)})`} | ${x.other_work_pct} |`,
      );
    }
  }
  const medianCpu = (runs: PostgresRun[]) => (runs.length ? median(runs.map(cpuPerRow)) : null);
  const [b, m] = [medianCpu(r.baseline), medianCpu(r.monitor)];
  const other = median([...r.baseline, ...r.monitor].map((x) => x.other_work_pct));
  out.push(
    '',
    `A row cost ${b?.toFixed(1)} µs of CPU through the raw baseline${m === null ? '' : ` and ${m.toFixed(1)} µs through the monitor (median; server and its PostgreSQL backends together, the monitor's spread over its threads)`}.`,
    `Other processes used a median ${other} % of a core during the rounds${other >= 50 ? ", so the servers ran on what was left of the 2 cores: rows/s here is bounded by CPU, and the ratio of rows/s follows the ratio of CPU per row more than either pipeline's parallelism" : ''}.`,
    ...(b !== null && m !== null
      ? [
          `Per row the monitor spends ${(m / b).toFixed(1)}× the baseline's CPU (validation, the hop to the writer thread, the rollups and the cursor in each transaction).`,
        ]
      : []),
    '',
    `Measured ${r.date} UTC with \`${r.command}\`; load average (1/5/15 min) ${r.load_average} on ${os.cpus().length} cores —`,
    "the machine is shared with other sessions' builds and tests, and the PostgreSQL backends (their own column) compete",
    'with the server under test and the bot processes for the same 2 cores, so read the absolute numbers with that in',
    'mind; the ratio is taken between rounds run back to back. "other work" is CPU of processes that are neither the',
    "bench's nor this round's PostgreSQL backends (other sessions, PostgreSQL's background writer and WAL writer).",
    '',
  );
  return out.join('\n');
}

/** Replaces the "## PostgreSQL" section of docs/PERFORMANCE.md (up to the next "## "), or puts it before "## Findings". */
export function writeSection(text: string): void {
  const section = text.endsWith('\n\n') ? text : `${text.trimEnd()}\n\n`;
  const doc = readFileSync(DOC, 'utf8');
  const start = doc.indexOf('\n## PostgreSQL\n');
  let next: string;
  if (start !== -1) {
    const end = doc.indexOf('\n## ', start + 1);
    next = doc.slice(0, start + 1) + section + (end === -1 ? '' : doc.slice(end + 1));
  } else {
    const at = doc.indexOf('\n## Findings');
    next = at === -1 ? `${doc}\n${section}` : doc.slice(0, at + 1) + section + doc.slice(at + 1);
  }
  writeFileSync(DOC, next);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const arg = (flag: string) => {
    const i = process.argv.indexOf(flag);
    return i === -1 ? undefined : process.argv[i + 1];
  };
  const num = (flag: string) => (arg(flag) === undefined ? undefined : Number(arg(flag)));
  try {
    const result = await benchPostgres({ rows: num('--rows'), reps: num('--reps') });
    const section = formatPostgresBench(result);
    if (process.argv.includes('--write')) writeSection(section);
    process.stdout.write(`${section}\n${JSON.stringify(result)}\n`);
  } catch (err) {
    process.stderr.write(`bench postgres failed: ${(err as Error).stack ?? String(err)}\n`);
    killAll();
    process.exitCode = 1;
  }
}
