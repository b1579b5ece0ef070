// LLM accounting through the real db-writer thread and a real SQLite file: costs per token type
// (hand-computed, with a price change mid-period and an unknown model), old-protocol rows, recompute
// after a price fix (on both stores, with ingest going on, and through `kissmon usage recompute`),
// and budget levels signalled to the alerter exactly once per period and level.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { MessageChannel } from 'node:worker_threads';
import BetterSqlite3 from 'better-sqlite3';
import { Link } from '../src/actors/link.js';
import type { AlerterInput } from '../src/actors/alerter-messages.js';
import type { LlmUsageRow, WriteItem } from '../src/actors/db-writer-messages.js';
import { resolveConfig, type ConfigOverrides } from '../src/config.js';
import { openWriteDatabase } from '../src/db/schema.js';
import { silenceMatches } from '../src/alerts/model.js';
import { BudgetTracker } from '../src/llm/budgets.js';
import { BUILTIN_PRICES, PriceTable } from '../src/llm/prices.js';
import { DAILY_UNTIL_KEY, weekOfSql, WEEKLY_UNTIL_KEY } from '../src/llm/rollups.js';
import { decodeLine } from '../src/protocol/decode.js';
import { waitFor } from './helpers/wait.js';
import {
  flush,
  killStarted,
  line,
  runKissmon as kissmon,
  sendLines,
  startMonitor,
  stopMonitor,
  TestDir,
} from './helpers/monitor-process.js';
import { startWriter, stopWriters } from './helpers/writer.js';
import { BACKENDS, openBackend, type TestStore } from './helpers/backends.js';

