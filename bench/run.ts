// The benchmark driver: `npm run bench` measures everything side by side in one run on this
// machine and writes docs/PERFORMANCE.md (numbers, ratios, targets, the commands, machine, date).
//
// Every server under test (the monitor, the raw baseline) is a real child process; the load comes
// from separate bot processes (src/loadtest), so the server's CPU figures are its own. They all share
// the machine's cores, which the write-up says next to every number.
//
//   node dist/bench/run.js [--only throughput,latency,idle,sampler,alerts,dashboard,llm,postgres] [--profile DIR] [--no-write]
//     throughput only: [--case TEXT] [--reps N] [--no-overload] [--before-cli OTHER_DIST/src/cli.js]
//
// --profile runs every monitor under `node --cpu-prof` (one profile per thread, summarised per run);
// numbers from a profiled run are slower and are never written to the doc.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { requestControl } from '../src/http/control-client.js';
import { Fleet, type FleetMode } from '../src/loadtest/fleet.js';
import type { LoadtestReport } from '../src/loadtest/run.js';
import { TestDir } from '../test/helpers/monitor-process.js';
import { sleep } from '../test/helpers/wait.js';
import {
  cpuSnapshot,
  killAll,
  otherWorkPct,
  procStats,
  RowCounter,
  runLoadtestCli,
  startBaseline,
  startMonitor,
  type Server,
} from './harness.js';
import { formatSummaries, summariseDir } from './profile.js';
import { CODE_CHOICES, FINDINGS, SELF_PROTECTION } from './findings.js';
import { benchSampler, formatSamplerBench, type SamplerBenchRow } from './sampler.js';
import { benchDashboard, formatDashboardBench, type DashboardBench } from './dashboard.js';
import { benchLlm, formatLlmBench, type LlmBenchResult } from './llm.js';
import { benchAlerts, formatAlertBench, type AlertBenchResult } from './alerts.js';
import { benchPostgres, formatPostgresBench, type PostgresBenchResult } from './postgres.js';

const DOC = fileURLToPath(new URL('../../docs/PERFORMANCE.md', import.meta.url));
const SECTIONS = ['throughput', 'latency', 'idle', 'sampler', 'alerts', 'dashboard', 'llm', 'postgres'] as const;
type Section = (typeof SECTIONS)[number];

const args = process.argv.slice(2);
const argValue = (flag: string) => {
  const i = args.indexOf(flag);
  return i === -1 ? undefined : args[i + 1];
};
const only = new Set((argValue('--only')?.split(',') ?? SECTIONS) as Section[]);
const profileRoot = argValue('--profile');
/** --before-cli PATH: each throughput round also runs that build's monitor (e.g. dist copied before a change). */
const beforeCli = argValue('--before-cli');
const noOverload = args.includes('--no-overload');
/** --case TEXT: only the throughput cases whose label contains it (e.g. "1,000 persistent"). */
const caseFilter = argValue('--case');
const write = !args.includes('--no-write') && !profileRoot && only.size === SECTIONS.length;

for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130)); // 'exit' kills every child by pid

const round1 = (n: number) => Math.round(n * 10) / 10;
const fmt = (n: number) => n.toLocaleString('en', { maximumFractionDigits: 1 });
const log = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

