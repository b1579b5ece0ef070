// Report and status queries on known data, directly and through the read pool's worker threads.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Kysely } from 'kysely';
import { ReadPool } from '../src/db/read-pool.js';
import { statusRows, usageTotals } from '../src/db/queries.js';
import { usageReport, type UsageDimension, type UsageRow } from '../src/llm/report.js';
import { openReadDatabase, openWriteDatabase, type Database } from '../src/db/schema.js';

const DAY1 = Date.UTC(2025, 4, 1, 10);
const DAY2 = Date.UTC(2025, 4, 2, 23, 59, 59, 999);
const SINCE = Date.UTC(2025, 4, 1);
const iso = (ms: number) => new Date(ms).toISOString();

const dir = mkdtempSync(join(tmpdir(), 'kissmon-queries-'));
const dbPath = join(dir, 'monitor.db');
let db: Kysely<Database>;

before(async () => {
  const writer = await openWriteDatabase(dbPath, { busyTimeoutMs: 20 });
  const call = (ts: number, channel: string, model: string, feature: string, latency_ms: number | null) => ({
    ts: iso(ts),
    channel,
    model,
    feature,
    tokens_in: 100,
    tokens_out: 10,
    latency_ms,
    cost_usd: 0.5,
  });
  // alpha: latencies 1..100 (gpt-4o, chat, day 1); beta: 1..10 (gpt-4o-mini, summary, day 2);
  // gamma: three calls without latency (gpt-4o, chat, day 2); one alpha call before SINCE.
  await writer.db
    .insertInto('llm_usage')
    .values([
      ...Array.from({ length: 100 }, (_, i) => call(DAY1, 'alpha', 'gpt-4o', 'chat', 100 - i)),
      ...Array.from({ length: 10 }, (_, i) => call(DAY2, 'beta', 'gpt-4o-mini', 'summary', i + 1)),
      ...Array.from({ length: 3 }, () => call(DAY2, 'gamma', 'gpt-4o', 'chat', null)),
      call(SINCE - 1, 'alpha', 'gpt-4o', 'chat', 100_000),
    ])
    .execute();
  await writer.db
    .insertInto('bot_status')
    .values([
      {
        channel: 'beta',
        pid: 20,
        status: 'stale',
        features_json: null,
        registered_at: iso(DAY1),
        last_seen: iso(DAY2),
        last_heartbeat: null,
      },
      // Written by the old Python monitor: no zone designator, microseconds.
      {
        channel: 'alpha',
        pid: 11,
        status: 'online',
        features_json: '{"tts":true,"ai":false}',
        registered_at: '2025-05-01T10:00:00.000000',
        last_seen: iso(DAY2),
        last_heartbeat: iso(DAY2),
        start_time: 4242,
      },
    ])
    .execute();
  const metric = (ts: number, pid: number, rss_mb: number) => ({
    ts: iso(ts),
    channel: 'alpha',
    pid,
    rss_mb,
    cpu_pct: 50,
    cpu_pct_machine: 25,
    features_json: null,
  });
  // The newest sample belongs to an older process of the channel and must not be shown.
  await writer.db
    .insertInto('bot_metrics')
    .values([metric(DAY1, 11, 70), metric(DAY2 - 1000, 11, 80), metric(DAY2, 10, 999)])
    .execute();
  await writer.db.destroy();
  db = openReadDatabase(dbPath);
});

