// Property: the hourly, daily and weekly rollups the writer keeps equal the aggregation of the raw rows,
// for random rows (seeded, so a failure reproduces) sent through the real writer in many batches,
// with re-sent ids (stored once) among them; and reports from rollups equal reports from raw rows.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { Link } from '../src/actors/link.js';
import type { LlmUsageRow, WriteItem } from '../src/actors/db-writer-messages.js';
import { LLM_CALL_STATUSES } from '../src/protocol/messages.js';
import { usageReport, type UsageFigures } from '../src/llm/report.js';
import { DAILY_UNTIL_KEY, foldSql, RollupBatch, weekOfSql, WEEKLY_UNTIL_KEY } from '../src/llm/rollups.js';
import { openReadDatabase, openWriteDatabase } from '../src/db/schema.js';
import { openSqliteStore } from '../src/db/sqlite-store.js';
import { resolveConfig } from '../src/config.js';
import { UsageAccounting } from '../src/llm/accounting.js';
import { addTo, bucketOf, BUCKETS, emptyHistogram } from '../src/llm/histogram.js';
import { waitFor } from './helpers/wait.js';
import { startWriter, stopWriters } from './helpers/writer.js';
import { openBackend } from './helpers/backends.js';

const dir = mkdtempSync(join(tmpdir(), 'kissmon-rollups-'));
after(async () => {
  await stopWriters();
  rmSync(dir, { recursive: true, force: true });
});