let profileRun = 0;
function profileDir(label: string): string | undefined {
  if (!profileRoot) return undefined;
  const dir = join(profileRoot, `${String(++profileRun).padStart(2, '0')}-${label}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}
function printProfile(dir: string | undefined): void {
  if (dir) process.stderr.write(`\n${formatSummaries(summariseDir(dir, 20))}\n\n`);
}

// ---- 1. end-to-end llm_usage rows/s, monitor vs raw baseline ------------------------------------

interface ThroughputCase {
  label: string;
  bots: number;
  mode: FleetMode;
  processes: number;
  rows: number;
  /** One-shot connections in flight per bot process. */
  concurrency: number;
  /** Also watch the monitor's RSS for 30 s after the burst (RssAfterBurst). */
  fallBack?: boolean;
}

interface ThroughputResult {
  server: string;
  rows_written: number;
  rows_landed: number;
  seconds: number;
  rows_per_s: number;
  connects_per_s: number;
  server_cpu_pct: number;
  server_rss_peak_mb: number;
  generator_cpu_pct: number;
  /** Monitor only: lines its ingest refused because an actor's queue was full (counted, logged). */
  dropped_overflow: number | null;
  /** Monitor only: times reading paused because an actor was behind, and for how long in all. */
  backpressure_pauses: number | null;
  backpressure_ms: number | null;
  /** CPU used by processes that are not ours during the measurement, % of one core. */
  other_work_pct: number;
  /** Cases with `fallBack`, monitor only: RSS sampled each second for 30 s after the last row landed, fleet still connected. */
  rss_after?: RssAfterBurst;
}

interface RssAfterBurst {
  /** When the last row landed. */
  at_end_mb: number;
  /** First second at which RSS was under FALL_BACK_MB; null: not within 30 s. */
  under_s: number | null;
  at_30s_mb: number;
}

/** RSS the monitor must be back under within 30 s of a burst (issue 15). */
const FALL_BACK_MB = 200;

// Bursts stay below the monitor's per-link queue bound (limits.maxPendingPerLink, 500,000): a burst
// the kernel buffers at once can otherwise fill it (see OVERLOAD_CASE), and rows/s would then be
// measured on fewer rows than were sent.
const THROUGHPUT_CASES: ThroughputCase[] = [
  { label: '1,000 persistent bots', bots: 1_000, mode: 'persistent', processes: 2, rows: 400_000, concurrency: 64 },
  {
    label: '10,000 persistent bots',
    bots: 10_000,
    mode: 'persistent',
    processes: 4,
    rows: 400_000,
    concurrency: 64,
    fallBack: true,
  },
  {
    label: 'one-shot (1 connection per row)',
    bots: 1_000,
    mode: 'oneshot',
    processes: 2,
    rows: 60_000,
    concurrency: 64,
  },
];
/** More lines at once than the monitor's writer queue holds: what happens to the excess. */
const OVERLOAD_CASE: ThroughputCase = {
  label: '1,000 persistent bots, one 1,000,000-line burst',
  bots: 1_000,
  mode: 'persistent',
  processes: 2,
  rows: 1_000_000,
  concurrency: 64,
};
/** Lines sent while another connection holds the database's write lock: more than the writer queue holds. */
const LOCKED_ROWS = 600_000;

/** How long another connection holds the write lock while the bots send. */
const LOCK_MS = 5_000;

interface IngestHealth {
  accepted: { llm_usage: number };
  dropped_overflow: number;
  backpressure_pauses: number;
  backpressure_ms: number;
}

interface LockedDbResult {
  rows_written: number;
  rows_landed: number;
  dropped_overflow: number;
  backpressure_pauses: number;
  backpressure_ms: number;
  /** Most rows the main thread held for its actors (read, not yet committed) while the lock was held. */
  max_pending: number;
  seconds: number;
}

/**
 * The writer queue's bound under a stalled writer: another connection holds the write lock for
 * LOCK_MS (as a long maintenance transaction or a backup would) while 1,000 bots send LOCKED_ROWS
 * lines as fast as they can; then the lock is released and every row should land.
 */
async function lockedDbOverload(): Promise<LockedDbResult> {
  const dir = new TestDir();
  let monitor: Awaited<ReturnType<typeof startMonitor>> | null = null;
  let fleet: Fleet | null = null;
  let lock: Database.Database | null = null;
  let counter: RowCounter | null = null;
  try {
    await settle('locked database');
    monitor = await startMonitor(dir);
    const control = monitor.control;
    const health = () =>
      requestControl<{ ingest: IngestHealth; actors: { actor: string; queue_depth: number }[] }>(
        control,
        'GET',
        '/health',
      );
    fleet = await Fleet.start({
      socket: monitor.socket,
      prefix: 'bench',
      bots: 1_000,
      mode: 'persistent',
      processes: 2,
      heartbeatMs: 30_000,
    });
    if (!(await fleet.waitConnected(60_000))) throw new Error('locked database: the fleet did not connect within 60 s');
    await sleep(1_000);
    counter = new RowCounter(monitor.db);
    const before = counter.count();
    lock = new Database(monitor.db);
    lock.pragma('busy_timeout = 5000');
    lock.exec('BEGIN IMMEDIATE');
    const t0 = performance.now();
    const burst = fleet.burst(LOCKED_ROWS, 120_000);
    let maxPending = 0;
    while (performance.now() - t0 < LOCK_MS) {
      await sleep(100);
      maxPending = Math.max(maxPending, (await health()).actors.find((a) => a.actor === 'ingest')?.queue_depth ?? 0);
    }
    lock.exec('COMMIT');
    lock.close();
    lock = null;
    await burst;
    let landed = 0;
    let lastChangeAt = performance.now();
    while (performance.now() - lastChangeAt < 3_000) {
      await sleep(20);
      const n = counter.count() - before;
      if (n !== landed) {
        landed = n;
        lastChangeAt = performance.now();
      }
      if (landed >= LOCKED_ROWS) break;
    }
    const ingest = (await health()).ingest;
    return {
      rows_written: fleet.counters().llm_written,
      rows_landed: landed,
      dropped_overflow: ingest.dropped_overflow,
      backpressure_pauses: ingest.backpressure_pauses,
      backpressure_ms: ingest.backpressure_ms,
      max_pending: maxPending,
      seconds: Math.round((lastChangeAt - t0) / 100) / 10,
    };
  } finally {
    if (lock) lock.close();
    counter?.close();
    await fleet?.end(5_000);
    await monitor?.stop();
    dir.remove();
  }
}

/**
 * One burst: connect the fleet, then every bot process writes its share of `rows` llm_usage lines as
 * fast as the server reads them (backpressure honoured). Time runs from the burst command until the
 * last row is visible in the server's database (polled every 10 ms on a read-only connection).
 */
async function throughput(kind: 'monitor' | 'baseline', c: ThroughputCase, cli?: string): Promise<ThroughputResult> {
  const dir = new TestDir();
  const prof = kind === 'monitor' ? profileDir(`throughput-${c.mode}-${c.bots}`) : undefined;
  let server: Server | null = null;
  let fleet: Fleet | null = null;
  let counter: RowCounter | null = null;
  try {
    await settle(`${c.label}, ${kind}`);
    server = kind === 'monitor' ? await startMonitor(dir, [], prof, cli) : await startBaseline(dir);
    fleet = await Fleet.start({
      socket: server.socket,
      prefix: 'bench',
      bots: c.bots,
      mode: c.mode,
      processes: c.processes,
      heartbeatMs: 30_000,
      oneshotConcurrency: c.concurrency,
    });
    if (!(await fleet.waitConnected(60_000))) throw new Error(`${c.label}: the fleet did not connect within 60 s`);
    await sleep(1_000); // registrations applied, connect burst over
    counter = new RowCounter(server.db);
    const before = counter.count();
    const s0 = procStats(server.pid);
    const g0 = fleet.counters();
    const cpu0 = cpuSnapshot();
    const t0 = performance.now();
    let burstOver = false;
    void fleet.burst(c.rows, 300_000).then(
      () => (burstOver = true),
      () => (burstOver = true),
    );
    let landed = 0;
    let lastChangeAt = t0;
    let rssPeak = s0.rssMb;
    let lastRssAt = t0;
    for (;;) {
      await sleep(10);
      const now = performance.now();
      const n = counter.count() - before;
      if (n !== landed) {
        landed = n;
        lastChangeAt = now;
      }
      if (now - lastRssAt > 250) {
        rssPeak = Math.max(rssPeak, procStats(server.pid).rssMb);
        lastRssAt = now;
      }
      if (landed >= c.rows) break;
      if (burstOver && now - lastChangeAt > 3_000) break; // nothing more is coming
      if (now - t0 > 300_000) throw new Error(`${c.label}: ${kind} did not finish within 300 s`);
    }
    const s1 = procStats(server.pid);
    const g1 = fleet.counters();
    const other = otherWorkPct(cpu0, cpuSnapshot());
    noteOtherWork(`${c.label}, ${kind}`, other);
    const ingest =
      'control' in server
        ? (await requestControl<{ ingest: IngestHealth }>((server as { control: string }).control, 'GET', '/health'))
            .ingest
        : null;
    const seconds = (lastChangeAt - t0) / 1000;
    const wallMs = lastChangeAt - t0;
    const rssAfter = kind === 'monitor' && c.fallBack ? await rssAfterBurst(server.pid) : undefined;
    return {
      server: server.name,
      rows_written: g1.llm_written - g0.llm_written,
      rows_landed: landed,
      seconds: Math.round(seconds * 100) / 100,
      rows_per_s: Math.round(landed / seconds),
      connects_per_s: Math.round((g1.oneshot_connections - g0.oneshot_connections) / seconds),
      server_cpu_pct: round1(((s1.cpuMs - s0.cpuMs) / wallMs) * 100),
      server_rss_peak_mb: Math.max(rssPeak, s1.rssMb),
      generator_cpu_pct: round1(((g1.cpu_ms - g0.cpu_ms) / wallMs) * 100),
      dropped_overflow: ingest?.dropped_overflow ?? null,
      backpressure_pauses: ingest?.backpressure_pauses ?? null,
      backpressure_ms: ingest?.backpressure_ms ?? null,
      other_work_pct: other,
      rss_after: rssAfter,
    };
  } finally {
    counter?.close();
    await fleet?.end(5_000);
    await server?.stop();
    dir.remove();
    printProfile(prof);
  }
}

/** The server's RSS each second for 30 s (its fleet still connected): does it give back what the burst took? */
async function rssAfterBurst(pid: number): Promise<RssAfterBurst> {
  const atEnd = procStats(pid).rssMb;
  let under: number | null = atEnd < FALL_BACK_MB ? 0 : null;
  let last = atEnd;
  for (let s = 1; s <= 30; s++) {
    await sleep(1_000);
    last = procStats(pid).rssMb;
    if (under === null && last < FALL_BACK_MB) under = s;
  }
  return { at_end_mb: atEnd, under_s: under, at_30s_mb: last };
}

/** Throughput cases run this many times each (baseline and monitor back to back): the machine is shared, medians are steadier. */
const REPS = Number(argValue('--reps') ?? 3);

function medianRun(runs: ThroughputResult[]): ThroughputResult {
  return [...runs].sort((a, b) => a.rows_per_s - b.rows_per_s)[Math.floor(runs.length / 2)];
}

// ---- 2–4. loadtest runs against a fresh monitor -----------------------------------------------------

interface LoadtestRun {
  report: LoadtestReport;
  code: number | null;
  /** The command as a user would type it (temp paths replaced). */
  command: string;
  monitorArgs: string[];
  /** CPU used by processes not ours during the run, % of one core. */
  otherWorkPct: number;
  /** The sampler actor while the bots were there: most pids watched, rounds run in the window, round times. */
  sampler: { watched: number; rounds: number; abandoned: number; round_ms_max: number; round_ms_last: number };
}

interface SamplerDetail {
  watched: number;
  rounds: number;
  rounds_abandoned: number;
  last_round_ms: number | null;
}

async function loadtestRun(label: string, monitorArgs: string[], loadtestArgs: string[]): Promise<LoadtestRun> {
  const dir = new TestDir();
  const prof = profileDir(label);
  await settle(label);
  const monitor = await startMonitor(dir, monitorArgs, prof);
  // The sampler's view while the run goes on (after it, the bots have unregistered and are unwatched).
  const sampler = { watched: 0, rounds: 0, abandoned: 0, round_ms_max: 0, round_ms_last: 0 };
  let first: SamplerDetail | null = null;
  const readSampler = async () => {
    const health = await requestControl<{ actors: { actor: string; detail: SamplerDetail }[] }>(
      monitor.control,
      'GET',
      '/health',
    );
    const d = health.actors.find((a) => a.actor === 'sampler')?.detail;
    if (!d) return;
    first ??= d;
    if (d.watched >= sampler.watched && d.last_round_ms !== null) {
      sampler.round_ms_last = d.last_round_ms;
      if (d.watched > 0) sampler.round_ms_max = Math.max(sampler.round_ms_max, d.last_round_ms);
    }
    sampler.watched = Math.max(sampler.watched, d.watched);
    sampler.rounds = d.rounds - first.rounds;
    sampler.abandoned = d.rounds_abandoned - first.rounds_abandoned;
  };
  const poll = setInterval(() => void readSampler().catch(() => {}), 1_000);
  try {
    const cpu0 = cpuSnapshot();
    const { code, report, command } = await runLoadtestCli([
      '--socket',
      monitor.socket,
      '--db',
      monitor.db,
      ...loadtestArgs,
    ]);
    const other = otherWorkPct(cpu0, cpuSnapshot());
    noteOtherWork(label, other);
    return {
      report,
      code,
      command: command.replace(`--socket ${monitor.socket} --db ${monitor.db} `, ''),
      monitorArgs,
      sampler,
      otherWorkPct: other,
    };
  } finally {
    clearInterval(poll);
    await monitor.stop();
    dir.remove();
    printProfile(prof);
  }
}

// ---- the run ----------------------------------------------------------------------------------------

interface Results {
  /** Per case, REPS pairs (baseline then monitor, back to back); `baseline`/`monitor` are the median runs. */
  throughput: {
    case: ThroughputCase;
    baseline: ThroughputResult;
    monitor: ThroughputResult;
    baselineRuns: number[];
    monitorRuns: number[];
    /** Every monitor run, in order (RSS peaks, the 30 s after a burst). */
    monitors: ThroughputResult[];
    ratio: number;
    ratios: number[];
  }[];
  overload?: ThroughputResult;
  lockedDb?: LockedDbResult;
  latency: { bots: number; run: LoadtestRun }[];
  idle?: LoadtestRun;
  samplerRounds?: SamplerBenchRow[];
  samplerLatency?: LoadtestRun;
  llm?: LlmBenchResult;
  alerts?: AlertBenchResult;
  dashboard?: DashboardBench;
  postgres?: PostgresBenchResult;
  /** Why the postgres section could not run (no PostgreSQL server answering), else undefined. */
  postgresError?: string;
}

async function main(): Promise<void> {
  const started = performance.now();
  const results: Results = { throughput: [], latency: [] };

  if (only.has('throughput')) {
    for (const c of THROUGHPUT_CASES.filter((t) => !caseFilter || t.label.includes(caseFilter))) {
      const baselines: ThroughputResult[] = [];
      const monitors: ThroughputResult[] = [];
      for (let rep = 1; rep <= REPS; rep++) {
        log(`throughput: ${c.label}, raw baseline (${rep}/${REPS})`);
        baselines.push(await throughput('baseline', c));
        log(`  ${fmt(baselines.at(-1)!.rows_per_s)} rows/s`);
        log(`throughput: ${c.label}, monitor (${rep}/${REPS})`);
        const m = await throughput('monitor', c);
        monitors.push(m);
        log(
          `  ${fmt(m.rows_per_s)} rows/s (${fmt(m.rows_landed)}/${fmt(m.rows_written)} landed, ${m.dropped_overflow} dropped on overflow), ratio ${(m.rows_per_s / baselines.at(-1)!.rows_per_s).toFixed(2)}, RSS peak ${m.server_rss_peak_mb} MB, CPU ${m.server_cpu_pct} %, other work ${m.other_work_pct} %`,
        );
        if (m.rss_after)
          log(
            `  RSS after the burst: ${m.rss_after.at_end_mb} MB, under ${FALL_BACK_MB} MB after ${m.rss_after.under_s ?? '> 30'} s, ${m.rss_after.at_30s_mb} MB at 30 s`,
          );
        if (beforeCli) {
          log(`throughput: ${c.label}, monitor before (${rep}/${REPS}): ${beforeCli}`);
          const b = await throughput('monitor', c, beforeCli);
          log(
            `  before: ${fmt(b.rows_per_s)} rows/s (${fmt(b.rows_landed)}/${fmt(b.rows_written)} landed), ratio ${(b.rows_per_s / baselines.at(-1)!.rows_per_s).toFixed(2)}, RSS peak ${b.server_rss_peak_mb} MB, CPU ${b.server_cpu_pct} %, other work ${b.other_work_pct} %`,
          );
        }
      }
      const ratios = monitors.map((m, i) => m.rows_per_s / baselines[i].rows_per_s);
      results.throughput.push({
        case: c,
        baseline: medianRun(baselines),
        monitor: medianRun(monitors),
        baselineRuns: baselines.map((b) => b.rows_per_s),
        monitorRuns: monitors.map((m) => m.rows_per_s),
        monitors,
        ratio: [...ratios].sort((a, b) => a - b)[Math.floor(ratios.length / 2)],
        ratios,
      });
    }
    if (!noOverload) {
      log(`overload: ${OVERLOAD_CASE.label}, monitor`);
      results.overload = await throughput('monitor', OVERLOAD_CASE);
      log(
        `  ${fmt(results.overload.rows_landed)}/${fmt(results.overload.rows_written)} landed, ${results.overload.dropped_overflow} dropped on overflow`,
      );
      log(`overload: ${fmt(LOCKED_ROWS)} lines while another connection holds the database's write lock`);
      results.lockedDb = await lockedDbOverload();
      log(
        `  ${fmt(results.lockedDb.rows_landed)}/${fmt(results.lockedDb.rows_written)} landed, ${results.lockedDb.dropped_overflow} dropped on overflow`,
      );
    }
  }
  if (only.has('latency')) {
    for (const bots of [1_000, 10_000]) {
      log(`heartbeat latency: ${fmt(bots)} bots heartbeating every second`);
      const run = await loadtestRun(
        `latency-${bots}`,
        [],
        ['--bots', String(bots), '--duration', '15', '--heartbeat-interval', '1', '--llm-rate', '500'],
      );
      log(
        `  p50 ${run.report.latency_ms.p50} ms, p99 ${run.report.latency_ms.p99} ms, lost ${run.report.lost}, false_stale ${run.report.false_stale}`,
      );
      results.latency.push({ bots, run });
    }
  }
  if (only.has('idle')) {
    log(
      'idle: 10,000 bots, one real pid each, heartbeating every 30 s (the client default), sampled every 15 s (the default)',
    );
    results.idle = await loadtestRun(
      'idle-10000',
      [],
      ['--bots', '10000', '--duration', '45', '--heartbeat-interval', '30', '--llm-rate', '0', '--pid-per-bot'],
    );
    log(`  cpu ${results.idle.report.monitor.cpu_pct} %, rss ${results.idle.report.monitor.rss_mb} MB`);
  }
  if (only.has('sampler')) {
    log('sampler rounds: 100 / 1,000 / 10,000 pids (bench/sampler.ts)');
    await settle('sampler rounds');
    const cpu0 = cpuSnapshot();
    results.samplerRounds = await benchSampler([100, 1_000, 10_000]);
    noteOtherWork('sampler rounds', otherWorkPct(cpu0, cpuSnapshot()));
    log('heartbeat latency while 10,000-pid sample rounds run every 2 s');
    results.samplerLatency = await loadtestRun(
      'sampler-latency-10000',
      ['--sample-interval', '2'],
      ['--bots', '10000', '--duration', '20', '--heartbeat-interval', '1', '--llm-rate', '0', '--pid-per-bot'],
    );
    log(
      `  p99 ${results.samplerLatency.report.latency_ms.p99} ms, sampler ${JSON.stringify(results.samplerLatency.sampler)}`,
    );
  }
  if (only.has('dashboard')) {
    log('dashboard: 10,000 bots, monitor CPU without and with 5 live event streams (bench/dashboard.ts)');
    await settle('dashboard');
    results.dashboard = await benchDashboard(log);
    noteOtherWork('dashboard', results.dashboard.other_work_pct);
    log(
      `  added ${results.dashboard.cpu_added_pct} % of a core (${results.dashboard.cpu_without_pct} → ${results.dashboard.cpu_with_pct} %)`,
    );
  }

  if (only.has('llm')) {
    log('llm accounting: writer ingest with rollups on vs off; kissmon usage over 10M rows (bench/llm.ts)');
    await settle('llm accounting');
    results.llm = await benchLlm();
  }
  if (only.has('alerts')) {
    log('alerter: 10,000 bots churning 1 %/s, then 10,000 stale at once (bench/alerts.ts)');
    await settle('alerter');
    const cpu0 = cpuSnapshot();
    results.alerts = await benchAlerts();
    noteOtherWork('alerter', otherWorkPct(cpu0, cpuSnapshot()));
    log(
      `  cpu ${results.alerts.churn.cpu_pct} %, p99 ${results.alerts.churn.latency_p99_ms} ms, fleet-wide ${results.alerts.fleet.map((f) => `${f.posts} POST(s) in ${f.seconds_to_last_post} s`).join(', ')}`,
    );
  }

  if (only.has('postgres')) {
    log(
      'postgres: llm_usage rows/s into PostgreSQL, monitor beside a raw single-thread pg baseline (bench/postgres.ts)',
    );
    await settle('postgres');
    try {
      results.postgres = await benchPostgres({ log: (msg) => log(`  ${msg}`) });
      for (const x of [...results.postgres.baseline, ...results.postgres.monitor])
        noteOtherWork(`postgres, ${x.server}`, x.other_work_pct);
    } catch (err) {
      results.postgresError = (err as Error).message;
      log(`  postgres section failed: ${results.postgresError}`);
    }
  }

  const minutes = round1((performance.now() - started) / 60_000);
  log(`done in ${minutes} min`);
  const doc = render(results, minutes);
  if (write) {
    writeFileSync(DOC, doc);
    log(`wrote ${DOC}`);
  } else {
    process.stdout.write(doc);
  }
}