after(async () => {
  await db?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

// These rows are inserted straight into llm_usage (no writer, so no rollups): the raw-row report,
// as a monitor with `llm.rollups: false` answers. test/llm-rollups.test.ts covers the rollups.
const report = async (sinceMs: number, by: UsageDimension) =>
  (await usageReport(db, { sinceMs, by: [by], source: 'raw' })).rows;
const row = (key: string, calls: number, p: [number, number, number] | null, by = 'channel'): UsageRow => ({
  key,
  [by]: key,
  calls,
  tokens_in: 100 * calls,
  tokens_out: 10 * calls,
  tokens_cached: 0,
  tokens_reasoning: 0,
  cost_usd: 0.5 * calls,
  unpriced_calls: 0,
  errors: 0,
  error_rate_pct: 0,
  cached_share_pct: 0,
  latency_mean_ms: p && p[0],
  latency_p50_ms: p && p[0],
  latency_p95_ms: p && p[1],
  latency_p99_ms: p && p[2],
});
// Linear interpolation between closest ranks: 1..100 → p50 50.5, p95 95.05, p99 99.01.
const ALPHA: [number, number, number] = [50.5, 95.05, 99.01];
const BETA: [number, number, number] = [5.5, 9.55, 9.91];

test('usageReport groups by channel, model, feature and day with per-group percentiles', async () => {
  assert.deepEqual(await report(SINCE, 'channel'), [
    row('alpha', 100, ALPHA),
    row('beta', 10, BETA),
    row('gamma', 3, null),
  ]);
  assert.deepEqual(await report(SINCE, 'model'), [
    row('gpt-4o', 103, ALPHA, 'model'),
    row('gpt-4o-mini', 10, BETA, 'model'),
  ]);
  assert.deepEqual(await report(SINCE, 'feature'), [
    row('chat', 103, ALPHA, 'feature'),
    row('summary', 10, BETA, 'feature'),
  ]);
  assert.deepEqual(await report(SINCE, 'day'), [
    row('2025-05-01', 100, ALPHA, 'day'),
    row('2025-05-02', 13, BETA, 'day'),
  ]);
  // sinceMs is inclusive and filters by time: the call one ms earlier appears only here.
  const all = await report(0, 'channel');
  assert.equal(all.find((r) => r.key === 'alpha')?.calls, 101);
  assert.deepEqual(await report(DAY2, 'channel'), [row('beta', 10, BETA), row('gamma', 3, null)]);
});

test('usageTotals covers every group, and is zero when nothing matches', async () => {
  const totals = await usageTotals(db, { sinceMs: SINCE });
  assert.deepEqual(totals, {
    calls: 113,
    tokens_in: 11_300,
    tokens_out: 1_130,
    cost_usd: 56.5,
    latency_p50_ms: 45.5,
    latency_p95_ms: 94.55,
    latency_p99_ms: 98.91, // over alpha's and beta's 110 latencies
  });
  assert.deepEqual(await usageTotals(db, { sinceMs: Date.UTC(2030, 0, 1) }), {
    calls: 0,
    tokens_in: 0,
    tokens_out: 0,
    cost_usd: 0,
    latency_p50_ms: null,
    latency_p95_ms: null,
    latency_p99_ms: null,
  });
});

test('bad report options are TypeErrors', async () => {
  await assert.rejects(usageReport(db, { sinceMs: SINCE, by: ['pid' as never] }), {
    name: 'TypeError',
    message: /options\.by must be a list of distinct dimensions from host, channel, model/,
  });
  await assert.rejects(usageReport(db, { sinceMs: SINCE, by: ['model', 'model'] }), {
    name: 'TypeError',
    message: /options\.by must be a list of distinct/,
  });
  await assert.rejects(usageReport(db, { sinceMs: Number.NaN, by: ['day'] }), {
    name: 'TypeError',
    message: /options\.sinceMs/,
  });
  await assert.rejects(usageReport(db, { sinceMs: SINCE, untilMs: SINCE, by: ['day'] }), {
    name: 'TypeError',
    message: /options\.untilMs/,
  });
});

test('statusRows: bot_status with times in ms and the latest sample of the same pid', async () => {
  assert.deepEqual(await statusRows(db), [
    {
      channel: 'alpha',
      pid: 11,
      status: 'online',
      features: { tts: true, ai: false },
      registered_at: DAY1,
      last_seen: DAY2,
      last_heartbeat: DAY2,
      heartbeat_age_s: null,
      start_time: 4242,
      cpu_pct: 50,
      cpu_pct_machine: 25,
      rss_mb: 80,
      sampled_at: DAY2 - 1000,
    },
    {
      channel: 'beta',
      pid: 20,
      status: 'stale',
      features: null,
      registered_at: DAY1,
      last_seen: DAY2,
      last_heartbeat: null,
      heartbeat_age_s: null,
      start_time: null,
      cpu_pct: null,
      cpu_pct_machine: null,
      rss_mb: null,
      sampled_at: null,
    },
  ]);
});

test('ReadPool answers status, usage and totals from worker threads', async () => {
  const pool = new ReadPool(dbPath, { maxThreads: 2, idleTimeoutMs: 1_000 });
  after(() => pool.close());
  const [status, usage, totals] = await Promise.all([
    pool.status(),
    pool.usage({ sinceMs: SINCE, untilMs: DAY2 + 1, by: ['channel'], source: 'raw' }),
    pool.totals({ sinceMs: SINCE }),
  ]);
  assert.deepEqual(status, await statusRows(db));
  assert.deepEqual(usage, await usageReport(db, { sinceMs: SINCE, untilMs: DAY2 + 1, by: ['channel'], source: 'raw' }));
  assert.equal(totals.calls, 113);
  await assert.rejects(pool.usage({ sinceMs: SINCE, by: ['nope' as never] }), /options\.by must be a list/);
  await pool.close();
  await pool.close(); // idempotent
  await assert.rejects(pool.status(), /read pool is closed/);
});