const dirs: string[] = [];
after(async () => {
  await stopWriters();
  await killStarted();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function tempDb(): string {
  const dir = mkdtempSync(join(tmpdir(), 'kissmon-llm-'));
  dirs.push(dir);
  return join(dir, 'monitor.db');
}

function readRows<T>(dbPath: string, query: string, ...params: unknown[]): T[] {
  const db = new BetterSqlite3(dbPath, { readonly: true });
  try {
    return db.prepare(query).all(...params) as T[];
  } finally {
    db.close();
  }
}

const JAN_10 = Date.UTC(2026, 0, 10, 12);
const JAN_20 = Date.UTC(2026, 0, 20, 12);
// A price change on Jan 15 at noon UTC, in the middle of the month's rows.
const PRICES: ConfigOverrides = {
  prices: {
    'test-model*': [
      { from: '2026-01-01', input: 2, cachedInput: 0.5, output: 8, reasoning: 10 },
      { from: '2026-01-15T12:00:00Z', input: 1, output: 4 }, // cachedInput → input, reasoning → output
    ],
  },
};

const call = (at: number, model: string, extra: Partial<LlmUsageRow> = {}): LlmUsageRow => ({
  type: 'llm_usage',
  at,
  channel: 'acct',
  model,
  feature: 'chat',
  tokens_in: 1000,
  tokens_out: 500,
  latency_ms: 100,
  ...extra,
});
const parts = { tokens_cached: 400, tokens_reasoning: 200 };

async function send(link: Link<WriteItem>, rows: WriteItem[]): Promise<void> {
  for (const row of rows) link.send(row);
  await waitFor('rows committed', () => link.pending === 0);
}

test('costs per token type, a price change mid-period, an unknown model, an old-protocol row', async () => {
  const dbPath = tempDb();
  const link = new Link<WriteItem>('ingest');
  const writer = await startWriter(dbPath, link, PRICES);
  await send(link, [
    // (1000-400)·2 + 400·0.5 + (500-200)·8 + 200·10 = 1200 + 200 + 2400 + 2000 µUSD
    call(JAN_10, 'test-model-v1', parts),
    // After the change: (600 + 400)·1 + (300 + 200)·4 = 1000 + 2000 µUSD
    call(JAN_20, 'test-model-v1', parts),
    // No parts sent: 1000·1 + 500·4
    call(JAN_20, 'test-model-v1'),
    // Before its first price, and a model nobody priced: no cost
    call(Date.UTC(2025, 11, 31), 'test-model-v1', parts),
    call(JAN_20, 'mystery-model', parts),
    // An old client's row (protocol v1 without the new fields) with a built-in price: gpt-4o 2.50/10
    {
      type: 'llm_usage',
      at: JAN_20,
      channel: 'old_bot',
      model: 'gpt-4o',
      feature: 'jokes',
      tokens_in: 1000,
      tokens_out: 500,
      latency_ms: null,
    },
  ]);
  const rows = readRows<{ model: string; cost: number | null; cached: number | null; provider: string | null }>(
    dbPath,
    'SELECT model, round(cost_usd * 1e6, 6) AS cost, tokens_cached AS cached, provider FROM llm_usage ORDER BY rowid',
  );
  assert.deepEqual(
    rows.map((r) => r.cost),
    [5800, 3000, 3000, null, null, 7500],
  );
  assert.deepEqual(
    rows.map((r) => r.cached),
    [400, 400, null, 400, 400, null],
  );
  // Counted where an operator sees it: the writer's health detail.
  const health = await writer.control.health();
  assert.equal(health.detail.llm_unpriced, 2);
  // The rollups carry the same: cost of the priced calls, the unpriced ones counted apart.
  const [hour] = readRows<{ cost: number; unpriced: number; calls: number }>(
    dbPath,
    "SELECT round(total(cost_usd) * 1e6, 6) AS cost, sum(unpriced_calls) AS unpriced, sum(calls) AS calls FROM llm_usage_hourly WHERE ts >= '2026-01-20'",
  );
  assert.deepEqual(hour, { cost: 13_500, unpriced: 1, calls: 4 });
});

test('built-in prices: a plain key prices itself and its dated snapshots, never a variant name', async () => {
  const dbPath = tempDb();
  const link = new Link<WriteItem>('ingest');
  const writer = await startWriter(dbPath, link, {});
  const priced: [string, number][] = [
    // 1000 in, 500 out at the key's price (USD per 1M): in·input + out·output µUSD
    ['o1', 1000 * 15 + 500 * 60],
    ['o1-2024-12-17', 1000 * 15 + 500 * 60],
    ['gpt-4o-mini-2024-07-18', 1000 * 0.15 + 500 * 0.6],
    ['claude-sonnet-4-20250514', 1000 * 3 + 500 * 15],
    ['claude-sonnet-4@20250514', 1000 * 3 + 500 * 15],
    ['claude-opus-4-1-20250805', 1000 * 15 + 500 * 75],
  ];
  const unpriced = [
    'o1-pro',
    'o3-pro',
    'gpt-5-pro',
    'gpt-4-32k',
    'gpt-4o-realtime-preview',
    'claude-opus-4-5',
    'claude-opus-4-5-20251101',
    'gemini-2.5-pro-preview-tts',
    'mistral-large-latest',
  ];
  await send(link, [...priced.map(([m]) => call(JAN_20, m)), ...unpriced.map((m) => call(JAN_20, m))]);
  const rows = readRows<{ model: string; cost: number | null }>(
    dbPath,
    'SELECT model, round(cost_usd * 1e6, 6) AS cost FROM llm_usage ORDER BY rowid',
  );
  assert.deepEqual(rows, [
    ...priced.map(([model, cost]) => ({ model, cost })),
    ...unpriced.map((model) => ({ model, cost: null })),
  ]);
  assert.equal((await writer.control.health()).detail.llm_unpriced, unpriced.length, 'each unpriced call counted');
});

test('price keys are picomatch globs, the same engine as silences: most specific wins, `*` stops at `/`', () => {
  const table = new PriceTable({
    ...BUILTIN_PRICES,
    'team-{a,b}-*': { input: 1, output: 1 },
    'team-a-big*': { input: 2, output: 2 },
    'router/**': { input: 3, output: 3 },
    'gpt-4o-2024-05-13': { input: 5, output: 15 },
  });
  const input = (model: string) => table.priceAt(model, JAN_20)?.input ?? null;
  assert.deepEqual(
    ['team-a-x', 'team-b-x', 'team-c-x', 'team-a-bigger', 'router/gpt-4o', 'router/a/b', 'team-a-x/y'].map(input),
    [1, 1, null, 2, 3, 3, null],
  );
  assert.deepEqual(
    ['gpt-4o-2024-05-13', 'gpt-4o-2024-08-06', 'gpt-4o-20240806', 'gpt-4o-0613', 'gpt-4o-2024-08-06-x'].map(input),
    [5, 2.5, 2.5, null, null],
  );
  const silence = silenceMatches({ match: 'team-{a,b}-*' });
  assert.deepEqual(
    ['team-a-x', 'team-c-x', 'team-a-x/y'].map((channel) => silence({ channel })),
    [true, false, false],
  );
});

/** After the first prices (PRICES): output after Jan 15 was 5, not 4; and other-model gets a price at last. */
const FIXED_PRICES: ConfigOverrides = {
  prices: {
    ...(PRICES.prices as object),
    'test-model*': [
      { from: '2026-01-01', input: 2, cachedInput: 0.5, output: 8, reasoning: 10 },
      { from: '2026-01-15T12:00:00Z', input: 1, output: 5 },
    ],
    'other-model': { input: 3, output: 3 },
  },
};

/** Rows a recompute after FIXED_PRICES must change (3 of 5) and the µUSD they end at, in ts, model order. */
const recomputeRows = (now: number) => ({
  // Inserted before the window's oldest row but dated inside it (what a spool replay does): on
  // SQLite the Jan 20 row has a lower rowid than the Jan 10 one, and recompute must still visit it.
  rows: [
    call(JAN_20, 'test-model-a', parts),
    call(JAN_10, 'test-model-a', parts),
    call(JAN_20, 'test-model-b'),
    call(JAN_20, 'other-model'),
    call(JAN_20, 'gpt-4o-mini'),
    call(now, 'test-model-b', { channel: 'today' }), // this month: counted by the budget
  ],
  // Jan 10 and gpt-4o-mini untouched (0.15·1000 + 0.6·500); (600+400)·1 + (300+200)·5 = 3500;
  // 1000 + 2500 = 3500 (twice: Jan 20 and today); other-model 3·1500 = 4500.
  after: [
    ['2026-01-10', 'test-model-a', 5800],
    ['2026-01-20', 'gpt-4o-mini', 450],
    ['2026-01-20', 'other-model', 4500],
    ['2026-01-20', 'test-model-a', 3500],
    ['2026-01-20', 'test-model-b', 3500],
    [new Date(now).toISOString().slice(0, 10), 'test-model-b', 3500],
  ],
});

/** This host's stored rows in ts, model order: day, model, µUSD (null: unpriced). */
async function storedCosts(store: TestStore): Promise<[string, string, number | null][]> {
  const rows = await store.rows<{ ts: string; model: string; cost_usd: number | null }>(
    'SELECT ts, model, cost_usd FROM llm_usage ORDER BY ts, model',
  );
  return rows.map((r) => [
    r.ts.slice(0, 10),
    r.model,
    r.cost_usd === null ? null : Math.round(r.cost_usd * 1e12) / 1e6,
  ]);
}

/**
 * Keys whose rollup row disagrees with the raw rows (calls, cost, unpriced calls), per hour, day and
 * week. SQLite's daily table holds the hours before its fold watermark, the later ones only in the
 * hourly table, its weekly table the days before its own (src/llm/rollups.ts); PostgreSQL keeps
 * every table current.
 */
async function rollupMismatches(store: TestStore): Promise<string[]> {
  const key = "channel, model, feature, coalesce(provider, '') AS provider, coalesce(status, 'ok') AS status";
  const [watermark] = await store.rows<{ value: string }>(
    `SELECT value FROM monitor_state WHERE key = '${DAILY_UNTIL_KEY}'`,
  );
  const [weekWatermark] = await store.rows<{ value: string }>(
    `SELECT value FROM monitor_state WHERE key = '${WEEKLY_UNTIL_KEY}'`,
  );
  const unfolded = store.kind === 'sqlite' ? watermark.value : '9999';
  const unfoldedDays = store.kind === 'sqlite' ? weekWatermark.value : '9999';
  const week = (ts: string) =>
    store.kind === 'sqlite'
      ? weekOfSql(ts)
      : `to_char(date_trunc('week', ${ts}::timestamp), 'YYYY-MM-DD"T00:00:00.000Z"')`;
  const columns = 'channel, model, feature, provider, status, calls, cost_usd, unpriced_calls';
  const sources = {
    llm_usage_hourly: ['llm_usage_hourly', "substr(ts, 1, 13) || ':00:00.000Z'"],
    llm_usage_daily: [
      `(SELECT ts, channel, model, feature, provider, status, calls, cost_usd, unpriced_calls FROM llm_usage_daily
        UNION ALL SELECT substr(ts, 1, 10) || 'T00:00:00.000Z', channel, model, feature, provider, status, calls, cost_usd,
        unpriced_calls FROM llm_usage_hourly WHERE ts >= '${unfolded}') AS d`,
      "substr(ts, 1, 10) || 'T00:00:00.000Z'",
    ],
    llm_usage_weekly: [
      `(SELECT ts, ${columns} FROM llm_usage_weekly
        UNION ALL SELECT ${week('ts')}, ${columns} FROM llm_usage_daily WHERE ts >= '${unfoldedDays}'
        UNION ALL SELECT ${week('ts')}, ${columns} FROM llm_usage_hourly WHERE ts >= '${unfolded}') AS w`,
      week('ts'),
    ],
  } as const;
  const mismatches: string[] = [];
  for (const [table, [source, bucket]] of Object.entries(sources)) {
    type Sums = { ts: string; channel: string; model: string; calls: number; cost: number | null; unpriced: number };
    const raw = await store.rows<Sums>(
      `SELECT ${bucket} AS ts, ${key}, count(*) AS calls, sum(cost_usd) AS cost, count(*) - count(cost_usd) AS unpriced
      FROM llm_usage GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6`,
    );
    const rolled = await store.rows<Sums>(
      `SELECT ts, channel, model, feature, provider, status, sum(calls) AS calls, sum(cost_usd) AS cost, sum(unpriced_calls) AS unpriced
      FROM ${source} GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6`,
    );
    assert.equal(rolled.length, raw.length, `${table}: one rollup row per raw key`);
    raw.forEach((r, i) => {
      const h = rolled[i];
      if (
        h.ts !== r.ts ||
        h.channel !== r.channel ||
        h.model !== r.model ||
        h.calls !== r.calls ||
        h.unpriced !== r.unpriced ||
        Math.abs((h.cost ?? 0) - (r.cost ?? 0)) > 1e-12 * Math.max(1, Math.abs(r.cost ?? 0)) // a week sums 28,000 floats
      )
        mismatches.push(`${table} ${JSON.stringify(h)} != raw ${JSON.stringify(r)}`);
    });
  }
  return mismatches;
}

for (const kind of BACKENDS)
  test(`recompute re-prices exactly the rows a price fix affects, their rollups and budgets with them [${kind}]`, async (t) => {
    const store = await openBackend(t, kind);
    if (!store) return;
    const budget: ConfigOverrides = {
      ...store.overrides,
      budgets: [{ name: 'month', period: 'month', limitUsd: 100 }] as never,
    };
    const link = new Link<WriteItem>('ingest');
    let writer = await startWriter(store.dbPath, link, { ...budget, ...PRICES });
    const { rows, after } = recomputeRows(Date.now());
    await send(link, rows);
    await writer.control.shutdown();
    await writer.stop();
    writer = await startWriter(store.dbPath, new Link<WriteItem>('ingest-2'), { ...budget, ...FIXED_PRICES });
    const spent = async () => (await writer.control.budgets())?.[0].spent_usd;
    assert.equal(await spent(), 0.003, 'the budget at the old price of the row of today');
    const result = await writer.control.recompute(Date.UTC(2025, 11, 1));
    assert.deepEqual(
      { ...result, since: undefined },
      { since: undefined, rows_checked: 6, rows_changed: 4, rows_priced_now: 1, rows_unpriced_now: 0 },
    );
    if (kind === 'sqlite')
      assert.deepEqual(
        (await store.rows<{ ts: string }>('SELECT ts FROM llm_usage ORDER BY rowid LIMIT 2')).map((r) =>
          r.ts.slice(0, 10),
        ),
        ['2026-01-20', '2026-01-10'],
        'the row dated inside the window has the lower rowid',
      );
    assert.deepEqual(await storedCosts(store), after);
    assert.deepEqual(await rollupMismatches(store), [], 'the rollups moved with the rows');
    assert.equal(await spent(), 0.0035, 'the budget reloaded at the new price');
    // Run again: nothing left to change.
    const again = await writer.control.recompute(Date.UTC(2025, 11, 1));
    assert.deepEqual([again.rows_checked, again.rows_changed], [6, 0]);
    assert.deepEqual(await storedCosts(store), after);
  });

for (const kind of BACKENDS)
  test(`ingest during a recompute: every row stored once, the rollups exact, only the old rows re-priced [${kind}]`, async (t) => {
    const store = await openBackend(t, kind);
    if (!store) return;
    const link = new Link<WriteItem>('ingest');
    let writer = await startWriter(store.dbPath, link, { ...store.overrides, ...PRICES });
    // 40,000 rows from Jan 10 to Jan 20 (8 chunks); those after the Jan 15 price change move with the fix.
    const old = Array.from({ length: 40_000 }, (_, i) =>
      call(JAN_10 + Math.floor((i * (JAN_20 - JAN_10)) / 40_000), 'test-model-b'),
    );
    await send(link, old);
    const affected = old.filter((r) => r.at >= Date.UTC(2026, 0, 15, 12)).length;
    await writer.control.shutdown();
    await writer.stop();
    const live = new Link<WriteItem>('ingest-2');
    writer = await startWriter(store.dbPath, live, { ...store.overrides, ...FIXED_PRICES });
    let done = false;
    const recomputing = writer.control.recompute(Date.UTC(2025, 11, 1)).finally(() => (done = true));
    // Meanwhile: rows dated ahead of the walk and behind it (a spool replay), and of today.
    let committedDuring = 0;
    for (let b = 0; b < 30; b++) {
      await send(live, [call(JAN_10, 'test-model-b'), call(JAN_20, 'test-model-b'), call(Date.now(), 'test-model-b')]);
      if (!done) committedDuring++;
    }
    const result = await recomputing;
    assert.ok(committedDuring > 0, 'batches committed while the recompute ran');
    assert.equal(await store.count('llm_usage'), old.length + 90, 'every row stored once');
    assert.equal(result.rows_changed, affected, 'exactly the old rows after the price change');
    assert.deepEqual(await rollupMismatches(store), [], 'the rollups equal the raw rows');
    const again = await writer.control.recompute(Date.UTC(2025, 11, 1));
    assert.deepEqual([again.rows_checked, again.rows_changed], [old.length + 90, 0], 'the rows of the walk priced now');
  });

// PostgreSQL walks by ts, a chunk per RECOMPUTE_CHUNK_ROWS rows that ends with a whole millisecond, and
// only this host's rows (SQLite walks its one host's file by rowid: the tests above).
test("recompute on PostgreSQL: a millisecond shared across a chunk boundary is walked whole, another host's rows are left alone [postgres]", async (t) => {
  const store = await openBackend(t, 'postgres');
  if (!store) return;
  const other = new Link<WriteItem>('ingest-other');
  let writer = await startWriter(store.dbPath, other, { ...store.overrides, ...PRICES, hostName: 'other-host' });
  await send(other, [call(JAN_20, 'test-model-a'), call(JAN_20 + 1, 'test-model-b')]);
  await writer.control.shutdown();
  await writer.stop();
  const otherCosts = () =>
    store.rows<{ cost_usd: number }>("SELECT cost_usd FROM llm_usage WHERE host = 'other-host' ORDER BY ts");
  const otherRollups = () =>
    store.rows<{ cost_usd: number }>(
      `SELECT cost_usd FROM llm_usage_hourly WHERE host = 'other-host' UNION ALL SELECT cost_usd FROM llm_usage_daily WHERE host = 'other-host'
      UNION ALL SELECT cost_usd FROM llm_usage_weekly WHERE host = 'other-host' ORDER BY 1`,
    );
  const [costsBefore, rollupsBefore] = [await otherCosts(), await otherRollups()];
  assert.equal(costsBefore.length, 2, "the other host's rows are stored");
  // Rows 4,995 to 5,009 of the walk share one millisecond: the first chunk's 5,000th row is among them.
  const tie = JAN_20 + 10_000;
  const rows = Array.from({ length: 5_020 }, (_, i) =>
    call(JAN_20 + (i < 4_995 ? i : i < 5_010 ? 10_000 : 10_000 + i), 'test-model-a'),
  );
  const link = new Link<WriteItem>('ingest');
  writer = await startWriter(store.dbPath, link, { ...store.overrides, ...PRICES });
  await send(link, rows);
  await writer.control.shutdown();
  await writer.stop();
  writer = await startWriter(store.dbPath, new Link<WriteItem>('ingest-2'), { ...store.overrides, ...FIXED_PRICES });
  const result = await writer.control.recompute(Date.UTC(2025, 11, 1));
  assert.deepEqual(
    [result.rows_checked, result.rows_changed],
    [rows.length, rows.length],
    'every row of this host once',
  );
  const [{ n: tied }] = await store.rows<{ n: number }>(
    `SELECT count(*)::int AS n FROM llm_usage WHERE host <> 'other-host' AND ts = '${new Date(tie).toISOString()}'`,
  );
  assert.equal(tied, 15, 'the rows sharing the boundary millisecond are stored');
  const [{ n: stale }] = await store.rows<{ n: number }>(
    "SELECT count(*)::int AS n FROM llm_usage WHERE host <> 'other-host' AND abs(cost_usd - 0.0035) > 1e-12",
  );
  assert.equal(stale, 0, "every one of this host's rows at the fixed price (1000·1 + 500·5 µUSD)");
  assert.deepEqual(await otherCosts(), costsBefore, "the other host's rows keep their cost");
  assert.deepEqual(await otherRollups(), rollupsBefore, 'and so do its rollups');
});

for (const kind of BACKENDS)
  test(`kissmon usage recompute through a running monitor's admin socket [${kind}]`, async (t) => {
    const store = await openBackend(t, kind);
    if (!store) return;
    const dir = new TestDir();
    t.after(() => dir.remove());
    const configFile = (prices: ConfigOverrides) => {
      const path = join(dir.path, 'config.json');
      writeFileSync(path, JSON.stringify(prices));
      return path;
    };
    const start = (prices: ConfigOverrides) =>
      startMonitor(
        dir,
        ['--socket', dir.socket, '--db', store.dbPath, '--host-name', 'cli-host', '--config', configFile(prices)],
        { pathFlags: false },
      );
    let monitor = await start(PRICES);
    // The server dates each row on arrival (now): after the Jan 15 change, output 4 → 5 USD per 1M.
    const rows = [
      call(0, 'test-model-a', parts),
      call(0, 'test-model-b'),
      call(0, 'other-model'),
      call(0, 'gpt-4o-mini'),
    ];
    await sendLines(monitor.socket, [
      line({ type: 'register', channel: 'acct', pid: process.pid, features: { llm: true } }),
      ...rows.map((row) => line({ ...row, at: undefined })), // JSON leaves `at` out
    ]);
    await waitFor('rows committed', async () => {
      await flush(monitor);
      return (await store.count('llm_usage')) === rows.length;
    });
    await stopMonitor(monitor);
    monitor = await start(FIXED_PRICES);
    try {
      const first = await kissmon(['usage', 'recompute', '--since', '400d', '--socket', dir.socket, '--json']);
      assert.equal(first.code, 0, first.stderr);
      assert.deepEqual(
        { ...(JSON.parse(first.stdout) as object), since: undefined },
        { since: undefined, rows_checked: 4, rows_changed: 3, rows_priced_now: 1, rows_unpriced_now: 0 },
      );
      assert.deepEqual((await storedCosts(store)).map(([, model, cost]) => [model, cost]).sort(), [
        ['gpt-4o-mini', 450],
        ['other-model', 4500],
        ['test-model-a', 3500],
        ['test-model-b', 3500],
      ]);
      const second = await kissmon(['usage', 'recompute', '--since', '400d', '--socket', dir.socket]);
      assert.match(second.stdout, /^checked 4 rows since .*: 0 re-priced \(0 priced now, 0 without a price now\)\n$/);
    } finally {
      await stopMonitor(monitor);
    }
  });

for (const kind of BACKENDS)
  test(`a budget crossing 80 % then 100 % signals warning then critical, once per period, also across a writer restart [${kind}]`, async (t) => {
    const store = await openBackend(t, kind);
    if (!store) return;
    const dbPath = store.dbPath;
    const budgets: ConfigOverrides = {
      ...store.overrides,
      prices: { 'budget-model': { input: 1, output: 0 } }, // 1 USD per 1M input tokens
      budgets: [
        { name: 'fleet-daily', period: 'day', limitUsd: 1, warnAtPct: 80 },
        { name: 'other-channel', channel: 'nobody_*', period: 'month', limitUsd: 0.1, warnAtPct: 80 },
      ] as never,
    };
    const received: AlerterInput[] = [];
    const alerterEnd = () => {
      const channel = new MessageChannel();
      const link = new Link<never, AlerterInput>('alerter', {
        onBatch: (items, ack) => {
          received.push(...items);
          ack();
        },
      });
      link.attach(channel.port1);
      return channel.port2;
    };
    const link = new Link<WriteItem>('ingest');
    let writer = await startWriter(dbPath, link, budgets, 1, alerterEnd());
    const spend = (usd: number): LlmUsageRow => ({
      type: 'llm_usage',
      at: Date.now(),
      channel: 'bud',
      model: 'budget-model',
      feature: 'f',
      tokens_in: Math.round(usd * 1e6),
      tokens_out: 0,
      latency_ms: 1,
    });
    const levels = () =>
      received.filter((r) => r.type === 'budget').map((r) => r.type === 'budget' && `${r.budget}:${r.level}:${r.pct}`);

    await send(link, [spend(0.5)]);
    await send(link, [spend(0.35)]); // 85 %
    await waitFor('warning signalled', () => levels().length >= 1);
    await send(link, [spend(0.1)]); // 95 %: still warning
    await send(link, [spend(0.1), spend(0.05)]); // 110 %
    await waitFor('critical signalled', () => levels().length >= 2);
    await send(link, [spend(0.2)]); // 130 %: still critical
    const status = await writer.control.budgets();
    assert.equal(status?.find((b) => b.name === 'fleet-daily')?.level, 'critical');
    assert.equal(status?.find((b) => b.name === 'fleet-daily')?.spent_usd, 1.3);
    await writer.control.shutdown();
    await writer.stop();

    // A restarted writer loads the day's spend from the rollups and the level it signalled: nothing again.
    const link2 = new Link<WriteItem>('ingest-2');
    writer = await startWriter(dbPath, link2, budgets, 2, alerterEnd());
    assert.equal((await writer.control.budgets())?.find((b) => b.name === 'fleet-daily')?.spent_usd, 1.3);
    await send(link2, [spend(0.01)]);
    assert.equal((await writer.control.budgets())?.find((b) => b.name === 'fleet-daily')?.spent_usd, 1.31);
    await writer.control.shutdown();
    await writer.stop();
    // Proof the watcher works: the two signals it saw, in order, and none for the budget nobody spent on.
    assert.deepEqual(levels(), ['fleet-daily:warning:85', 'fleet-daily:critical:110']);
    const [state] = await store.rows<{ level: string }>(
      "SELECT level FROM llm_budget_state WHERE name = 'fleet-daily'",
    );
    assert.equal(state.level, 'critical');
  });

test('a new period starts at ok (signalled once, resolving the old alert) and crosses its own levels again', async () => {
  const dbPath = tempDb();
  const handle = await openWriteDatabase(dbPath, { busyTimeoutMs: 20 });
  after(() => handle.db.destroy());
  const config = resolveConfig({
    dbPath,
    budgets: [{ name: 'daily', period: 'day', limitUsd: 10, warnAtPct: 50, timeZone: 'Europe/Berlin' }] as never,
  });
  const day1 = Date.UTC(2026, 5, 1, 10); // 12:00 in Berlin (CEST)
  const tracker = new BudgetTracker(handle.sqlite, config, day1);
  const step = (at: number, usd: number) => {
    tracker.add(at, 'c', 'm', 'f', usd);
    const tx = handle.sqlite.transaction(() => tracker.stage(at));
    tx.immediate();
    return tracker.commit().map((s) => `${new Date(s.periodStart).toISOString()} ${s.level}`);
  };
  assert.deepEqual(step(day1, 6), ['2026-05-31T22:00:00.000Z warning']); // the Berlin day began at 22:00 UTC
  assert.deepEqual(step(day1 + 1000, 5), ['2026-05-31T22:00:00.000Z critical']);
  assert.deepEqual(step(day1 + 2000, 5), []);
  // 23:30 UTC is already the next day in Berlin: spend starts from 0, the level goes back to ok once.
  const day2 = Date.UTC(2026, 5, 1, 23, 30);
  assert.deepEqual(step(day2, 1), ['2026-06-01T22:00:00.000Z ok']);
  assert.deepEqual(step(day2 + 1000, 1), []);
  assert.deepEqual(step(day2 + 2000, 4), ['2026-06-01T22:00:00.000Z warning']);
  // A row of the old period (a late spool replay) counts for no current budget.
  assert.deepEqual(step(day1, 100), []);
  assert.deepEqual(
    tracker.status(day2 + 3000).map((b) => [b.spent_usd, b.level]),
    [[6, 'warning']],
  );
});

test('protocol: the new llm_usage fields are optional and checked; a part above its total is refused, counted by reason', () => {
  const line = (fields: object) =>
    Buffer.from(
      JSON.stringify({
        type: 'llm_usage',
        channel: 'c',
        model: 'm',
        feature: 'f',
        tokens_in: 10,
        tokens_out: 5,
        ...fields,
      }),
    );
  assert.equal(decodeLine(line({}), 32).ok, true, 'an old client');
  const full = decodeLine(
    line({
      tokens_cached: 10,
      tokens_reasoning: 5,
      provider: 'openai',
      status: 'rate_limited',
      error_type: '429',
      request_id: 'chatcmpl-1',
    }),
    32,
  );
  assert.equal(full.ok, true);
  assert.deepEqual(decodeLine(line({ tokens_cached: 11 }), 32), {
    ok: false,
    reason: 'invalid_token_parts',
    detail: 'llm_usage: tokens_cached must be at most tokens_in (cached tokens are part of the input)',
  });
  assert.equal((decodeLine(line({ tokens_reasoning: 6 }), 32) as { reason: string }).reason, 'invalid_token_parts');
  assert.equal((decodeLine(line({ status: 'exploded' }), 32) as { reason: string }).reason, 'invalid_fields');
});

test("config: prices in today's form or dated lists, budgets and digest validated with clear errors", () => {
  const config = resolveConfig({
    prices: {
      'my-model': { input: 1, output: 2 },
      'gpt-4o*': [
        { from: '2024-08-06', input: 2.5, cachedInput: 1.25, output: 10 },
        { from: '2024-05-13', input: 5, output: 15 },
      ],
    },
  });
  assert.deepEqual(config.prices['my-model'], { input: 1, output: 2 });
  assert.deepEqual(
    (config.prices['gpt-4o*'] as { from: string }[]).map((p) => p.from),
    ['2024-05-13', '2024-08-06'],
    'sorted by date',
  );
  assert.ok(config.prices['claude-sonnet-4'], 'built-in entries stay');
  const bad = (overrides: object, message: RegExp) =>
    assert.throws(() => resolveConfig(overrides), { name: 'TypeError', message });
  bad({ prices: { x: { input: -1, output: 1 } } }, /config\.prices\["x"\]\.input must be a number >= 0/);
  bad(
    { prices: { x: [{ from: 'yesterday', input: 1, output: 1 }] } },
    /config\.prices\["x"\]\[0\]\.from must be a date/,
  );
  bad(
    {
      prices: {
        x: [
          { from: '2025-01-01', input: 1, output: 1 },
          { from: '2025-01-01', input: 2, output: 2 },
        ],
      },
    },
    /two prices from the same date/,
  );
  bad({ prices: { x: { input: 1, output: 1, cached: 1 } } }, /config\.prices\["x"\]\.cached is not a price field/);
  bad({ budgets: [{ name: 'a', period: 'year', limitUsd: 1 }] }, /config\.budgets must be an array of/);
  bad(
    {
      budgets: [
        { name: 'a', period: 'day', limitUsd: 1 },
        { name: 'a', period: 'week', limitUsd: 2 },
      ],
    },
    /config\.budgets\[1\]\.name must be unique/,
  );
  bad(
    { budgets: [{ name: 'a', period: 'day', limitUsd: 1, timeZone: 'Mars/Olympus' }] },
    /config\.budgets\[0\]\.timeZone must be an IANA time zone/,
  );
  bad({ digest: { hour: 25 } }, /config\.digest must be null or/);
  assert.equal(
    resolveConfig({ budgets: [{ name: 'a', period: 'day', limitUsd: 1 }] as never }).budgets[0].warnAtPct,
    80,
    'warnAtPct defaults to 80',
  );
});

for (const kind of BACKENDS)
  test(`the daily digest goes out once per day through the alerter link, with yesterday against the day before [${kind}]`, async (t) => {
    const store = await openBackend(t, kind);
    if (!store) return;
    const dbPath = store.dbPath;
    const day = 86_400_000;
    const yesterdayNoon = Math.floor(Date.now() / day) * day - day / 2;
    const link = new Link<WriteItem>('ingest');
    let writer = await startWriter(dbPath, link, {
      ...store.overrides,
      prices: { 'digest-model': { input: 1, output: 0 } },
    });
    await send(link, [
      {
        type: 'llm_usage',
        at: yesterdayNoon,
        channel: 'big',
        model: 'digest-model',
        feature: 'f',
        tokens_in: 2_000_000,
        tokens_out: 0,
        latency_ms: 900,
      },
      {
        type: 'llm_usage',
        at: yesterdayNoon,
        channel: 'small',
        model: 'digest-model',
        feature: 'f',
        tokens_in: 500_000,
        tokens_out: 0,
        latency_ms: 100,
        status: 'error',
      },
      {
        type: 'llm_usage',
        at: yesterdayNoon - day,
        channel: 'big',
        model: 'digest-model',
        feature: 'f',
        tokens_in: 1_000_000,
        tokens_out: 0,
        latency_ms: 100,
      },
      {
        type: 'event',
        at: yesterdayNoon,
        channel: 'big',
        pid: 5,
        from: 'online',
        to: 'dead',
        reason: 'process_exited',
      },
    ]);
    await writer.control.shutdown();
    await writer.stop();
    const received: AlerterInput[] = [];
    const alerterEnd = () => {
      const channel = new MessageChannel();
      const end = new Link<never, AlerterInput>('alerter', {
        onBatch: (items, ack) => {
          received.push(...items);
          ack();
        },
      });
      end.attach(channel.port1);
      return channel.port2;
    };
    const config: ConfigOverrides = { ...store.overrides, digest: { hour: 0, timeZone: 'UTC' } }; // due from 00:00: a start sends the overdue one
    for (const incarnation of [2, 3]) {
      writer = await startWriter(
        dbPath,
        new Link<WriteItem>(`ingest-${incarnation}`),
        config,
        incarnation,
        alerterEnd(),
      );
      if (incarnation === 2) await waitFor('digest received', () => received.length > 0);
      await writer.control.shutdown();
      await writer.stop();
    }
    assert.equal(received.length, 1, 'once per day, also across a restart');
    const digest = received[0] as Extract<AlerterInput, { type: 'digest' }>;
    const data = digest.data as {
      spent_usd: number;
      previous_day_usd: number;
      change_pct: number;
      top_channels: { channel: string }[];
      failing_models: { model: string; error_rate_pct: number }[];
      bots_restarted_or_flapping: { channel: string; dead: number }[];
    };
    assert.equal(data.spent_usd, 2.5);
    assert.equal(data.previous_day_usd, 1);
    assert.equal(data.change_pct, 150);
    assert.deepEqual(
      data.top_channels.map((c) => c.channel),
      ['big', 'small'],
    );
    assert.deepEqual(data.failing_models, [{ model: 'digest-model', failed: 1, calls: 2, error_rate_pct: 50 }]);
    assert.deepEqual(
      data.bots_restarted_or_flapping.map((b) => [b.channel, b.dead]),
      [['big', 1]],
    );
    assert.match(digest.title, /^LLM digest \d{4}-\d\d-\d\d: 2\.50 USD$/);
    assert.match(digest.text, /over 2 calls; day before 1\.00 USD \(\+150 %\)/);
  });