// ---- the write-up -------------------------------------------------------------------------------------

function machine(): string {
  const cpus = os.cpus();
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    if (dirty) commit += ' + uncommitted changes';
  } catch {
    // not a git checkout
  }
  return [
    `- date: ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`,
    `- machine: ${cpus.length} × ${cpus[0]?.model.trim() ?? 'unknown cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, Linux ${os.release()}`,
    `- Node ${process.version}, commit ${commit}`,
    `- open files (ulimit -n): ${safe(() => execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim())}`,
  ].join('\n');
}

/** How busy all cores were over `ms` (/proc/stat), %: to tell a quiet machine from a shared one. */
async function machineBusyPct(ms = 500): Promise<number> {
  const read = () => {
    const [, ...fields] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/);
    const n = fields.map(Number);
    return { idle: n[3] + (n[4] ?? 0), total: n.reduce((a, b) => a + b, 0) };
  };
  try {
    const a = read();
    await sleep(ms);
    const b = read();
    return Math.round((1 - (b.idle - a.idle) / Math.max(1, b.total - a.total)) * 100);
  } catch {
    return -1;
  }
}

const LOADTEST_GUIDE = `## \`kissmon loadtest\`: what it checks

\`kissmon loadtest [--socket PATH | --config FILE] --bots N --duration SEC [--heartbeat-interval SEC] [--llm-rate PER_SEC]
[--mode persistent|oneshot|mixed] [--processes K] [--pid-per-bot] [--token T] [--db PATH] [--json]\` runs against a
monitor that is already running (ops: before every deploy). It asks the monitor (\`GET /settings\` on its control socket)
for its database, so \`--db\` is only needed to name another file; a run the monitor's settings rule out (more bots or
connections than \`limits.maxBots\`/\`maxConnections\`, no \`--token\` where bots must send one, a heartbeat interval at the
stale window) is refused before any bot starts. The bots live in K separate processes (real pids; default one per 2,500
bots, at least 2); each registers, heartbeats on its interval ±10 % with \`ts\`, and the fleet sends llm_usage at
the total rate given. \`oneshot\` opens a connection per message like the old Python bots; \`mixed\` makes half of
each. Channels are \`lt<random>_<i>\`, unique to the run, so it can share a monitor with a real fleet.

- **lost** = llm_usage lines the bots *wrote* (write callback fired without error) − rows with the run's prefix in
  the database after \`POST /flush\` (read-only connection to the monitor's database, or \`--db\`). Lines that could not be written are reported
  as \`llm_rows_failed\`, not expected.
- **false_stale** = bots that heartbeated throughout but have a stale/dead/offline event in \`bot_events\` or are not
  \`online\` in \`GET /status\` at the end (heartbeats go on until after this check; bots that had a heartbeat or
  register fail to write are left out and counted in \`excluded_bots\`).
- **latency** = the registry's heartbeat histogram (client \`ts\` → applied), reset when the measured window starts;
  monitor CPU (% of one core, all threads) and RSS from \`GET /health\` over the window.
- Exit 0 = everything checked out; 3 = lost ≠ 0, false_stale ≠ 0, or not every bot could register; 2 = bad flags, or a
  fleet the OS limits cannot hold (the message says which limit — the bot processes', the monitor's open files, the
  system file table, processes for \`--pid-per-bot\` — and what to change); 1 = the tool failed (no monitor answering);
  130 = interrupted (bots unregistered, every process ended by pid).
- The bot processes raise their soft open-file limit to the hard one (\`ulimit -S -n\` in the shell that starts them).
- At the end every bot unregisters (its rows stay, \`offline\`); \`--pid-per-bot\` also starts one idle process per bot so
  the sampler watches N distinct pids, as in a real fleet.
`;