/** mulberry32: a small seeded generator, so the rows are the same on every run. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEED = 20261201;
const START = Date.UTC(2026, 10, 28, 21, 17); // three days and a bit, across UTC day boundaries
const SPAN_MS = 3.2 * 86_400_000;

function randomRows(n: number, start = START, span = SPAN_MS): LlmUsageRow[] {
  const r = random(SEED);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)];
  return Array.from({ length: n }, (_, i) => {
    const tokens_in = Math.floor(r() * 5000);
    const tokens_out = Math.floor(r() * 2000);
    const row: LlmUsageRow = {
      type: 'llm_usage',
      at: start + Math.floor(r() * span),
      channel: pick(['alpha', 'beta', 'gamma', 'delta']),
      model: pick(['gpt-4o', 'gpt-4o-mini', 'claude-sonnet-4-20250514', 'unknown-model']),
      feature: pick(['chat', 'jokes', 'tts']),
      tokens_in,
      tokens_out,
      latency_ms: r() < 0.1 ? null : Math.round(r() * r() * 20_000 * 100) / 100,
    };
    if (r() < 0.7) row.tokens_cached = Math.floor(r() * tokens_in);
    if (r() < 0.3) row.tokens_reasoning = Math.floor(r() * tokens_out);
    if (r() < 0.8) row.provider = pick(['openai', 'anthropic']);
    if (r() < 0.5) row.status = pick(LLM_CALL_STATUSES);
    if (r() < 0.2) row.id = `call-${Math.floor(r() * 300)}`; // repeats: stored once, rolled up once
    void i;
    return row;
  });
}

const SUMS = `count(*) AS calls, sum(tokens_in) AS tokens_in, sum(tokens_out) AS tokens_out, coalesce(sum(tokens_cached), 0) AS tokens_cached,
  coalesce(sum(tokens_reasoning), 0) AS tokens_reasoning, round(total(cost_usd), 9) AS cost_usd, count(*) - count(cost_usd) AS unpriced_calls,
  count(latency_ms) AS latency_count, round(total(latency_ms), 6) AS latency_sum, min(latency_ms) AS latency_min, max(latency_ms) AS latency_max`;
const KEY = "channel, model, feature, coalesce(provider, '') AS provider, coalesce(status, 'ok') AS status";

test('hourly, daily and weekly rollups equal the raw aggregation of random rows [postgres]', async (t) => {
  const store = await openBackend(t, 'postgres');
  if (!store) return;
  const link = new Link<WriteItem>('ingest', { maxBatch: 97 }); // many small transactions
  await startWriter(store.dbPath, link, { ...store.overrides, writer: { maxRowsPerTransaction: 500 } });
  const rows = randomRows(6000);
  for (const row of rows) link.send(row);
  await waitFor('rows committed', () => link.pending === 0, 60_000);
  const stored = await store.count('llm_usage');
  assert.ok(stored > 5000 && stored < rows.length, `some ids repeated, the rest stored (${stored})`);
  // PostgreSQL keeps every table current (no fold): each equals the raw rows grouped by its bucket.
  const sums = (calls: string, col: (c: string) => string, latency: string) =>
    `${calls} AS calls, sum(${col('tokens_in')}) AS tokens_in, sum(${col('tokens_out')}) AS tokens_out,
    coalesce(sum(${col('tokens_cached')}), 0) AS tokens_cached, coalesce(sum(${col('tokens_reasoning')}), 0) AS tokens_reasoning,
    round(coalesce(sum(cost_usd), 0)::numeric, 9) AS cost_usd, ${latency}`;
  for (const [table, bucket] of [
    ['llm_usage_hourly', "substr(ts, 1, 13) || ':00:00.000Z'"],
    ['llm_usage_daily', "substr(ts, 1, 10) || 'T00:00:00.000Z'"],
    ['llm_usage_weekly', `to_char(date_trunc('week', ts::timestamp), 'YYYY-MM-DD"T00:00:00.000Z"')`],
  ] as const) {
    const raw: Record<string, unknown>[] = await store.rows(
      `SELECT ${bucket} AS ts, channel, model, feature, coalesce(provider, '') AS provider, coalesce(status, 'ok') AS status,
        ${sums('count(*)', (c) => c, `count(*) - count(cost_usd) AS unpriced_calls, count(latency_ms) AS latency_count, round(coalesce(sum(latency_ms), 0)::numeric, 6) AS latency_sum, min(latency_ms) AS latency_min, max(latency_ms) AS latency_max`)}
      FROM llm_usage GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6`,
    );
    const rolled: Record<string, unknown>[] = await store.rows(
      `SELECT ts, channel, model, feature, provider, status,
        ${sums('sum(calls)', (c) => c, `sum(unpriced_calls) AS unpriced_calls, sum(latency_count) AS latency_count, round(sum(latency_sum)::numeric, 6) AS latency_sum, min(latency_min) AS latency_min, max(latency_max) AS latency_max`)}
      FROM ${table} WHERE host = 'test-host' GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6`,
    );
    assert.ok(raw.length > 50, `${table}: enough groups to mean something (${raw.length})`);
    assert.deepEqual(rolled, raw, table);
  }
});

test('hourly and daily rollups equal the raw aggregation of random rows', async () => {
  const dbPath = join(dir, 'monitor.db');
  const link = new Link<WriteItem>('ingest', { maxBatch: 97 }); // many small transactions
  await startWriter(dbPath, link, { writer: { maxRowsPerTransaction: 500 } });
  const rows = randomRows(6000);
  for (const row of rows) link.send(row);
  await waitFor('rows committed', () => link.pending === 0, 60_000);

  const db = new BetterSqlite3(dbPath, { readonly: true });
  after(() => db.close());
  const stored = (db.prepare('SELECT count(*) AS n FROM llm_usage').get() as { n: number }).n;
  assert.ok(stored > 5000 && stored < rows.length, `some ids repeated, the rest stored (${stored})`);
  // The days hold the hours before the fold watermark; the hours after it are summed to their days here.
  const until = (
    db.prepare(`SELECT value FROM monitor_state WHERE key = '${DAILY_UNTIL_KEY}'`).get() as { value: string }
  ).value;
  assert.ok(
    rows.some((r) => new Date(r.at).toISOString() < until) && rows.some((r) => new Date(r.at).toISOString() >= until),
    `rows on both sides of ${until}`,
  );
  const rolledSums = `sum(calls) AS calls, sum(tokens_in) AS tokens_in, sum(tokens_out) AS tokens_out, sum(tokens_cached) AS tokens_cached,
      sum(tokens_reasoning) AS tokens_reasoning, round(total(cost_usd), 9) AS cost_usd, sum(unpriced_calls) AS unpriced_calls,
      sum(latency_count) AS latency_count, round(total(latency_sum), 6) AS latency_sum, min(latency_min) AS latency_min, max(latency_max) AS latency_max`;
  const sources = {
    llm_usage_hourly: 'llm_usage_hourly',
    llm_usage_daily: `SELECT * FROM llm_usage_daily UNION ALL SELECT substr(ts, 1, 10) || 'T00:00:00.000Z' AS ts, channel, model, feature, provider, status,
      calls, tokens_in, tokens_out, tokens_cached, tokens_reasoning, cost_usd, unpriced_calls, latency_count, latency_sum, latency_min, latency_max,
      latency_hist, host FROM llm_usage_hourly WHERE ts >= '${until}'`,
  };
  for (const [table, bucket] of [
    ['llm_usage_hourly', "substr(ts, 1, 13) || ':00:00.000Z'"],
    ['llm_usage_daily', "substr(ts, 1, 10) || 'T00:00:00.000Z'"],
  ] as const) {
    const raw = db
      .prepare(
        `SELECT ${bucket} AS ts, ${KEY}, ${SUMS} FROM llm_usage GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6`,
      )
      .all();
    const rolled = db
      .prepare(
        `SELECT ts, channel, model, feature, provider, status, ${rolledSums}
      FROM (${sources[table]}) GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6`,
      )
      .all();
    assert.ok(raw.length > 50, `${table}: enough groups to mean something (${raw.length})`);
    assert.deepEqual(rolled, raw, table);
    // Each histogram holds exactly the calls that reported a latency.
    const counts = db.prepare(`SELECT latency_count, latency_hist FROM ${table}`).all() as {
      latency_count: number;
      latency_hist: Buffer | null;
    }[];
    for (const c of counts) {
      let n = 0;
      for (let i = 0; c.latency_hist && i < c.latency_hist.length; i += 5) n += c.latency_hist.readUInt32LE(i + 1);
      assert.equal(n, c.latency_count);
    }
  }

  // Reports: rollups and raw rows agree on everything but the percentiles' method.
  const read = openReadDatabase(dbPath);
  after(() => read.destroy());
  const window = { sinceMs: Date.UTC(2026, 10, 28, 21), untilMs: Date.UTC(2026, 11, 2, 3) }; // whole hours: both read the same rows
  const strip = ({ latency_p50_ms: _a, latency_p95_ms: _b, latency_p99_ms: _c, ...f }: UsageFigures) => f;
  for (const by of [['channel', 'model'], ['day'], ['status', 'provider']] as const) {
    const fromRollups = await usageReport(read, { ...window, by: [...by] });
    const fromRaw = await usageReport(read, { ...window, by: [...by], source: 'raw' });
    assert.equal(fromRollups.percentiles, 'exact', 'a small window: exact percentiles from the raw rows');
    assert.deepEqual(fromRollups.rows, fromRaw.rows, by.join(','));
    const estimated = await usageReport(read, { ...window, by: [...by], exactMaxCalls: 1 });
    assert.equal(estimated.percentiles, 'estimated');
    assert.deepEqual(estimated.rows.map(strip), fromRaw.rows.map(strip));
    // Within one histogram bucket (25 % wide) of the exact value.
    for (const [i, row] of estimated.rows.entries()) {
      for (const p of ['latency_p50_ms', 'latency_p95_ms'] as const) {
        const exact = fromRaw.rows[i][p]!;
        assert.ok(
          Math.abs(row[p]! - exact) <= 0.25 * exact + 1,
          `${by.join(',')}/${row.key} ${p}: ${row[p]} vs ${exact}`,
        );
      }
    }
  }
});

test('retention: raw rows go after usageDays while the rollups stay; rollups have their own usageRollupDays', async () => {
  const dbPath = join(dir, 'retention.db');
  const link = new Link<WriteItem>('ingest-retention');
  const old = Date.now() - 40 * 86_400_000;
  const ancient = Date.now() - 400 * 86_400_000;
  const writer = await startWriter(dbPath, link, { retention: { usageDays: 30, usageRollupDays: 365 } });
  for (const at of [ancient, old, Date.now()])
    link.send({
      type: 'llm_usage',
      at,
      channel: 'r',
      model: 'gpt-4o',
      feature: 'f',
      tokens_in: 1,
      tokens_out: 1,
      latency_ms: 5,
    });
  await waitFor('rows committed', () => link.pending === 0);
  const result = await writer.control.prune();
  assert.deepEqual(
    [result.llm_usage, result.llm_usage_hourly, result.llm_usage_daily, result.llm_usage_weekly],
    [2, 1, 1, 1],
  );
  const db = new BetterSqlite3(dbPath, { readonly: true });
  after(() => db.close());
  const calls = (table: string) =>
    (db.prepare(`SELECT coalesce(sum(calls), 0) AS n FROM ${table}`).get() as { n: number }).n;
  assert.equal((db.prepare('SELECT count(*) AS n FROM llm_usage').get() as { n: number }).n, 1);
  assert.equal(calls('llm_usage_hourly'), 2, 'the 40-day-old call is still in the rollups');
  assert.equal(calls('llm_usage_daily'), 1, "the 40-day-old call is in its day; this hour's is not folded yet");
});

test('the daily rollups are folded from finished hours as the clock moves, late rows go straight into their day', async () => {
  const dbPath = join(dir, 'fold.db');
  const handle = await openWriteDatabase(dbPath, { busyTimeoutMs: 1000 });
  after(() => handle.db.destroy());
  const { sqlite } = handle;
  let now = START;
  const batch = new RollupBatch(sqlite, () => now);
  const rows = randomRows(3000).sort((a, b) => a.at - b.at);
  const watermarks = new Set<string>();
  const untilNow = () =>
    (sqlite.prepare(`SELECT value FROM monitor_state WHERE key = '${DAILY_UNTIL_KEY}'`).get() as { value: string })
      .value;
  const weekWatermarks = new Set<string>();
  const weekUntilNow = () =>
    (sqlite.prepare(`SELECT value FROM monitor_state WHERE key = '${WEEKLY_UNTIL_KEY}'`).get() as { value?: string })
      ?.value ?? '';
  // In time order, 20 rows a transaction (~1 hour), the clock at the last row's time; then 200 late rows of the first day.
  for (let i = 0; i < rows.length; i += 20) {
    const slice = rows.slice(i, i + 20);
    now = slice.at(-1)!.at;
    sqlite.transaction(() => {
      for (const row of slice) batch.add(row, 0.5);
      batch.write();
    })();
    watermarks.add(untilNow());
    weekWatermarks.add(weekUntilNow());
  }
  assert.ok(watermarks.size > 48, `the watermark moved hour by hour (${watermarks.size} values)`);
  assert.deepEqual(
    [...weekWatermarks],
    ['2026-11-28', '2026-11-29', '2026-11-30', '2026-12-01', '2026-12-02'].map((d) => `${d}T00:00:00.000Z`),
    'the weekly watermark moved day by day, across the Sunday-Monday boundary',
  );
  // Saturday 28 November: its day is folded into the week of Monday 23 November already.
  const late = randomRows(200).map((r) => ({ ...r, at: START + (r.at % 3_600_000) }));
  sqlite.transaction(() => {
    for (const row of late) batch.add(row, 0.5);
    batch.write();
  })();
  const until = untilNow();
  assert.equal(until, new Date(Math.floor(now / 3_600_000) * 3_600_000).toISOString());
  const sums = `sum(calls), sum(tokens_in), sum(tokens_out), sum(tokens_cached), sum(tokens_reasoning), round(total(cost_usd), 6), sum(unpriced_calls),
    sum(latency_count), round(total(latency_sum), 6), min(latency_min), max(latency_max), kissmon_hist_agg(latency_hist)`;
  const group = 'GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6';
  const fromHours = sqlite
    .prepare(
      `SELECT substr(ts, 1, 10) || 'T00:00:00.000Z', channel, model, feature, provider, status, ${sums}
    FROM llm_usage_hourly WHERE ts < ? ${group}`,
    )
    .raw()
    .all(until);
  const days = sqlite
    .prepare(`SELECT ts, channel, model, feature, provider, status, ${sums} FROM llm_usage_daily ${group}`)
    .raw()
    .all();
  assert.ok(days.length > 100, `enough day keys (${days.length})`);
  assert.deepEqual(days, fromHours, 'each day = its hours before the watermark, histograms included');
  const calls = (q: string) => (sqlite.prepare(q).get() as { n: number }).n;
  assert.equal(calls('SELECT sum(calls) AS n FROM llm_usage_hourly'), rows.length + late.length);
  assert.equal(
    calls('SELECT sum(calls) AS n FROM llm_usage_daily') +
      calls(`SELECT coalesce(sum(calls), 0) AS n FROM llm_usage_hourly WHERE ts >= '${until}'`),
    rows.length + late.length,
    'every call once: in its day, or in an hour not folded yet',
  );
  assert.equal(weekUntilNow(), '2026-12-02T00:00:00.000Z');
  assert.deepEqual(
    weeklyMismatches(sqlite),
    [],
    'each week = its days before the weekly watermark, the late rows in theirs',
  );
  assert.equal(
    calls(`SELECT sum(calls) AS n FROM llm_usage_weekly WHERE ts = '2026-11-23T00:00:00.000Z'`),
    calls(`SELECT sum(calls) AS n FROM llm_usage_hourly WHERE ts < '2026-11-30T00:00:00.000Z'`),
    'the late rows are in their folded week',
  );
});

/**
 * Keys of a week where the weekly level (its rows, plus the days after its watermark and the hours
 * after the daily one, not folded yet) differs from the hourly rows summed per week, histograms
 * included: every call of the hours is in its week exactly once.
 */
