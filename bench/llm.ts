// LLM accounting costs (issue 12):
//   1. writer ingest rate with the rollups on vs off: the real db-writer thread on a real SQLite file,
//      fed through a Link as fast as it acknowledges (the writer alone, so the rollups' share is not
//      diluted by socket and parsing work); alternating runs, medians.
//      Also as concurrent pairs (two writer threads at once) and in-process interleaved (the store's
//      transactions off and on alternating in one thread), the measures a shared box disturbs least.
//   2. the same end to end: `kissmon start` (a child process) fed by loadtest bot processes on its
//      socket, timed until the rows are visible in llm_usage, with the monitor process's CPU.
//   3. `kissmon usage --since 90d --by channel,model` on a database of 10 million llm_usage rows over
//      90 days, generated straight into SQLite (the real schema, rollups summed by the writer's own
//      RollupBatch), timed as the query inside a read connection and as the whole CLI process.
//
// Run: npx tsc -p . && node dist/bench/llm.js [--rows 10000000] [--ingest-rows 600000] [--e2e-rows 200000] [--reps 3] [--pairs 3]
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { fromColumns, Link, toColumns } from '../src/actors/link.js';
import type { LlmUsageRow, WriteItem } from '../src/actors/db-writer-messages.js';
import { isoTime, openReadDatabase, openWriteDatabase } from '../src/db/schema.js';
import { openSqliteStore, type SqliteStore } from '../src/db/sqlite-store.js';
import { noRows } from '../src/db/store.js';
import { resolveConfig } from '../src/config.js';
import { PriceTable, BUILTIN_PRICES } from '../src/llm/prices.js';
import { usageReport } from '../src/llm/report.js';
import { CLOCK_TICKS_PER_S } from '../src/proc.js';
import { RollupBatch } from '../src/llm/rollups.js';
import { Fleet } from '../src/loadtest/fleet.js';
import { CLI, TestDir } from '../test/helpers/monitor-process.js';
import { sleep, waitFor } from '../test/helpers/wait.js';
import { procStats, RowCounter, startMonitor, type Server } from './harness.js';
import { startWriter, stopWriters, TEST_HOST } from '../test/helpers/writer.js';

export interface LlmBenchResult {
  ingest: {
    rows: number;
    /** Rows per second of wall clock, per run. */
    on_rows_per_s: number[];
    off_rows_per_s: number[];
    /** Rows per CPU-second of the writer's thread, per run; the cost is from their medians. */
    on_rows_per_cpu_s: number[];
    off_rows_per_cpu_s: number[];
    on_median: number;
    off_median: number;
    cost_pct: number;
    /** Concurrent pairs (ingestPair): rows per writer CPU-second, off and on, and each pair's cost. */
    pairs: { off: number; on: number; cost_pct: number }[];
    pairs_median_cost_pct: number;
    /** In-process interleaved (ingestInterleaved): µs of CPU per row, off and on, and each run's cost. */
    interleaved: { off_us: number; on_us: number; cost_pct: number }[];
    interleaved_median_cost_pct: number;
    /** 1-minute load average at the start and the end of the ingest measurements. */
    load_average_range: [number, number];
  };
  /** The whole monitor (`kissmon start`) fed by loadtest bot processes: socket → rows visible. */
  end_to_end: {
    rows: number;
    bots: number;
    on_rows_per_s: number[];
    off_rows_per_s: number[];
    /** The monitor process's CPU (all threads) per 1,000 rows. */
    on_cpu_ms_per_krow: number[];
    off_cpu_ms_per_krow: number[];
    on_median: number;
    off_median: number;
    /** From the medians of the monitor's CPU per row. */
    cost_pct: number;
    wall_cost_pct: number;
  } | null;
  report: {
    rows: number;
    days: number;
    channels: number;
    models: number;
    features: number;
    /** null: the database was reused (--keep-db). */
    generate_s: number | null;
    db_mb: number;
    hourly_rows: number;
    daily_rows: number;
    weekly_rows: number;
    /** 1-minute load average while the query ran (this box has 2 cores, shared). */
    load_average: number;
    load_average_range: [number, number];
    /** CPU time (user + system) of the query in-process and of the whole CLI process: what an idle box's wall clock would show. */
    query_cpu_ms: number[];
    query_cpu_median_ms: number;
    cli_cpu_ms: number[];
    cli_cpu_median_ms: number;
    query_ms: number[];
    query_median_ms: number;
    cli_ms: number[];
    cli_median_ms: number;
    groups: number;
    percentiles: string;
  };
}