/** Machine busy below this (all cores, %) counts as quiet. */
const QUIET_PCT = 15;
const settled: { label: string; busy: number }[] = [];
/** Other work above this (% of one core) during a measurement makes it suspect, and the doc says so. */
const OTHER_WORK_FLAG_PCT = 20;
const otherWork: { label: string; pct: number }[] = [];

function noteOtherWork(label: string, pct: number): void {
  otherWork.push({ label, pct });
  if (pct >= OTHER_WORK_FLAG_PCT) log(`  ⚠ other processes used ${pct} % of a core during this measurement`);
}

/**
 * Before a measurement, when nothing of ours runs: wait up to 15 s for the machine to be quiet (it
 * is shared), and record how busy it was, so a noisy figure can be told from a slow monitor.
 */
async function settle(label: string): Promise<void> {
  const deadline = performance.now() + 15_000;
  let busy = await machineBusyPct();
  if (busy >= QUIET_PCT) log(`  machine ${busy} % busy with other work: waiting up to 15 s for it to calm down`);
  while (busy >= QUIET_PCT && performance.now() < deadline) busy = await machineBusyPct();
  settled.push({ label, busy });
}

function safe(fn: () => string): string {
  try {
    return fn();
  } catch {
    return '?';
  }
}

const verdict = (ok: boolean) => (ok ? '**met**' : '**missed**');