function weeklyMismatches(sqlite: BetterSqlite3.Database): string[] {
  const state = (key: string) =>
    (sqlite.prepare(`SELECT value FROM monitor_state WHERE key = ?`).get(key) as { value: string }).value;
  const [hours, days] = [state(DAILY_UNTIL_KEY), state(WEEKLY_UNTIL_KEY)];
  const cols = `channel, model, feature, provider, status, calls, tokens_in, tokens_out, tokens_cached, tokens_reasoning, cost_usd,
    unpriced_calls, latency_count, latency_sum, latency_min, latency_max, latency_hist`;
  // cost_usd (column 11) is compared within 1e-9: sums of the same floats in another order.
  const sums = `sum(calls), sum(tokens_in), sum(tokens_out), sum(tokens_cached), sum(tokens_reasoning), total(cost_usd), sum(unpriced_calls),
    sum(latency_count), round(total(latency_sum), 6), min(latency_min), max(latency_max), kissmon_hist_agg(latency_hist)`;
  const grouped = (from: string) =>
    new Map(
      (
        sqlite
          .prepare(
            `SELECT ts, channel, model, feature, provider, status, ${sums} FROM (${from}) GROUP BY 1, 2, 3, 4, 5, 6`,
          )
          .raw()
          .all() as unknown[][]
      ).map((r) => [JSON.stringify(r.slice(0, 6)), r]),
    );
  const expected = grouped(`SELECT ${weekOfSql('ts')} AS ts, ${cols} FROM llm_usage_hourly`);
  const weekly = grouped(`SELECT ts, ${cols} FROM llm_usage_weekly
    UNION ALL SELECT ${weekOfSql('ts')}, ${cols} FROM llm_usage_daily WHERE ts >= '${days}'
    UNION ALL SELECT ${weekOfSql('ts')}, ${cols} FROM llm_usage_hourly WHERE ts >= '${hours}'`);
  assert.ok(expected.size > 20, `enough week keys (${expected.size})`);
  const same = (a: unknown[], b: unknown[]) =>
    a.every((v, i) =>
      i === 11 ? Math.abs((v as number) - (b[i] as number)) < 1e-9 : JSON.stringify(v) === JSON.stringify(b[i]),
    );
  const wrong = [...expected].filter(([k, e]) => !weekly.has(k) || !same(weekly.get(k)!, e)).map(([k]) => k);
  return [...wrong, ...[...weekly.keys()].filter((k) => !expected.has(k)).map((k) => `extra ${k}`)];
}