const MODELS = [
  'gpt-4o',
  'gpt-4o-mini',
  'gpt-4.1-mini',
  'claude-sonnet-4-20250514',
  'gemini-2.5-flash',
  'mistral-small-latest',
];
const PROVIDERS = ['openai', 'openai', 'openai', 'anthropic', 'google', 'mistral'];
const FEATURES = ['chat', 'jokes', 'tts'];
const CHANNELS = 200;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const log = (msg: string) => process.stderr.write(`[bench llm ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

/**
 * A deterministic fleet call: `i` picks the channel; each bot uses its own two models and two
 * features (chat and one other), as a configured bot does, so a day has 200 × 2 × 2 active groups.
 */
function fleetCall(i: number, at: number): LlmUsageRow {
  const k = Math.imul(i, 2654435761) >>> 0; // a multiplicative hash: channel, model and feature independent of each other
  const c = k % CHANNELS;
  const m = (c + ((k >>> 12) & 1)) % MODELS.length;
  const row: LlmUsageRow = {
    type: 'llm_usage',
    at,
    channel: `ch_${c}`,
    model: MODELS[m],
    feature: (k >>> 13) & 1 ? 'chat' : FEATURES[1 + (c % 2)],
    provider: PROVIDERS[m],
    tokens_in: 200 + (i % 1800),
    tokens_out: 20 + (i % 400),
    tokens_cached: i % 3 === 0 ? 100 : 0,
    latency_ms: 150 + ((i * 37) % 4000),
  };
  if (i % 40 === 0) row.status = i % 80 === 0 ? 'rate_limited' : 'error';
  return row;
}

/** CPU time (ms) of this process's waited-for children: /proc/self/stat cutime + cstime (fields 16, 17). */
function childrenCpuMs(): number {
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[13]) + Number(fields[14])) * 1000) / CLOCK_TICKS_PER_S;
}

const threads = () => new Set(readdirSync('/proc/self/task'));
/** CPU time (ms) of these threads of this process: utime + stime, /proc/self/task/<tid>/stat fields 14 and 15. */
function threadCpuMs(tids: string[]): number {
  let ticks = 0;
  for (const tid of tids) {
    try {
      const fields = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8').split(') ')[1].split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // the thread is gone
    }
  }
  return (ticks * 1000) / CLOCK_TICKS_PER_S;
}

/**
 * One run: wall-clock rows/s, and rows per CPU-second of the writer's thread (the threads that
 * appeared when it started) — the figure that holds on a box shared with other work, where the
 * wall clock mostly measures the neighbours.
 */
export async function ingestRun(rollups: boolean, rows: number): Promise<{ wall: number; cpu: number }> {
  const dir = new TestDir();
  try {
    const link = new Link<WriteItem>('ingest', { maxPending: rows + 1 });
    const before = threads();
    const writer = await startWriter(dir.db, link, { llm: { rollups } });
    const writerThreads = [...threads()].filter((t) => !before.has(t));
    const cpu0 = threadCpuMs(writerThreads);
    const now = Date.now();
    const started = performance.now();
    // In slices, so the link posts batches while the writer commits (as ingest does).
    for (let i = 0; i < rows; i++) {
      link.send(fleetCall(i, now + Math.floor(i / 50)));
      if (i % 20_000 === 19_999) await new Promise((r) => setImmediate(r));
    }
    await waitFor('rows acknowledged', () => link.pending === 0, 300_000, 5);
    const seconds = (performance.now() - started) / 1000;
    const cpuSeconds = (threadCpuMs(writerThreads) - cpu0) / 1000;
    await writer.control.shutdown();
    await writer.stop();
    return { wall: Math.round(rows / seconds), cpu: Math.round(rows / cpuSeconds) };
  } finally {
    dir.remove();
  }
}

/**
 * Two writers at once, the rollups off in one and on in the other, each on its own file and Link and
 * fed the same rows alternately: both see the same neighbours at the same moment, which on a shared
 * box moves a thread's CPU per row more from one run to the next than the rollups do.
 */
export async function ingestPair(rows: number): Promise<{ off: number; on: number }> {
  const dirs = [new TestDir(), new TestDir()];
  try {
    const sides: { link: Link<WriteItem>; writer: Awaited<ReturnType<typeof startWriter>>; tids: string[] }[] = [];
    for (const [i, rollups] of [false, true].entries()) {
      const link = new Link<WriteItem>(`ingest-${i}`, { maxPending: rows + 1 });
      const before = threads();
      const writer = await startWriter(dirs[i].db, link, { llm: { rollups } });
      sides.push({ link, writer, tids: [...threads()].filter((t) => !before.has(t)) });
    }
    const cpu0 = sides.map((side) => threadCpuMs(side.tids));
    const now = Date.now();
    for (let i = 0; i < rows; i++) {
      const row = fleetCall(i, now + Math.floor(i / 50));
      for (const side of sides) side.link.send(row);
      if (i % 20_000 === 19_999) await new Promise((r) => setImmediate(r));
    }
    await waitFor('rows acknowledged', () => sides.every((side) => side.link.pending === 0), 300_000, 5);
    const perCpuS = sides.map((side, i) => Math.round(rows / ((threadCpuMs(side.tids) - cpu0[i]) / 1000)));
    for (const side of sides) {
      await side.writer.control.shutdown();
      await side.writer.stop();
    }
    return { off: perCpuS[0], on: perCpuS[1] };
  } finally {
    for (const dir of dirs) dir.remove();
  }
}

/** Rows per transaction in ingestInterleaved: what the bench's writer commits per transaction. */
const INTERLEAVED_BATCH = 20_000;

/**
 * The SQLite store's transactions (the writer's per-row path without the worker and the Link around
 * it) in this thread, one store with the rollups off and one with them on, interleaved batch by
 * batch (the order swapped every batch): both meet the same neighbours at the same moment, and each
 * transaction's CPU is its own (process.cpuUsage around it, one thread). The least noisy of the
 * measures on a shared box. Each batch goes through toColumns, a structured clone and fromColumns
 * first, as a Link delivers it (fresh strings per row), outside the timing.
 */
export async function ingestInterleaved(rows: number): Promise<{ offUs: number; onUs: number }> {
  const dir = new TestDir();
  const stores: { store: SqliteStore; us: number }[] = [];
  try {
    for (const rollups of [false, true]) {
      const path = join(dir.path, `interleaved-${rollups}.db`);
      const config = resolveConfig({ dbPath: path, logLevel: 'error', hostName: TEST_HOST }, { llm: { rollups } });
      stores.push({
        store: await openSqliteStore(path, config, { busyTimeoutMs: 1000, migrationBusyTimeoutMs: 1000 }),
        us: 0,
      });
    }
    const now = Date.now();
    const batches = Math.max(2, Math.round(rows / INTERLEAVED_BATCH));
    for (let b = 0; b < batches; b++) {
      const items: LlmUsageRow[] = [];
      for (let i = b * INTERLEAVED_BATCH; i < (b + 1) * INTERLEAVED_BATCH; i++)
        items.push(fleetCall(i, now + Math.floor(i / 50)));
      const columns = toColumns(items);
      for (const side of b % 2 === 0 ? stores : [...stores].reverse()) {
        const plan = { rows: fromColumns(structuredClone(columns)) as LlmUsageRow[], cursors: new Map([['bench', b]]) };
        const cpu = process.cpuUsage();
        await side.store.write(plan, noRows(), (err) => {
          throw err;
        });
        side.store.committed();
        const used = process.cpuUsage(cpu);
        if (b > 0) side.us += used.user + used.system; // the first batch warms the code up
      }
    }
    const perRow = (us: number) => Math.round((us / ((batches - 1) * INTERLEAVED_BATCH)) * 1000) / 1000;
    return { offUs: perRow(stores[0].us), onUs: perRow(stores[1].us) };
  } finally {
    for (const side of stores) await side.store.handle.db.destroy();
    dir.remove();
  }
}

const E2E_BOTS = 1_000;

/**
 * One end-to-end run: `kissmon start` (rollups on or off through a config file), 1,000 persistent
 * loadtest bots in 2 processes writing `rows` llm_usage lines as fast as the monitor reads them; time
 * from the burst until the last row is visible in llm_usage (polled every 10 ms), and the monitor
 * process's CPU over that time.
 */
export async function endToEndRun(rollups: boolean, rows: number): Promise<{ wall: number; cpuPerKrow: number }> {
  const dir = new TestDir();
  let server: Server | null = null;
  let fleet: Fleet | null = null;
  let counter: RowCounter | null = null;
  try {
    const config = join(dir.path, 'config.json');
    writeFileSync(config, JSON.stringify({ llm: { rollups } }));
    server = await startMonitor(dir, ['--config', config]);
    fleet = await Fleet.start({
      socket: server.socket,
      prefix: 'e2e',
      bots: E2E_BOTS,
      mode: 'persistent',
      processes: 2,
      heartbeatMs: 30_000,
      oneshotConcurrency: 64,
    });
    if (!(await fleet.waitConnected(60_000))) throw new Error('the fleet did not connect within 60 s');
    await sleep(1_000); // registrations applied
    counter = new RowCounter(server.db);
    const before = counter.count();
    const s0 = procStats(server.pid);
    const t0 = performance.now();
    let burstOver = false;
    void fleet.burst(rows, 300_000).finally(() => (burstOver = true));
    let landed = 0;
    let lastChangeAt = t0;
    while (landed < rows) {
      await sleep(10);
      const n = counter.count() - before;
      if (n !== landed) [landed, lastChangeAt] = [n, performance.now()];
      if (burstOver && performance.now() - lastChangeAt > 3_000) break;
      if (performance.now() - t0 > 300_000) throw new Error('end-to-end run did not finish within 300 s');
    }
    const cpuMs = procStats(server.pid).cpuMs - s0.cpuMs;
    return {
      wall: Math.round(landed / ((lastChangeAt - t0) / 1000)),
      cpuPerKrow: Math.round((cpuMs / landed) * 1000 * 10) / 10,
    };
  } finally {
    counter?.close();
    await fleet?.end(5_000);
    await server?.stop();
    dir.remove();
  }
}

/** 10M rows over 90 days into a fresh database: raw rows with a reused prepared insert, rollups per chunk. */
export async function generate(dbPath: string, rows: number, days: number): Promise<number> {
  const started = performance.now();
  const handle = await openWriteDatabase(dbPath, { busyTimeoutMs: 1000 });
  const { sqlite } = handle;
  sqlite.pragma('synchronous = OFF'); // bench data only
  const prices = new PriceTable(BUILTIN_PRICES);
  const insert =
    sqlite.prepare(`INSERT INTO llm_usage (ts, channel, model, feature, tokens_in, tokens_out, latency_ms, cost_usd, tokens_cached, provider, status)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
  const rollups = new RollupBatch(sqlite);
  const end = Date.now() - 60_000;
  const start = end - days * 86_400_000;
  const step = (end - start) / rows;
  const CHUNK = 200_000;
  for (let from = 0; from < rows; from += CHUNK) {
    sqlite.transaction(() => {
      for (let i = from; i < Math.min(rows, from + CHUNK); i++) {
        const at = Math.floor(start + i * step);
        const row = fleetCall(i, at);
        const cost = prices.cost(row.model, at, row);
        insert.run(
          isoTime(at),
          row.channel,
          row.model,
          row.feature,
          row.tokens_in,
          row.tokens_out,
          row.latency_ms,
          cost,
          row.tokens_cached ?? null,
          row.provider ?? null,
          row.status ?? null,
        );
        rollups.add(row, cost);
      }
      rollups.write();
    })();
    if (from % 2_000_000 === 0) log(`  generated ${(from / 1e6).toFixed(1)}M rows`);
  }
  await handle.db.destroy();
  return (performance.now() - started) / 1000;
}