function render(r: Results, minutes: number): string {
  const noisy = settled.filter((x) => x.busy >= QUIET_PCT);
  const suspect = otherWork.filter((x) => x.pct >= OTHER_WORK_FLAG_PCT);
  const out: string[] = [];
  out.push(
    '# Performance',
    '',
    'Measured by `npm run bench` (bench/run.ts), which wrote this file. Everything below comes from one run on one machine,',
    `side by side; the whole run took ${minutes} min.`,
    '',
    machine(),
    `- other work on the machine (CPU of processes that are not the bench's, measured during each measurement): ${suspect.length === 0 ? `under ${OTHER_WORK_FLAG_PCT} % of a core in every one` : `**${suspect.length} of ${otherWork.length} measurements shared the machine with ≥ ${OTHER_WORK_FLAG_PCT} % of a core of other work** (${suspect.map((x) => `${x.label}: ${x.pct} %`).join('; ')}), read those with care`}. Before each one the driver also waited up to 15 s for the machine to be under ${QUIET_PCT} % busy${noisy.length ? ` (${noisy.length} started busier anyway)` : ''}.`,
    '',
    '**Read every number with this in mind:** the machine has 2 cores, and the server under test (the monitor or the raw',
    'baseline), the load generator (separate bot processes, see `src/loadtest/`) and this driver all share them. CPU is',
    "attributed per process (from `/proc/<pid>/stat` or the monitor's own `/health`), so the monitor's CPU figures are its",
    "own, but the generator's work competes with it for the same two cores, and the throughput figures are what the",
    'monitor achieves while a generator runs beside it. The raw baseline runs under exactly the same conditions.',
    '',
  );

  out.push('## Targets', '');
  const targets: string[] = [
    '| target | measured | | other work during it (% of a core) |',
    '| --- | --- | --- | --- |',
  ];
  const shared = (...pcts: number[]) => {
    const max = Math.max(...pcts);
    return max >= OTHER_WORK_FLAG_PCT ? `⚠ ${max}` : String(max);
  };
  for (const t of r.throughput) {
    const ratio = t.ratio;
    const other = shared(t.baseline.other_work_pct, t.monitor.other_work_pct);
    if (t.case.mode === 'oneshot') {
      targets.push(
        `| one-shot connections ≥ 5,000/s | ${fmt(t.monitor.connects_per_s)}/s | ${verdict(t.monitor.connects_per_s >= 5_000)} | ${shared(t.monitor.other_work_pct)} |`,
      );
      targets.push(
        `| one-shot rows ≥ 0.7× raw baseline | ${ratio.toFixed(2)}× | ${verdict(ratio >= 0.7)} | ${other} |`,
      );
    } else {
      if (t.case.bots === 1_000) {
        const peaks = t.monitors.map((m) => m.server_rss_peak_mb);
        targets.push(
          `| ${t.case.label}: peak RSS during the ${fmt(t.case.rows)}-row burst ≤ 250 MB | ${Math.max(...peaks)} MB (runs: ${peaks.join(', ')}) | ${verdict(Math.max(...peaks) <= 250)} | ${shared(...t.monitors.map((m) => m.other_work_pct))} |`,
        );
      }
      const after = t.monitors.flatMap((m) => (m.rss_after ? [m.rss_after] : []));
      if (after.length > 0) {
        const worst = after.some((a) => a.under_s === null) ? null : Math.max(...after.map((a) => a.under_s!));
        targets.push(
          `| ${t.case.label}: RSS back under ${FALL_BACK_MB} MB within 30 s of the burst | ${after.map((a) => `${a.at_end_mb} → ${a.at_30s_mb} MB${a.under_s === null ? '' : ` (under at ${a.under_s} s)`}`).join('; ')} | ${verdict(worst !== null)} | ${shared(...t.monitors.map((m) => m.other_work_pct))} |`,
        );
      }
      targets.push(
        `| ${t.case.label}: ≥ 100k llm_usage rows/s end to end | ${fmt(t.monitor.rows_per_s)}/s | ${verdict(t.monitor.rows_per_s >= 100_000)} | ${shared(t.monitor.other_work_pct)} |`,
      );
      targets.push(
        `| ${t.case.label}: ≥ 0.7× raw baseline | ${ratio.toFixed(2)}× | ${verdict(ratio >= 0.7)} | ${other} |`,
      );
    }
  }
  if (r.idle) {
    const m = r.idle.report.monitor;
    targets.push(
      `| 10,000 idle bots: monitor CPU < 25 % of one core | ${m.cpu_pct} % | ${verdict(m.cpu_pct < 25)} | ${shared(r.idle.otherWorkPct)} |`,
    );
    targets.push(
      `| 10,000 idle bots: monitor RSS < 250 MB | ${m.rss_mb} MB (peak ${m.rss_peak_mb}) | ${verdict(m.rss_peak_mb < 250)} | ${shared(r.idle.otherWorkPct)} |`,
    );
    targets.push(
      `| 10,000 idle bots: monitor RSS ≤ 180 MB steady | ${m.rss_mb} MB | ${verdict(m.rss_mb <= 180)} | ${shared(r.idle.otherWorkPct)} |`,
    );
  }
  if (r.dashboard) {
    const d = r.dashboard;
    targets.push(
      `| 10,000 bots, 5 dashboards open: monitor CPU added < 5 % of one core | ${d.cpu_added_pct} % | ${verdict(d.cpu_added_pct < 5)} | ${shared(d.other_work_pct)} |`,
    );
  }
  for (const { bots, run } of r.latency) {
    targets.push(
      `| ${fmt(bots)} bots × 1 heartbeat/s: lost 0, false stale 0 | lost ${run.report.lost}, false stale ${run.report.false_stale}, exit ${run.code} | ${verdict(run.report.ok && run.code === 0)} | ${shared(run.otherWorkPct)} |`,
    );
  }
  out.push(...targets, '');

  if (r.throughput.length) {
    out.push(
      '## End-to-end llm_usage rows/s (socket → SQLite rows)',
      '',
      'A burst of llm_usage lines written by the bot processes as fast as the server reads them (backpressure honoured,',
      "up to 64 lines per write), timed from the burst command until the last row is visible in the server's database",
      '(polled every 10 ms on a read-only connection). Only llm_usage rows are counted; the persistent bots are registered',
      `first and heartbeat (every 30 s) throughout. Each case ran ${REPS} times, baseline and monitor back to back; the table`,
      'shows the median run (all runs in the last column) and the ratio is the median of the back-to-back ratios.',
      '',
      '- **monitor**: `kissmon start` (defaults, `--log-level warn`): main thread frames, parses, validates and batches; the',
      '  db-writer actor commits (kysely-compiled prepared statement, WAL, synchronous=NORMAL).',
      '- **raw baseline** (`bench/raw-baseline.ts`): one thread, bare `net` server → split on `\\n` → `JSON.parse` →',
      '  better-sqlite3 prepared statement reused, 1000-row transactions (plus a 50 ms timer for the tail), WAL,',
      '  synchronous=NORMAL, the same llm_usage columns and ts index. No validation, auth, registry or actors.',
      '',
      '| case | server | rows landed / written | time s | rows/s | ratio | connects/s | server CPU % (of one core) | server RSS peak MB | generator CPU % | other work % | rows/s, every run |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    );
    for (const t of r.throughput) {
      for (const x of [t.baseline, t.monitor]) {
        const monitor = x === t.monitor;
        const ratio = monitor ? `**${t.ratio.toFixed(2)}×** (${t.ratios.map((q) => q.toFixed(2)).join(', ')})` : '1×';
        const runs = (monitor ? t.monitorRuns : t.baselineRuns).map(fmt).join(', ');
        out.push(
          `| ${t.case.label} | ${x.server} | ${fmt(x.rows_landed)} / ${fmt(x.rows_written)} | ${x.seconds} | ${fmt(x.rows_per_s)} | ${ratio} | ${t.case.mode === 'oneshot' ? fmt(x.connects_per_s) : '-'} | ${x.server_cpu_pct} | ${x.server_rss_peak_mb} | ${x.generator_cpu_pct} | ${x.other_work_pct} | ${runs} |`,
        );
      }
    }
    out.push(
      '',
      'The one-shot case is also the connection-rate measurement: every row is its own connection (connect, one line,',
      'close), as the old Python bots send, with 2 bot processes keeping 64 connects in flight each. The 100k rows/s',
      'target cannot apply to it: one row per connection, the raw baseline itself stays near 20k/s on this machine.',
      '',
    );
    const falls = r.throughput.filter((t) => t.monitors.some((m) => m.rss_after));
    if (falls.length > 0) {
      out.push(
        '### Memory given back after a burst',
        '',
        `After the last row landed, the monitor's RSS sampled every second for 30 s, its fleet still connected and`,
        `heartbeating (RSS depends less on the machine's load than throughput does, but GC timing still does):`,
        '',
        `| case | run | RSS peak MB | RSS at the end MB | under ${FALL_BACK_MB} MB after s | RSS at 30 s MB | other work % |`,
        '| --- | --- | --- | --- | --- | --- | --- |',
      );
      for (const t of falls)
        t.monitors.forEach((m, i) => {
          const a = m.rss_after!;
          out.push(
            `| ${t.case.label} | ${i + 1} | ${m.server_rss_peak_mb} | ${a.at_end_mb} | ${a.under_s ?? 'not within 30'} | ${a.at_30s_mb} | ${m.other_work_pct} |`,
          );
        });
      out.push('');
    }
    if (r.overload || r.lockedDb) {
      out.push(
        '### Overload: more rows than the writer can take',
        '',
        'The main → writer link holds at most `limits.maxPendingPerLink` (500,000) rows read but not yet committed. Since',
        'b46f459 the monitor stops reading every connection once a link holds 65,536 rows (half of the bound if that is less;',
        'before lean-memory: half of the bound, 250,000) and reads on at half of that, so the',
        'excess waits in kernel and client buffers instead of being dropped at the bound (`backpressure_pauses` and',
        '`dropped_overflow` in `kissmon health`). Two ways to get there: a burst the kernel has buffered all at once is read',
        `faster than the writer commits, and a database another connection keeps write-locked (here for ${LOCK_MS / 1000} s) stops commits`,
        'while the bots keep sending:',
        '',
        '| case | rows written | rows landed | dropped (queue full) | reading paused (times, ms in all) | most rows held | time s |',
        '| --- | --- | --- | --- | --- | --- | --- |',
      );
      const o = r.overload;
      if (o)
        out.push(
          `| ${OVERLOAD_CASE.label} | ${fmt(o.rows_written)} | ${fmt(o.rows_landed)} | ${fmt(o.dropped_overflow ?? 0)} | ${o.backpressure_pauses ?? '-'}, ${fmt(o.backpressure_ms ?? 0)} | - | ${o.seconds} |`,
        );
      const l = r.lockedDb;
      if (l)
        out.push(
          `| 1,000 persistent bots, ${fmt(LOCKED_ROWS)} lines, database write-locked for the first ${LOCK_MS / 1000} s | ${fmt(l.rows_written)} | ${fmt(l.rows_landed)} | ${fmt(l.dropped_overflow)} | ${l.backpressure_pauses}, ${fmt(l.backpressure_ms)} | ${fmt(l.max_pending)} | ${l.seconds} |`,
        );
      out.push('', 'See "Findings" below.', '');
    }
  }

  if (r.latency.length) {
    out.push(
      '## Heartbeat send → registry-visible latency',
      '',
      'Client `ts` (stamped when the line is handed to the socket) → the heartbeat applied in the registry actor, from the',
      "registry's own histogram (`GET /latency`, reset when the measured window starts). Bots heartbeat every second with",
      '±10 % jitter, 500 llm_usage lines/s on top, over 15 s, through the real CLI against a fresh monitor with defaults:',
      '',
      '| bots | heartbeats measured | p50 ms | p95 ms | p99 ms | max ms | lost | false stale | monitor CPU % | monitor RSS MB (peak) | other work % | command |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    );
    for (const { bots, run } of r.latency) {
      const x = run.report;
      out.push(
        `| ${fmt(bots)} | ${fmt(x.latency_ms.count)} | ${x.latency_ms.p50} | ${x.latency_ms.p95} | ${x.latency_ms.p99} | ${x.latency_ms.max} | ${x.lost} of ${fmt(x.llm_rows_expected)} | ${x.false_stale} | ${x.monitor.cpu_pct} | ${x.monitor.rss_mb} (${x.monitor.rss_peak_mb}) | ${run.otherWorkPct} | \`${run.command}\` |`,
      );
    }
    out.push(
      '',
      'Both ends stamp time as `performance.timeOrigin + performance.now()` (fractional ms), on the same machine.',
      '',
    );
  }

  if (r.idle) {
    const x = r.idle.report;
    out.push(
      "## 10,000 idle-but-heartbeating bots: the monitor's CPU and RSS",
      '',
      `10,000 persistent bots, each registered with its own real (idle) process (\`--pid-per-bot\`), heartbeating every 30 s`,
      `(the client default), no llm_usage, the sampler at its default 15 s interval (${fmt(r.idle.sampler.watched)} pids watched, ${r.idle.sampler.rounds} rounds`,
      `during the run, the longest ${r.idle.sampler.round_ms_max} ms). CPU over the ${x.duration_s} s window, % of one core, all threads of the monitor process:`,
      '',
      `| bots | monitor CPU % | monitor RSS MB (peak) | heartbeats | false stale | other work % | command |`,
      '| --- | --- | --- | --- | --- | --- | --- |',
      `| 10,000 | ${x.monitor.cpu_pct} | ${x.monitor.rss_mb} (${x.monitor.rss_peak_mb}) | ${fmt(x.heartbeats_sent)} | ${x.false_stale} | ${r.idle.otherWorkPct} | \`${r.idle.command}\` |`,
      '',
    );
    const busy = r.latency.find((l) => l.bots === 10_000);
    if (busy)
      out.push(
        `For comparison, the same 10,000 bots heartbeating every **second** (previous section): ${busy.run.report.monitor.cpu_pct} % CPU, ${busy.run.report.monitor.rss_peak_mb} MB RSS peak.`,
        '',
      );
  }

  if (r.samplerRounds || r.samplerLatency) {
    out.push('## Sampler', '');
    if (r.samplerRounds) {
      out.push(
        'One sample round at 100 / 1,000 / 10,000 real pids (`bench/sampler.ts`: the sampler class in-process, pids are',
        'idle `cat` processes). ms is wall time, (cpu) the process CPU time it took; the steady round reads each pid',
        'through its held fd (one pread), the raw columns are the reads alone by path and through held fds (before/after',
        'holding fds, the byte parser, and the kernel\'s floor: "Numbers behind code choices"):',
        '',
        formatSamplerBench(r.samplerRounds),
        '',
      );
    } else {
      out.push('> **HOOK:** bench/sampler.ts (`benchSampler`) — sampler round section not run.', '');
    }
    if (r.samplerLatency) {
      const x = r.samplerLatency.report;
      const busy = r.latency.find((l) => l.bots === 10_000)?.run;
      out.push(
        'Heartbeat latency while 10,000-pid rounds run: 10,000 bots, each with its own real pid, heartbeating every second,',
        `monitor started with \`--sample-interval 2\` (${r.samplerLatency.sampler.rounds} rounds of up to ${fmt(r.samplerLatency.sampler.watched)} pids during the run, the longest ${r.samplerLatency.sampler.round_ms_max} ms, ${r.samplerLatency.sampler.abandoned} abandoned):`,
        '',
        '| sampler | heartbeats measured | p50 ms | p99 ms | max ms | false stale | monitor CPU % | other work % | command |',
        '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
        `| 10,000-pid rounds every 2 s | ${fmt(x.latency_ms.count)} | ${x.latency_ms.p50} | ${x.latency_ms.p99} | ${x.latency_ms.max} | ${x.false_stale} | ${x.monitor.cpu_pct} | ${r.samplerLatency.otherWorkPct} | \`kissmon start --sample-interval 2\` + \`${r.samplerLatency.command}\` |`,
        ...(busy
          ? [
              `| 4 pids (bots share their bot processes' pids), every 15 s | ${fmt(busy.report.latency_ms.count)} | ${busy.report.latency_ms.p50} | ${busy.report.latency_ms.p99} | ${busy.report.latency_ms.max} | ${busy.report.false_stale} | ${busy.report.monitor.cpu_pct} | ${busy.otherWorkPct} | (10,000-bot row above) |`,
            ]
          : []),
        '',
      );
    }
  }

  if (r.llm) out.push(formatLlmBench(r.llm), '');
  else out.push('> **HOOK:** bench/llm.ts (`benchLlm`) — LLM accounting section not run.', '');
  if (r.alerts) {
    out.push(
      '## Alerter',
      '',
      "The alerter's rules, grouping and delivery (`bench/alerts.ts`: the AlertEngine and Deliveries classes the actor runs,",
      'in-process, posting Alertmanager payloads to a receiver in another process on 127.0.0.1). Churn: 10,000 bots, 1 % of',
      'them changing state every second (half hang, half recover), groupWait/groupInterval 1 ms so the latency is the',
      "machinery's alone (a real notification waits groupWaitMs, 10 s by default, on top). Latency is from the",
      'transition to the receiver holding the POST that first lists it; CPU % is of one core.',
      '',
      formatAlertBench(r.alerts),
      '',
      "Every notification lists all of its group's firing alerts (as Alertmanager does), so under churn a POST carries",
      'the ~100 bots stale at that moment; the fleet-wide case is one POST of all 10,000.',
      '',
    );
  } else {
    out.push('## Alerter', '', '(Not measured in this run: `node dist/bench/run.js --only alerts`.)', '');
  }
  if (r.dashboard) out.push(...formatDashboardBench(r.dashboard));
  if (r.postgres) out.push(formatPostgresBench(r.postgres));
  else
    out.push(
      '## PostgreSQL',
      '',
      `(Not measured in this run${r.postgresError ? `: ${r.postgresError}` : ''}. \`node dist/bench/postgres.js --write\` measures it and writes this section alone.)`,
      '',
    );

  out.push(FINDINGS, '');
  out.push(CODE_CHOICES, '');
  out.push(SELF_PROTECTION, '');
  out.push(LOADTEST_GUIDE, '');
  out.push(
    '## Reproduce',
    '',
    '```sh',
    'npm run bench                                   # everything, rewrites this file (≈ 5 min)',
    'node dist/bench/run.js --only throughput         # one section, printed instead of written',
    'node dist/bench/run.js --only latency --profile /tmp/prof   # monitors under node --cpu-prof, summarised per thread',
    'node dist/bench/profile.js /tmp/prof/01-latency-1000        # the summary of one profiled run again',
    'cp -a dist dist-before   # (then change, build) each throughput round also runs the old build:',
    'node dist/bench/run.js --only throughput --no-overload --before-cli dist-before/src/cli.js [--case "1,000 persistent"] [--reps N]',
    'node dist/bench/sampler.js 100 1000 10000        # the sampler rounds alone',
    'node dist/bench/heartbeat-ab.js --before-cli dist-before/src/cli.js [--pairs 3] [--shared-pids]  # heartbeats under 10,000-sample rounds, two builds alternated, CPU per thread',
    'node dist/bench/memory.js [--bots 1000] [--rows 400000] [--cli OTHER_DIST/src/cli.js]  # RSS and heaps per thread through a burst and 30 s after',
    'node dist/bench/llm.js --rows 10000000           # LLM accounting alone: rollups on/off, usage over 10M rows',
    'node dist/bench/alerts.js                        # the alerter section alone',
    'node dist/bench/postgres.js --write              # PostgreSQL ingest alone, written into this section in place',
    'node dist/bench/liveness.js --repeats 3          # hung actor: time to detect and to restart',
    'node dist/bench/self-protection.js --rows 50000  # SIGTERM with the write lock held; heartbeats with stdout wedged',
    '```',
    '',
    'Against a running monitor: `npx kissmon start` in one terminal, then',
    '`npx kissmon loadtest --bots 1000 --duration 15 --heartbeat-interval 1 --llm-rate 500` in another',
    '(`--json` for one JSON object; exit 0 = nothing lost and nobody falsely stale).',
    '',
  );
  return out.join('\n');
}

try {
  await main();
} catch (err) {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  killAll();
  process.exitCode = 1;
}