/**
 * Asserts that a rollup report of the file over `window` counts, per `by`, the calls its hourly
 * rows hold (the level every other one is folded from).
 */
async function assertCallsAsHours(
  dbPath: string,
  window: { sinceMs: number; untilMs: number },
  by: 'channel' | 'host',
  message: string,
): Promise<void> {
  const read = openReadDatabase(dbPath);
  const sqlite = new BetterSqlite3(dbPath, { readonly: true });
  try {
    const report = await usageReport(read, { ...window, by: [by], exactMaxCalls: 1 });
    const hours = sqlite
      .prepare(
        `SELECT ${by}, sum(calls) AS calls FROM llm_usage_hourly WHERE ts >= ? AND ts < ? GROUP BY ${by} ORDER BY ${by}`,
      )
      .all(new Date(window.sinceMs).toISOString(), new Date(window.untilMs).toISOString());
    const reported = report.rows
      .map((r) => ({ [by]: r[by], calls: r.calls }))
      .sort((a, b) => String(a[by]).localeCompare(String(b[by])));
    assert.deepEqual(reported, hours, message);
  } finally {
    sqlite.close();
    await read.destroy();
  }
}

test('the writer keeps the hour in memory: rollups stay exact across a rolled-back transaction and a restart', async () => {
  const dbPath = join(dir, 'memory.db');
  const config = resolveConfig({ dbPath, logLevel: 'error' });
  const hour = Math.floor(Date.now() / 3_600_000) * 3_600_000;
  // The same few keys over and over, in this hour: every transaction finds its keys in memory.
  const rows = randomRows(2000).map((r) => ({ ...r, id: undefined, at: hour + (r.at % 3_600_000) }));
  const insert = (sqlite: BetterSqlite3.Database) =>
    sqlite.prepare(`INSERT INTO llm_usage (ts, channel, model, feature, tokens_in, tokens_out, latency_ms, cost_usd, tokens_cached,
      tokens_reasoning, provider, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
  /** One transaction as the writer runs it: rows and their rollups, then COMMIT, or a throw after the rollups were written. */
  const transaction = (
    sqlite: BetterSqlite3.Database,
    accounting: UsageAccounting,
    slice: LlmUsageRow[],
    fail = false,
  ) => {
    const put = insert(sqlite);
    try {
      sqlite.transaction(() => {
        accounting.begin();
        for (const row of slice) {
          const cost = accounting.cost(row);
          put.run(
            new Date(row.at).toISOString(),
            row.channel,
            row.model,
            row.feature,
            row.tokens_in,
            row.tokens_out,
            row.latency_ms ?? null,
            cost,
            row.tokens_cached ?? null,
            row.tokens_reasoning ?? null,
            row.provider ?? null,
            row.status ?? null,
          );
          accounting.stored(row, cost);
        }
        accounting.finish();
        if (fail) throw new Error('the COMMIT did not happen');
      })();
      accounting.commit();
    } catch (err) {
      accounting.rollback();
      if (!fail) throw err;
    }
  };
  let handle = await openWriteDatabase(dbPath, { busyTimeoutMs: 1000 });
  let accounting = new UsageAccounting(handle.sqlite, config);
  transaction(handle.sqlite, accounting, rows.slice(0, 500));
  transaction(handle.sqlite, accounting, rows.slice(500, 1000), true); // rolled back after its rollups were written
  transaction(handle.sqlite, accounting, rows.slice(1000, 1500));
  await handle.db.destroy();
  // A restart: a new writer's first touch of each key reads the stored row.
  handle = await openWriteDatabase(dbPath, { busyTimeoutMs: 1000 });
  after(() => handle.db.destroy());
  accounting = new UsageAccounting(handle.sqlite, config);
  transaction(handle.sqlite, accounting, rows.slice(1500));

  const sqlite = handle.sqlite;
  const bucket = "substr(ts, 1, 13) || ':00:00.000Z'";
  const raw = sqlite
    .prepare(
      `SELECT ${bucket} AS ts, ${KEY}, ${SUMS} FROM llm_usage GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6`,
    )
    .all();
  const rolled = sqlite
    .prepare(
      `SELECT ts, channel, model, feature, provider, status, calls, tokens_in, tokens_out, tokens_cached, tokens_reasoning,
      round(cost_usd, 9) AS cost_usd, unpriced_calls, latency_count, round(latency_sum, 6) AS latency_sum, latency_min, latency_max
      FROM llm_usage_hourly ORDER BY 1, 2, 3, 4, 5, 6`,
    )
    .all();
  assert.equal((sqlite.prepare('SELECT count(*) AS n FROM llm_usage').get() as { n: number }).n, 1500);
  assert.ok(raw.length > 50, `enough keys (${raw.length})`);
  assert.deepEqual(
    rolled,
    raw,
    'hourly rows = the committed rows, none of the rolled-back ones, the rows before the restart kept',
  );
  // Histograms: each key's buckets are the committed calls' latencies.
  const expected = new Map<string, number[]>();
  for (const r of [...rows.slice(0, 500), ...rows.slice(1000)]) {
    if (r.latency_ms === null || r.latency_ms === undefined) continue;
    const key = [r.channel, r.model, r.feature, r.provider ?? '', r.status ?? 'ok'].join('/');
    const dense = expected.get(key) ?? new Array<number>(BUCKETS).fill(0);
    dense[bucketOf(r.latency_ms)]++;
    expected.set(key, dense);
  }
  const stored = sqlite
    .prepare('SELECT channel, model, feature, provider, status, latency_hist FROM llm_usage_hourly')
    .all() as {
    channel: string;
    model: string;
    feature: string;
    provider: string;
    status: string;
    latency_hist: Buffer | null;
  }[];
  for (const s of stored) {
    const dense = emptyHistogram();
    addTo(dense, s.latency_hist);
    const key = [s.channel, s.model, s.feature, s.provider, s.status].join('/');
    assert.deepEqual([...dense], expected.get(key) ?? new Array<number>(BUCKETS).fill(0), key);
  }
});

test('over 45 days the weekly rollups equal the raw rows, and reports over windows that start and end mid-week equal raw reports', async () => {
  const dbPath = join(dir, 'weeks.db');
  const link = new Link<WriteItem>('ingest-weeks', { maxBatch: 97 });
  await startWriter(dbPath, link, { writer: { maxRowsPerTransaction: 500 } });
  // Ending an hour ago: the first transaction folds every finished hour and day, the later ones are
  // late rows into folded days and weeks.
  const span = 45 * 86_400_000;
  const rows = randomRows(6000, Date.now() - span - 3_600_000, span);
  for (const row of rows) link.send(row);
  await waitFor('rows committed', () => link.pending === 0, 60_000);
  const handle = await openWriteDatabase(dbPath, { busyTimeoutMs: 5000 });
  after(() => handle.db.destroy());
  assert.deepEqual(weeklyMismatches(handle.sqlite), []);
  const raw = handle.sqlite
    .prepare(
      `SELECT ${weekOfSql('ts')} AS ts, ${KEY}, ${SUMS} FROM llm_usage GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6`,
    )
    .all();
  const hourly = handle.sqlite
    .prepare(
      `SELECT ${weekOfSql('ts')} AS ts, channel, model, feature, provider, status, sum(calls) AS calls, sum(tokens_in) AS tokens_in,
      sum(tokens_out) AS tokens_out, sum(tokens_cached) AS tokens_cached, sum(tokens_reasoning) AS tokens_reasoning,
      round(total(cost_usd), 9) AS cost_usd, sum(unpriced_calls) AS unpriced_calls, sum(latency_count) AS latency_count,
      round(total(latency_sum), 6) AS latency_sum, min(latency_min) AS latency_min, max(latency_max) AS latency_max
      FROM llm_usage_hourly GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6`,
    )
    .all();
  assert.deepEqual(hourly, raw, 'the hours (which every level is checked against) equal the raw rows per week');

  const read = openReadDatabase(dbPath);
  after(() => read.destroy());
  const r = random(SEED + 1);
  const hour = 3_600_000;
  const strip = ({ latency_p50_ms: _a, latency_p95_ms: _b, latency_p99_ms: _c, ...f }: UsageFigures) => f;
  const first = Math.ceil((Date.now() - span) / hour) * hour;
  // Random hour-aligned windows of 8 to 45 days (most start and end mid-week), and one up to now.
  const windows = Array.from({ length: 12 }, () => {
    const length = (8 + Math.floor(r() * 37)) * 86_400_000 + Math.floor(r() * 24) * hour;
    const sinceMs = first + Math.floor((r() * Math.max(0, span - length)) / hour) * hour;
    return { sinceMs, untilMs: sinceMs + length };
  });
  windows.push({ sinceMs: first - 2 * 86_400_000, untilMs: Math.ceil(Date.now() / hour) * hour });
  for (const window of windows)
    for (const by of [['channel', 'model'], ['status'], ['day']] as const) {
      const fromRollups = await usageReport(read, { ...window, by: [...by], exactMaxCalls: 1 });
      const fromRaw = await usageReport(read, { ...window, by: [...by], source: 'raw' });
      const what = `${new Date(window.sinceMs).toISOString()}..${new Date(window.untilMs).toISOString()} by ${by.join(',')}`;
      assert.ok(fromRaw.totals.calls > 0, what);
      assert.deepEqual(fromRollups.rows.map(strip), fromRaw.rows.map(strip), what);
      assert.deepEqual(strip(fromRollups.totals), strip(fromRaw.totals), what);
    }
});

test('an upgraded database (rollups from before 0007) gets its whole weeks filled with their watermark; the writer folds on from there', async () => {
  const dbPath = join(dir, 'upgrade.db');
  let handle = await openWriteDatabase(dbPath, { busyTimeoutMs: 1000 });
  let now = Date.UTC(2026, 10, 1, 10, 30); // Sunday 1 November
  const days = 25;
  const rows = randomRows(4000, now, days * 86_400_000).sort((a, b) => a.at - b.at);
  let batch = new RollupBatch(handle.sqlite, () => now, 'h1');
  const write = (slice: LlmUsageRow[]) =>
    handle.sqlite.transaction(() => {
      for (const row of slice) batch.add(row, row.model === 'unknown-model' ? null : 0.25);
      batch.write();
    })();
  for (let i = 0; i < rows.length; i += 40) {
    now = rows[Math.min(rows.length, i + 40) - 1].at;
    write(rows.slice(i, i + 40));
  }
  // As a file written before 0007 looks: no weekly table, no weekly watermark, 0007 not run.
  handle.sqlite.exec(`DROP TABLE llm_usage_weekly; DELETE FROM monitor_state WHERE key = '${WEEKLY_UNTIL_KEY}';
    DELETE FROM kysely_migration WHERE name = '0007_weekly_rollups'`);
  await handle.db.destroy();

  handle = await openWriteDatabase(dbPath, { busyTimeoutMs: 1000 });
  after(() => handle.db.destroy());
  const { sqlite } = handle;
  const state = (key: string) =>
    (sqlite.prepare(`SELECT value FROM monitor_state WHERE host = 'h1' AND key = ?`).get(key) as { value: string })
      .value;
  const daily = state(DAILY_UNTIL_KEY);
  assert.equal(daily, '2026-11-26T10:00:00.000Z');
  assert.equal(state(WEEKLY_UNTIL_KEY), '2026-11-23T00:00:00.000Z', "the Monday of the daily watermark's week");
  assert.equal(
    (sqlite.prepare('SELECT max(ts) AS ts FROM llm_usage_weekly').get() as { ts: string }).ts,
    '2026-11-16T00:00:00.000Z',
    'the whole weeks before it',
  );
  assert.deepEqual(weeklyMismatches(sqlite), [], 'whole: the weeks, then the days and hours after their watermarks');

  // The writer goes on: the clock passes a day, then a late row lands in a week folded by 0007.
  batch = new RollupBatch(sqlite, () => now, 'h1');
  now = Date.UTC(2026, 10, 28, 1);
  write(randomRows(50, now - 3_600_000, 3_600_000));
  assert.equal(state(WEEKLY_UNTIL_KEY), '2026-11-28T00:00:00.000Z');
  const lateWeek = () =>
    (
      sqlite.prepare(`SELECT sum(calls) AS n FROM llm_usage_weekly WHERE ts = '2026-11-09T00:00:00.000Z'`).get() as {
        n: number;
      }
    ).n;
  const before = lateWeek();
  write(randomRows(7, Date.UTC(2026, 10, 12, 3), 3_600_000));
  assert.equal(lateWeek(), before + 7, 'the late rows are added to their folded week');
  assert.deepEqual(weeklyMismatches(sqlite), []);
});

test("a file's rollups of host '' (from before 0006) stay that host's, with its watermarks, when a monitor claims the file: reports over both hosts count every call once", async () => {
  const dbPath = join(dir, 'claim.db');
  let handle = await openWriteDatabase(dbPath, { busyTimeoutMs: 1000 });
  let now = Date.UTC(2026, 10, 16); // Monday 16 November
  let batch = new RollupBatch(handle.sqlite, () => now, '');
  const write = (slice: LlmUsageRow[]) =>
    handle.sqlite.transaction(() => {
      for (const row of slice) batch.add(row, row.model === 'unknown-model' ? null : 0.25);
      batch.write();
    })();
  const writeAsOfRows = (rows: LlmUsageRow[]) => {
    rows.sort((a, b) => a.at - b.at);
    for (let i = 0; i < rows.length; i += 40) {
      now = rows[Math.min(rows.length, i + 40) - 1].at;
      write(rows.slice(i, i + 40));
    }
  };
  // Host '' up to Wednesday 25 November 09:36, its days folded as it went.
  writeAsOfRows(randomRows(1500, now, 9.4 * 86_400_000));
  // As such a file looks before 0007 and before a monitor with a name claimed it.
  handle.sqlite.exec(`DROP TABLE llm_usage_weekly; DELETE FROM monitor_state WHERE key = '${WEEKLY_UNTIL_KEY}';
    DELETE FROM kysely_migration WHERE name = '0007_weekly_rollups'`);
  // A copy whose '' watermark an earlier build's claim moved away (its raw row marks it as ''s).
  const moved = join(dir, 'claim-moved.db');
  handle.sqlite.exec(
    `INSERT INTO llm_usage (ts, channel, tokens_in, tokens_out, host) VALUES ('2026-11-16T00:00:00.000Z', 'alpha', 1, 1, '')`,
  );
  await handle.sqlite.backup(moved);
  await handle.db.destroy();

  const store = await openSqliteStore(dbPath, resolveConfig({ dbPath, logLevel: 'error', hostName: 'x' }), {
    busyTimeoutMs: 1000,
    migrationBusyTimeoutMs: 1000,
  });
  await store.close();
  handle = await openWriteDatabase(dbPath, { busyTimeoutMs: 1000 });
  after(() => handle.db.destroy());
  const { sqlite } = handle;
  const state = (host: string) =>
    sqlite
      .prepare(`SELECT key, value FROM monitor_state WHERE host = ? AND key LIKE 'llm_%_until' ORDER BY key`)
      .all(host);
  assert.deepEqual(
    state(''),
    [
      { key: DAILY_UNTIL_KEY, value: '2026-11-25T09:00:00.000Z' },
      { key: WEEKLY_UNTIL_KEY, value: '2026-11-23T00:00:00.000Z' },
    ],
    "host '' keeps its watermarks: its rows stay its own",
  );

  // Host x writes on, past the end of that week.
  batch = new RollupBatch(sqlite, () => now, 'x');
  writeAsOfRows(randomRows(400, Date.UTC(2026, 10, 25, 10), 2 * 86_400_000));
  now = Date.UTC(2026, 11, 1, 5);
  write(randomRows(5, now - 3_600_000, 3_600_000));
  assert.equal(state('x').length, 2, 'x folds on its own watermarks');
  const window = { sinceMs: Date.UTC(2026, 10, 16), untilMs: Date.UTC(2026, 10, 30) };
  for (const by of ['channel', 'host'] as const)
    await assertCallsAsHours(dbPath, window, by, `by ${by}: every call of both hosts once`);

  // The copy: '' has no daily watermark (0007 gave it a weekly one); claimed, its rows are folded whole.
  const prior = await openWriteDatabase(moved, { busyTimeoutMs: 1000 });
  prior.sqlite.exec(`DELETE FROM monitor_state WHERE host = '' AND key = '${DAILY_UNTIL_KEY}'`);
  await prior.db.destroy();
  const second = await openSqliteStore(moved, resolveConfig({ dbPath: moved, logLevel: 'error', hostName: 'x' }), {
    busyTimeoutMs: 1000,
    migrationBusyTimeoutMs: 1000,
  });
  await second.close();
  await assertCallsAsHours(
    moved,
    window,
    'channel',
    "'' without its daily watermark: folded whole at the claim, every call once",
  );
});

test('two hosts in one file, one folded further than the other: a report over both counts every call once', async () => {
  const dbPath = join(dir, 'two-hosts.db');
  const handle = await openWriteDatabase(dbPath, { busyTimeoutMs: 1000 });
  after(() => handle.db.destroy());
  let now = 0;
  const writeAs = (host: string, rows: LlmUsageRow[]) => {
    const batch = new RollupBatch(handle.sqlite, () => now, host);
    rows.sort((a, b) => a.at - b.at);
    for (let i = 0; i < rows.length; i += 40) {
      now = rows[Math.min(rows.length, i + 40) - 1].at;
      handle.sqlite.transaction(() => {
        for (const row of rows.slice(i, i + 40)) batch.add(row, 0.25);
        batch.write();
      })();
    }
  };
  // Host a (say, the name before a rename) stops on Tuesday 24 November; b writes on to 1 December.
  writeAs('a', randomRows(1200, Date.UTC(2026, 10, 16), 8.4 * 86_400_000));
  writeAs('b', randomRows(1200, Date.UTC(2026, 10, 24, 11), 6.7 * 86_400_000));
  // Host c wrote with a build that kept no watermark (a file from before it): its hours are read as they are.
  writeAs('c', randomRows(300, Date.UTC(2026, 10, 20), 86_400_000));
  handle.sqlite.exec(`DELETE FROM monitor_state WHERE host = 'c'`);
  handle.sqlite
    .prepare(`INSERT INTO hosts VALUES ('c', '0.1.0', 1, ?, ?, '[]', 60000)`)
    .run('2026-11-20T00:00:00.000Z', '2026-11-21T00:00:00.000Z');
  const marks = handle.sqlite
    .prepare(`SELECT host, value FROM monitor_state WHERE key = '${WEEKLY_UNTIL_KEY}' ORDER BY host`)
    .all() as { host: string; value: string }[];
  assert.notEqual(marks[0]?.value, marks[1]?.value, `the hosts' weekly watermarks differ: ${JSON.stringify(marks)}`);
  const window = { sinceMs: Date.UTC(2026, 10, 16), untilMs: Date.UTC(2026, 11, 1, 6) };
  await assertCallsAsHours(dbPath, window, 'channel', 'every call of the three hosts once');
});

test('a host with hourly rows and no watermark (a file from before it) gets one in its first transaction: no hour is taken for folded', async () => {
  const dbPath = join(dir, 'no-watermark.db');
  const handle = await openWriteDatabase(dbPath, { busyTimeoutMs: 1000 });
  after(() => handle.db.destroy());
  let now = Date.UTC(2026, 10, 10, 3);
  let batch = new RollupBatch(handle.sqlite, () => now, 'h');
  const write = (rows: LlmUsageRow[], at: number) => {
    now = at;
    handle.sqlite.transaction(() => {
      for (const row of rows) batch.add(row, 0.25);
      batch.write();
    })();
  };
  write(randomRows(300, Date.UTC(2026, 10, 10, 3), 3 * 3_600_000 - 60_000), Date.UTC(2026, 10, 10, 5, 59));
  // As a file from before the watermark looks: every hour in its day, no watermark.
  handle.sqlite.exec(
    `DELETE FROM monitor_state WHERE key LIKE 'llm_%_until'; DELETE FROM llm_usage_daily; DELETE FROM llm_usage_weekly`,
  );
  handle.sqlite.prepare(foldSql('llm_usage_hourly', 'llm_usage_daily')).run('h', '', '9999');
  // Started again within the hour of its last rows, then the first transaction of the next hour and
  // another in it (read again, "the hour after the last one" would take 06:00 for folded), then the next day.
  batch = new RollupBatch(handle.sqlite, () => now, 'h');
  write(randomRows(20, Date.UTC(2026, 10, 10, 5, 59), 1_000), Date.UTC(2026, 10, 10, 5, 59, 30));
  write(randomRows(200, Date.UTC(2026, 10, 10, 6), 5 * 60_000), Date.UTC(2026, 10, 10, 6, 5));
  write(randomRows(200, Date.UTC(2026, 10, 10, 6, 10), 5 * 60_000), Date.UTC(2026, 10, 10, 6, 20));
  write(randomRows(50, Date.UTC(2026, 10, 11, 0, 30), 60_000), Date.UTC(2026, 10, 11, 1));
  assert.deepEqual(
    weeklyMismatches(handle.sqlite),
    [],
    "every hour before the watermark is in its day, 06:00's first rows too",
  );
});