export async function benchLlm(
  options: {
    rows?: number;
    ingestRows?: number;
    reps?: number;
    e2eRows?: number;
    pairs?: number;
    keepDb?: string;
  } = {},
): Promise<LlmBenchResult> {
  // 600,000 rows: a run of several CPU-seconds, so a neighbour's burst is a small part of it.
  const ingestRows = options.ingestRows ?? 600_000;
  const e2eRows = options.e2eRows ?? 200_000;
  const reps = options.reps ?? 3;
  const ingestLoad0 = os.loadavg()[0];
  const on: { wall: number; cpu: number }[] = [];
  const off: { wall: number; cpu: number }[] = [];
  for (let rep = 1; rep <= reps; rep++) {
    for (const rollups of [false, true]) {
      const rate = await ingestRun(rollups, ingestRows);
      (rollups ? on : off).push(rate);
      log(
        `ingest ${rollups ? 'rollups on ' : 'rollups off'} (${rep}/${reps}): ${rate.wall.toLocaleString('en')} rows/s, ${rate.cpu.toLocaleString('en')} rows per writer CPU-second`,
      );
    }
  }
  const pairs: { off: number; on: number; cost_pct: number }[] = [];
  for (let rep = 1; rep <= (options.pairs ?? reps); rep++) {
    const pair = await ingestPair(ingestRows);
    const costPct = Math.round(((pair.off - pair.on) / pair.off) * 1000) / 10;
    pairs.push({ ...pair, cost_pct: costPct });
    log(
      `ingest pair (${rep}): rollups off ${pair.off.toLocaleString('en')}, on ${pair.on.toLocaleString('en')} rows per writer CPU-second at the same time: ${costPct} %`,
    );
  }
  await stopWriters();
  const interleaved: { off_us: number; on_us: number; cost_pct: number }[] = [];
  for (let rep = 1; rep <= (options.pairs ?? reps); rep++) {
    const run = await ingestInterleaved(ingestRows);
    const costPct = Math.round((1 - run.offUs / run.onUs) * 1000) / 10; // as rows per CPU-second, like the others
    interleaved.push({ off_us: run.offUs, on_us: run.onUs, cost_pct: costPct });
    log(
      `ingest interleaved in-process (${rep}): rollups off ${run.offUs} µs, on ${run.onUs} µs CPU per row: ${costPct} %`,
    );
  }
  const ingestLoad1 = os.loadavg()[0];
  const e2eOn: { wall: number; cpuPerKrow: number }[] = [];
  const e2eOff: { wall: number; cpuPerKrow: number }[] = [];
  for (let rep = 1; e2eRows > 0 && rep <= reps; rep++) {
    for (const rollups of [false, true]) {
      const run = await endToEndRun(rollups, e2eRows);
      (rollups ? e2eOn : e2eOff).push(run);
      log(
        `end to end ${rollups ? 'rollups on ' : 'rollups off'} (${rep}/${reps}): ${run.wall.toLocaleString('en')} rows/s, monitor CPU ${run.cpuPerKrow} ms per 1,000 rows`,
      );
    }
  }

  const rows = options.rows ?? 10_000_000;
  const days = 90;
  const dir = new TestDir();
  try {
    // --keep-db PATH: generate there once and reuse it on the next runs (the same generator's output).
    const dbPath = options.keepDb ?? dir.db;
    let generateS: number | null = null;
    if (options.keepDb !== undefined && existsSync(options.keepDb)) log(`reusing ${options.keepDb}`);
    else {
      log(`generating ${rows.toLocaleString('en')} llm_usage rows over ${days} days`);
      generateS = await generate(dbPath, rows, days);
    }
    const read = openReadDatabase(dbPath);
    const count = async (table: 'llm_usage_hourly' | 'llm_usage_daily' | 'llm_usage_weekly') =>
      Number(
        (
          await read
            .selectFrom(table)
            .select((eb) => eb.fn.countAll().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      );
    const [hourly, daily, weekly] = [
      await count('llm_usage_hourly'),
      await count('llm_usage_daily'),
      await count('llm_usage_weekly'),
    ];
    const queryMs: number[] = [];
    let groups = 0;
    let percentiles = '';
    const queryCpuMs: number[] = [];
    const loads: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      const c = process.cpuUsage();
      const report = await usageReport(read, { sinceMs: Date.now() - days * 86_400_000, by: ['channel', 'model'] });
      queryMs.push(Math.round((performance.now() - t) * 10) / 10);
      const used = process.cpuUsage(c);
      queryCpuMs.push(Math.round((used.user + used.system) / 1000));
      loads.push(os.loadavg()[0]);
      groups = report.rows.length;
      percentiles = report.percentiles;
    }
    await read.destroy();
    const cliMs: number[] = [];
    const cliCpuMs: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      const c = childrenCpuMs();
      execFileSync(
        process.execPath,
        [CLI, 'usage', '--db', dbPath, '--since', '90d', '--by', 'channel,model', '--json'],
        { stdio: ['ignore', 'ignore', 'inherit'], maxBuffer: 64 * 1024 * 1024 },
      );
      cliMs.push(Math.round(performance.now() - t));
      cliCpuMs.push(Math.round(childrenCpuMs() - c));
      loads.push(os.loadavg()[0]);
    }
    const result: LlmBenchResult['report'] = {
      rows,
      days,
      channels: CHANNELS,
      models: MODELS.length,
      features: FEATURES.length,
      generate_s: generateS === null ? null : Math.round(generateS),
      db_mb: Math.round(statSync(dbPath).size / 1048576),
      hourly_rows: hourly,
      daily_rows: daily,
      weekly_rows: weekly,
      load_average: Math.round(median(loads) * 10) / 10,
      load_average_range: [Math.min(...loads), Math.max(...loads)].map((l) => Math.round(l * 10) / 10) as [
        number,
        number,
      ],
      query_cpu_ms: queryCpuMs,
      query_cpu_median_ms: median(queryCpuMs),
      cli_cpu_ms: cliCpuMs,
      cli_cpu_median_ms: median(cliCpuMs),
      query_ms: queryMs,
      query_median_ms: median(queryMs),
      cli_ms: cliMs,
      cli_median_ms: median(cliMs),
      groups,
      percentiles,
    };
    log(
      `usage --since 90d --by channel,model: query ${result.query_median_ms} ms, CLI ${result.cli_median_ms} ms (${groups} groups, percentiles ${percentiles})`,
    );
    const onMedian = median(on.map((r) => r.cpu));
    const offMedian = median(off.map((r) => r.cpu));
    return {
      ingest: {
        rows: ingestRows,
        on_rows_per_s: on.map((r) => r.wall),
        off_rows_per_s: off.map((r) => r.wall),
        on_rows_per_cpu_s: on.map((r) => r.cpu),
        off_rows_per_cpu_s: off.map((r) => r.cpu),
        on_median: onMedian,
        off_median: offMedian,
        cost_pct: Math.round(((offMedian - onMedian) / offMedian) * 1000) / 10,
        pairs,
        pairs_median_cost_pct: median(pairs.map((p) => p.cost_pct)),
        interleaved,
        interleaved_median_cost_pct: median(interleaved.map((r) => r.cost_pct)),
        load_average_range: [ingestLoad0, ingestLoad1].map((l) => Math.round(l * 10) / 10) as [number, number],
      },
      end_to_end:
        e2eOn.length === 0
          ? null
          : (() => {
              const on = median(e2eOn.map((r) => r.cpuPerKrow));
              const off = median(e2eOff.map((r) => r.cpuPerKrow));
              const onWall = median(e2eOn.map((r) => r.wall));
              const offWall = median(e2eOff.map((r) => r.wall));
              return {
                rows: e2eRows,
                bots: E2E_BOTS,
                on_rows_per_s: e2eOn.map((r) => r.wall),
                off_rows_per_s: e2eOff.map((r) => r.wall),
                on_cpu_ms_per_krow: e2eOn.map((r) => r.cpuPerKrow),
                off_cpu_ms_per_krow: e2eOff.map((r) => r.cpuPerKrow),
                on_median: onWall,
                off_median: offWall,
                cost_pct: Math.round(((on - off) / off) * 1000) / 10,
                wall_cost_pct: Math.round(((offWall - onWall) / offWall) * 1000) / 10,
              };
            })(),
      report: result,
    };
  } finally {
    rmSync(join(dir.path), { recursive: true, force: true });
  }
}

