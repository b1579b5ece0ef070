// LLM accounting costs (issue 12):
//   1. writer ingest rate with the rollups on vs off: the real db-writer thread on a real SQLite file,
//      fed through a Link as fast as it acknowledges (the writer alone, so the rollups' share is not
//      diluted by socket and parsing work); alternating runs, medians.
//   2. `kissmon usage --since 90d --by channel,model` on a database of 10 million llm_usage rows over
//      90 days, generated straight into SQLite (the real schema, rollups summed by the writer's own
//      RollupBatch), timed as the query inside a read connection and as the whole CLI process.
//
// Run: npx tsc -p . && node dist/bench/llm.js [--rows 10000000] [--ingest-rows 300000]
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { Link } from '../src/actors/link.js';
import type { LlmUsageRow, WriteItem } from '../src/actors/db-writer-messages.js';
import { isoTime, openReadDatabase, openWriteDatabase } from '../src/db/schema.js';
import { PriceTable, BUILTIN_PRICES } from '../src/llm/prices.js';
import { usageReport } from '../src/llm/report.js';
import { CLOCK_TICKS_PER_S } from '../src/proc.js';
import { RollupBatch } from '../src/llm/rollups.js';
import { CLI, TestDir } from '../test/helpers/monitor-process.js';
import { waitFor } from '../test/helpers/wait.js';
import { startWriter, stopWriters } from '../test/helpers/writer.js';

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
  };
  report: {
    rows: number;
    days: number;
    channels: number;
    models: number;
    features: number;
    generate_s: number;
    db_mb: number;
    hourly_rows: number;
    daily_rows: number;
    /** 1-minute load average while the query ran (this box has 2 cores, shared). */
    load_average: number;
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
  options: { rows?: number; ingestRows?: number; reps?: number } = {},
): Promise<LlmBenchResult> {
  const ingestRows = options.ingestRows ?? 300_000;
  const reps = options.reps ?? 3;
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
  await stopWriters();

  const rows = options.rows ?? 10_000_000;
  const days = 90;
  const dir = new TestDir();
  try {
    log(`generating ${rows.toLocaleString('en')} llm_usage rows over ${days} days`);
    const generateS = await generate(dir.db, rows, days);
    const read = openReadDatabase(dir.db);
    const count = async (table: 'llm_usage_hourly' | 'llm_usage_daily') =>
      Number(
        (
          await read
            .selectFrom(table)
            .select((eb) => eb.fn.countAll().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      );
    const [hourly, daily] = [await count('llm_usage_hourly'), await count('llm_usage_daily')];
    const queryMs: number[] = [];
    let groups = 0;
    let percentiles = '';
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      const report = await usageReport(read, { sinceMs: Date.now() - days * 86_400_000, by: ['channel', 'model'] });
      queryMs.push(Math.round((performance.now() - t) * 10) / 10);
      groups = report.rows.length;
      percentiles = report.percentiles;
    }
    await read.destroy();
    const loadAverage = Math.round(os.loadavg()[0] * 10) / 10;
    const cliMs: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      execFileSync(
        process.execPath,
        [CLI, 'usage', '--db', dir.db, '--since', '90d', '--by', 'channel,model', '--json'],
        { stdio: ['ignore', 'ignore', 'inherit'], maxBuffer: 64 * 1024 * 1024 },
      );
      cliMs.push(Math.round(performance.now() - t));
    }
    const result: LlmBenchResult['report'] = {
      rows,
      days,
      channels: CHANNELS,
      models: MODELS.length,
      features: FEATURES.length,
      generate_s: Math.round(generateS),
      db_mb: Math.round(statSync(dir.db).size / 1048576),
      hourly_rows: hourly,
      daily_rows: daily,
      load_average: loadAverage,
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
      },
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
    `Writer ingest with the rollups (and budgets) on vs off — hourly upserts per transaction, days folded from finished hours`,
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
    `\`kissmon usage --since 90d --by channel,model\` on ${f(x.rows)} llm_usage rows over ${x.days} days (${x.channels} channels, each with 2 of ${x.models} models and 2 of`,
    `${x.features} features; ${f(x.hourly_rows)} hourly and ${f(x.daily_rows)} daily rollup rows; database ${f(x.db_mb)} MB, generated in ${x.generate_s} s`,
    `straight into SQLite). ${x.groups} groups; percentiles ${x.percentiles} (the window holds more calls than \`llm.exactPercentileRows\`).`,
    `Load average while it ran: ${x.load_average} on ${os.cpus().length} cores (other sessions' tests shared the box; idle, expect several times faster).`,
    '',
    '| measured | median ms | runs ms | target |',
    '| --- | --- | --- | --- |',
    `| the report query (read connection, in-process) | ${x.query_median_ms} | ${x.query_ms.join(', ')} | |`,
    `| the whole \`kissmon usage … --json\` process (Node start-up included) | ${x.cli_median_ms} | ${x.cli_ms.join(', ')} | < 500 |`,
    '',
  ].join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const arg = (flag: string) => {
    const i = process.argv.indexOf(flag);
    return i === -1 ? undefined : Number(process.argv[i + 1]);
  };
  const result = await benchLlm({ rows: arg('--rows'), ingestRows: arg('--ingest-rows'), reps: arg('--reps') });
  process.stdout.write(`${formatLlmBench(result)}\n${JSON.stringify(result)}\n`);
}