export function formatLlmBench(r: LlmBenchResult): string {
  const f = (n: number) => n.toLocaleString('en');
  const x = r.report;
  return [
    '## LLM accounting',
    '',
    `Writer ingest with the rollups (and budgets) on vs off — hourly upserts per transaction, days folded from finished hours, weeks from finished days`,
    `(src/llm/rollups.ts): the db-writer thread alone on a real SQLite file,`,
    `${f(r.ingest.rows)} llm_usage rows (${CHANNELS} channels, each with its 2 of ${MODELS.length} models and 2 of ${FEATURES.length} features; providers, 2.5 % errors) sent`,
    'through a Link as fast as it acknowledges; runs alternate off/on (`bench/llm.ts`). The cost is measured in rows per',
    "CPU-second of the writer's thread (/proc/self/task/<tid>/stat), which a busy shared box disturbs far less than the",
    'wall clock (both are shown).',
    '',
    '| rollups | rows per writer CPU-s (median) | runs | wall-clock rows/s, runs | cost |',
    '| --- | --- | --- | --- | --- |',
    `| off | ${f(r.ingest.off_median)} | ${r.ingest.off_rows_per_cpu_s.map(f).join(', ')} | ${r.ingest.off_rows_per_s.map(f).join(', ')} | |`,
    `| on | ${f(r.ingest.on_median)} | ${r.ingest.on_rows_per_cpu_s.map(f).join(', ')} | ${r.ingest.on_rows_per_s.map(f).join(', ')} | ${r.ingest.cost_pct} % (target < 15 %) |`,
    '',
    `The same as concurrent pairs (a writer with the rollups off and one with them on, running at the same time on the same`,
    `rows, so both meet the same neighbours): rows per writer CPU-second off / on, per pair: ${r.ingest.pairs.map((p) => `${f(p.off)} / ${f(p.on)} (${p.cost_pct} %)`).join('; ')};`,
    `median cost **${r.ingest.pairs_median_cost_pct} %** (target < 15 %).`,
    '',
    `In-process interleaved (the SQLite store's transactions of ${f(INTERLEAVED_BATCH)} rows, off and on alternating batch by batch in one thread; CPU per`,
    `transaction, process.cpuUsage): µs of CPU per row off / on, per run: ${r.ingest.interleaved.map((x) => `${x.off_us} / ${x.on_us} (${x.cost_pct} %)`).join('; ')};`,
    `median cost **${r.ingest.interleaved_median_cost_pct} %** (target < 15 %). Load average during the ingest measurements: ${r.ingest.load_average_range.join(' → ')}.`,
    '',
    ...(r.end_to_end
      ? [
          `End to end — \`kissmon start\` fed by ${f(r.end_to_end.bots)} persistent loadtest bots (2 processes) on its socket, ${f(r.end_to_end.rows)} llm_usage rows`,
          'as fast as it reads them, timed until the last row is visible in llm_usage; CPU is the monitor process, all threads:',
          '',
          '| rollups | rows/s (median) | runs | monitor CPU ms per 1,000 rows, runs | cost |',
          '| --- | --- | --- | --- | --- |',
          `| off | ${f(r.end_to_end.off_median)} | ${r.end_to_end.off_rows_per_s.map(f).join(', ')} | ${r.end_to_end.off_cpu_ms_per_krow.join(', ')} | |`,
          `| on | ${f(r.end_to_end.on_median)} | ${r.end_to_end.on_rows_per_s.map(f).join(', ')} | ${r.end_to_end.on_cpu_ms_per_krow.join(', ')} | ${r.end_to_end.cost_pct} % CPU per row, ${r.end_to_end.wall_cost_pct} % rows/s |`,
          '',
        ]
      : []),
    `\`kissmon usage --since 90d --by channel,model\` on ${f(x.rows)} llm_usage rows over ${x.days} days (${x.channels} channels, each with 2 of ${x.models} models and 2 of`,
    `${x.features} features; ${f(x.hourly_rows)} hourly, ${f(x.daily_rows)} daily and ${f(x.weekly_rows)} weekly rollup rows; database ${f(x.db_mb)} MB, ${x.generate_s === null ? 'generated by an earlier run of this bench (`--keep-db`)' : `generated in ${x.generate_s} s`}`,
    `straight into SQLite). ${x.groups} groups; percentiles ${x.percentiles} (the window holds more calls than \`llm.exactPercentileRows\`).`,
    `Load average while it ran: ${x.load_average} (${x.load_average_range.join('–')}) on ${os.cpus().length} cores: other sessions shared the box, so the wall clock is mostly`,
    "the neighbours'; the CPU time (user + system) is about what an idle box's wall clock shows (the database in the page cache).",
    '',
    '| measured | wall median ms | wall runs ms | CPU median ms | CPU runs ms | target |',
    '| --- | --- | --- | --- | --- | --- |',
    `| the report query (read connection, in-process) | ${x.query_median_ms} | ${x.query_ms.join(', ')} | ${x.query_cpu_median_ms} | ${x.query_cpu_ms.join(', ')} | |`,
    `| the whole \`kissmon usage … --json\` process (Node start-up included) | ${x.cli_median_ms} | ${x.cli_ms.join(', ')} | ${x.cli_cpu_median_ms} | ${x.cli_cpu_ms.join(', ')} | < 500 |`,
    '',
  ].join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const arg = (flag: string) => {
    const i = process.argv.indexOf(flag);
    return i === -1 ? undefined : Number(process.argv[i + 1]);
  };
  const result = await benchLlm({
    rows: arg('--rows'),
    ingestRows: arg('--ingest-rows'),
    reps: arg('--reps'),
    e2eRows: arg('--e2e-rows'),
    pairs: arg('--pairs'),
    keepDb: process.argv.includes('--keep-db') ? process.argv[process.argv.indexOf('--keep-db') + 1] : undefined,
  });
  process.stdout.write(`${formatLlmBench(result)}\n${JSON.stringify(result)}\n`);
}
