// `kissmon migrate` through the real CLI: a SQLite file written by the real db-writer (every data
// table) is copied into a fresh PostgreSQL database; every row is there with the host, counts and
// sums equal; a second run copies nothing; a run SIGKILLed after some batches resumes on re-run
// with exact counts, nothing doubled. Each test has its own database, dropped afterwards.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { Link } from '../src/actors/link.js';
import type { RowItem, WriteItem } from '../src/actors/db-writer-messages.js';
import { openPostgresWrite } from '../src/db/backend.js';
import { weekOfSql } from '../src/llm/rollups.js';
import type { MigrateResult } from '../src/migrate/migrate.js';
import { CLI } from './helpers/monitor-process.js';
import { postgresMissing, TestDatabase } from './helpers/postgres.js';
import { requireResource } from './helpers/resources.js';
import { waitFor } from './helpers/wait.js';
import { startWriter, stopWriters } from './helpers/writer.js';

const dir = mkdtempSync(join(tmpdir(), 'kissmon-migrate-'));
const clients: pg.Client[] = [];
const databases: TestDatabase[] = [];
after(async () => {
  await stopWriters();
  for (const c of clients) await c.end().catch(() => {});
  for (const d of databases) await d.drop();
  rmSync(dir, { recursive: true, force: true });
});

const pgMissing = await postgresMissing();

// Within every retention window (the writer prunes at start), 18 h back: the rows span hours and likely a day boundary.
const START = Math.floor((Date.now() - 18 * 3_600_000) / 60_000) * 60_000;
const CHANNELS = ['alpha', 'beta', 'gamma', 'delta', 'eps'];

/** `n` llm_usage rows and some of every other kind, deterministic. */
function items(n: number): RowItem[] {
  const out: RowItem[] = [];
  for (let i = 0; i < n; i++) {
    const channel = CHANNELS[i % CHANNELS.length];
    out.push({
      type: 'llm_usage',
      at: START + i * 997,
      channel,
      model: ['gpt-4o', 'gpt-4o-mini', 'unknown-model'][i % 3],
      feature: ['chat', 'tts'][i % 2],
      tokens_in: 100 + (i % 900),
      tokens_out: 10 + (i % 300),
      latency_ms: i % 10 === 0 ? null : 50 + (i % 4000) / 4,
      ...(i % 5 === 0 && { id: `call-${i}` }),
      ...(i % 3 === 0 && { provider: 'openai', tokens_cached: i % 50 }),
      ...(i % 7 === 0 && { status: 'error' as const, error_type: 'timeout' }),
    });
    if (i % 50 === 0)
      out.push({
        type: 'metric',
        at: START + i * 997,
        channel,
        pid: 1000 + (i % 5),
        rss_mb: 80 + (i % 13),
        cpu_pct: i % 100,
        cpu_pct_machine: (i % 100) / 2,
      });
    if (i % 200 === 0) {
      out.push({
        type: 'event',
        at: START + i * 997,
        channel,
        pid: 1000,
        from: 'online',
        to: 'stale',
        reason: 'no_heartbeat',
      });
      out.push({
        type: 'health',
        at: START + i * 997,
        health: {
          actor: 'registry',
          processed: i,
          queue_depth: 0,
          dropped: 0,
          loop_lag_p99_ms: 1.5,
          loop_lag_max_ms: 3,
          heap_used_mb: 12.3,
          heap_limit_mb: 518,
          uptime_s: i,
          restarts: 0,
          detail: { bots_online: 5 },
        },
      });
    }
  }
  // The current hour's calls: in llm_usage_hourly, not yet folded into llm_usage_daily (rollups.ts).
  for (let i = 0; i < 300; i++)
    out.push({
      type: 'llm_usage',
      at: Date.now() - i,
      channel: CHANNELS[i % CHANNELS.length],
      model: 'gpt-4o',
      feature: 'chat',
      tokens_in: 1_000 + i,
      tokens_out: 7,
      latency_ms: 100,
    });
  for (const [k, channel] of CHANNELS.entries())
    out.push({
      type: 'status',
      channel,
      pid: 1000 + k,
      status: k === 0 ? 'stale' : 'online',
      features_json: k === 1 ? '{"tts":true}' : null,
      registered_at: START,
      last_seen: START + n * 997,
      last_heartbeat: START + n * 997,
      start_time: 123_456 + k,
    });
  return out;
}

/** A SQLite file written by the real writer actor (worker thread, migrations, rollups). */
async function writtenDatabase(name: string, n: number, hostName: string): Promise<string> {
  const path = join(dir, name);
  const link = new Link<WriteItem>('ingest', { maxBatch: 1000 });
  const writer = await startWriter(path, link, { hostName });
  for (const item of items(n)) link.send(item);
  await waitFor('rows committed', () => link.pending === 0, 120_000);
  await writer.stop();
  return path;
}

function runMigrate(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, 'migrate', ...args], { encoding: 'utf8', timeout: 300_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A fresh database, dropped in `after` (migrate itself creates the tables). */
async function testDatabase(): Promise<TestDatabase> {
  const db = new TestDatabase();
  databases.push(db);
  return db.create();
}

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  clients.push(client);
  return client;
}

const TABLES = [
  'bot_status',
  'bot_events',
  'bot_metrics',
  'llm_usage',
  'llm_usage_hourly',
  'llm_usage_daily',
  'llm_usage_weekly',
  'llm_budget_state',
  'monitor_state',
  'worker_health',
];

/** Per table: the row count and column sums that must match between the two stores. */
const FIGURES: Record<string, string> = {
  bot_status:
    "count(*) AS n, sum(pid) AS pid, sum(start_time) AS start_time, max(last_seen) AS last_seen, string_agg(channel || ':' || status, ',' ORDER BY channel) AS bots",
  bot_events: 'count(*) AS n, sum(pid) AS pid, min(ts) AS first, max(ts) AS last',
  bot_metrics: 'count(*) AS n, sum(rss_mb) AS rss, sum(cpu_pct) AS cpu, min(ts) AS first, max(ts) AS last',
  llm_usage:
    'count(*) AS n, sum(tokens_in) AS tokens_in, sum(tokens_out) AS tokens_out, sum(tokens_cached) AS cached, sum(cost_usd) AS cost, count(id) AS ids, count(latency_ms) AS latencies, sum(latency_ms) AS latency',
  llm_usage_hourly:
    'count(*) AS n, sum(calls) AS calls, sum(tokens_in) AS tokens_in, sum(cost_usd) AS cost, sum(latency_count) AS lc',
  llm_usage_daily:
    'count(*) AS n, sum(calls) AS calls, sum(tokens_in) AS tokens_in, sum(cost_usd) AS cost, sum(latency_count) AS lc',
  llm_usage_weekly:
    'count(*) AS n, sum(calls) AS calls, sum(tokens_in) AS tokens_in, sum(cost_usd) AS cost, sum(latency_count) AS lc',
  llm_budget_state: 'count(*) AS n',
  monitor_state: "count(*) AS n, string_agg(key || '=' || value, ',' ORDER BY key) AS kv",
  worker_health: 'count(*) AS n, sum(processed) AS processed, sum(uptime_s) AS uptime',
};

/**
 * What llm_usage_daily must hold on PostgreSQL, where the writer keeps it current: every hourly row
 * summed into its day (SQLite's daily table leaves out the hours after its fold watermark).
 */
const WHOLE_DAYS = `(SELECT substr(ts, 1, 10) || 'T00:00:00.000Z' AS ts, channel, model, feature, provider, status,
  sum(calls) AS calls, sum(tokens_in) AS tokens_in, sum(cost_usd) AS cost_usd, sum(latency_count) AS latency_count
  FROM llm_usage_hourly GROUP BY 1, 2, 3, 4, 5, 6)`;
/** Likewise llm_usage_weekly: every hourly row summed into its ISO week. */
const WHOLE_WEEKS = `(SELECT ${weekOfSql('ts')} AS ts, channel, model, feature, provider, status,
  sum(calls) AS calls, sum(tokens_in) AS tokens_in, sum(cost_usd) AS cost_usd, sum(latency_count) AS latency_count
  FROM llm_usage_hourly GROUP BY 1, 2, 3, 4, 5, 6)`;

function sqliteFigures(path: string): Record<string, Record<string, unknown>> {
  const db = new BetterSqlite3(path, { readonly: true });
  try {
    const out: Record<string, Record<string, unknown>> = {};
    for (const t of TABLES) {
      // SQLite's group_concat has no ORDER BY inside; order the rows first.
      const figures = FIGURES[t].replace(/string_agg\((.*?), ',' ORDER BY (\w+)\)/g, "group_concat($1, ',')");
      const from = FIGURES[t].includes('string_agg')
        ? `(SELECT * FROM ${t} ORDER BY ${/ORDER BY (\w+)/.exec(FIGURES[t])![1]})`
        : t;
      out[t] = normalise(
        db
          .prepare(
            `SELECT ${figures} FROM ${t === 'llm_usage_daily' ? WHOLE_DAYS : t === 'llm_usage_weekly' ? WHOLE_WEEKS : from}`,
          )
          .get() as Record<string, unknown>,
      );
    }
    return out;
  } finally {
    db.close();
  }
}

async function pgFigures(client: pg.Client, host: string): Promise<Record<string, Record<string, unknown>>> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const t of TABLES)
    out[t] = normalise(
      (await client.query<Record<string, unknown>>(`SELECT ${FIGURES[t]} FROM ${t} WHERE host = $1`, [host])).rows[0],
    );
  return out;
}

/** Numbers as numbers (pg gives bigint/numeric as text), floats to 10 significant digits (sums in another order). */
function normalise(row: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) {
    const n = typeof v === 'string' && /^-?\d+(\.\d+)?(e-?\d+)?$/.test(v) ? Number(v) : v;
    out[k] = typeof n === 'number' ? Number(n.toPrecision(10)) : n;
  }
  return out;
}

test('migrate copies every data table with the host, and a second run copies nothing', async (t) => {
  if (!requireResource(t, 'PostgreSQL', pgMissing)) return;
  const file = await writtenDatabase('full.db', 6_000, 'recorded-host');
  const want = sqliteFigures(file);
  assert.ok((want.llm_usage.n as number) === 6_300 && (want.llm_usage_hourly.n as number) > 20, JSON.stringify(want));
  const target = await testDatabase();

  // No --host-name: the host the file records.
  const first = runMigrate(['--from', file, '--to', target.url, '--batch-size', '700', '--json']);
  assert.equal(first.code, 0, first.stderr);
  const result = JSON.parse(first.stdout) as MigrateResult;
  assert.equal(result.host, 'recorded-host');
  assert.equal(result.host_from, 'source');
  const steps = result.tables.map((x) => x.table);
  assert.deepEqual(steps, [
    ...TABLES.slice(0, TABLES.indexOf('llm_usage_daily') + 1),
    'llm_usage_daily (with unfolded hours)',
    'llm_usage_weekly',
    'llm_usage_weekly (with unfolded days and hours)',
    ...TABLES.slice(TABLES.indexOf('llm_usage_weekly') + 1),
  ]);
  const folded = new BetterSqlite3(file, { readonly: true });
  const unfolded = (
    folded
      .prepare(
        `SELECT count(*) AS n FROM llm_usage_hourly WHERE ts >= (SELECT value FROM monitor_state WHERE key = 'llm_daily_until')`,
      )
      .get() as { n: number }
  ).n;
  folded.close();
  assert.ok(unfolded > 0, 'the file has hours its daily table does not hold yet');
  for (const x of result.tables) {
    if (x.table.startsWith('llm_usage_daily') || x.table.startsWith('llm_usage_weekly')) continue; // rows per day or week, checked by the sums below
    assert.equal(x.copied, want[x.table].n, `${x.table}: copied`);
    assert.equal(x.skipped, 0, `${x.table}: skipped`);
    assert.equal(x.earlier, 0, `${x.table}: earlier`);
  }
  assert.ok(
    ['alerts', 'alert_deliveries', 'delivery_cursor'].every((a) => result.not_copied.some((n) => n.table === a)),
    'the summary says which tables stay local',
  );

  const client = await connect(target.url);
  assert.deepEqual(await pgFigures(client, 'recorded-host'), want);
  // Nothing under another host; the alert tables are not in PostgreSQL at all.
  const { rows: hosts } = await client.query(`SELECT DISTINCT host FROM llm_usage`);
  assert.deepEqual(hosts, [{ host: 'recorded-host' }]);
  const { rows: ids } = await client.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM llm_usage_ids WHERE host = 'recorded-host'`,
  );
  assert.equal(ids[0].n, want.llm_usage.ids, 'every client id is in llm_usage_ids');

  const again = runMigrate(['--from', file, '--to', target.url]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /\b0 rows copied\b.*nothing new/);
  assert.match(again.stdout, /not copied: .*alerts/);
  const againJson = JSON.parse(runMigrate(['--from', file, '--to', target.url, '--json']).stdout) as MigrateResult;
  for (const [i, x] of againJson.tables.entries()) {
    assert.equal(x.copied + x.skipped, 0, `${x.table}: nothing read again`);
    assert.equal(x.earlier, result.tables[i].copied, `${x.table}: the earlier run's rows`);
  }
  assert.deepEqual(await pgFigures(client, 'recorded-host'), want, 'unchanged by the second run');
});

test('a migrate killed after some batches resumes: exact counts, nothing doubled', async (t) => {
  if (!requireResource(t, 'PostgreSQL', pgMissing)) return;
  const file = await writtenDatabase('big.db', 60_000, 'old-name');
  const want = sqliteFigures(file);
  const target = await testDatabase();
  const client = await connect(target.url);

  const child = spawn(
    process.execPath,
    [CLI, 'migrate', '--from', file, '--to', target.url, '--host-name', 'h1', '--batch-size', '100'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  try {
    // Killed once llm_usage (the big table) is partly copied.
    await waitFor(
      'some llm_usage batches committed',
      async () => {
        const { rows } = await client
          .query<{ copied: string }>(
            `SELECT copied FROM kissmon_migrate_progress WHERE host = 'h1' AND table_name = 'llm_usage'`,
          )
          .catch(() => ({ rows: [] as { copied: string }[] }));
        return rows.length > 0 && Number(rows[0].copied) >= 1_000;
      },
      120_000,
      5,
    );
  } finally {
    process.kill(child.pid!, 'SIGKILL');
  }
  await exited;
  const partial = Number(
    (await client.query<{ n: string }>(`SELECT count(*) AS n FROM llm_usage WHERE host = 'h1'`)).rows[0].n,
  );
  assert.ok(
    partial >= 1_000 && partial < 60_000,
    `killed midway (${partial} of 60,000 llm_usage rows copied); ${stderr}`,
  );
  assert.equal(partial % 100, 0, 'whole batches only: each commits with its cursor');

  const resumed = runMigrate([
    '--from',
    file,
    '--to',
    target.url,
    '--host-name',
    'h1',
    '--batch-size',
    '5000',
    '--json',
  ]);
  assert.equal(resumed.code, 0, resumed.stderr);
  const result = JSON.parse(resumed.stdout) as MigrateResult;
  const usage = result.tables.find((x) => x.table === 'llm_usage')!;
  assert.equal(usage.earlier, partial, 'the killed run’s batches are not read again');
  assert.equal(usage.copied, (want.llm_usage.n as number) - partial);
  assert.deepEqual(result.renamed_hosts, ['old-name']);
  assert.deepEqual(await pgFigures(client, 'h1'), want, 'exact counts and sums after the resume');

  const again = JSON.parse(
    runMigrate(['--from', file, '--to', target.url, '--host-name', 'h1', '--json']).stdout,
  ) as MigrateResult;
  assert.equal(
    again.tables.reduce((n, x) => n + x.copied, 0),
    0,
  );
});

test('rollup rows add up with the ones a monitor already wrote on PostgreSQL for the host', async (t) => {
  if (!requireResource(t, 'PostgreSQL', pgMissing)) return;
  const file = await writtenDatabase('merge.db', 2_000, 'h2');
  const source = new BetterSqlite3(file, { readonly: true });
  const hour = source.prepare('SELECT * FROM llm_usage_hourly ORDER BY ts LIMIT 1').get() as Record<string, unknown>;
  const hourlyCalls = (source.prepare('SELECT sum(calls) AS n FROM llm_usage_hourly').get() as { n: number }).n;
  source.close();
  const target = await testDatabase();
  await (await openPostgresWrite(target.url)).db.destroy();
  const client = await connect(target.url);
  // What a monitor on PostgreSQL rolled up for the same host and key: 3 calls of its own.
  const day = `${(hour.ts as string).slice(0, 10)}T00:00:00.000Z`;
  for (const [table, ts] of [
    ['llm_usage_hourly', hour.ts],
    ['llm_usage_daily', day],
  ] as const)
    await client.query(
      `INSERT INTO ${table} (host, ts, channel, model, feature, provider, status, calls, tokens_in, tokens_out, tokens_cached,
         tokens_reasoning, cost_usd, unpriced_calls, latency_count, latency_sum, latency_min, latency_max)
       VALUES ('h2', $1, $2, $3, $4, $5, $6, 3, 30, 3, 0, 0, 0.5, 0, 1, 5000, 5000, 5000)`,
      [ts, hour.channel, hour.model, hour.feature, hour.provider, hour.status],
    );
  const r = runMigrate(['--from', file, '--to', target.url, '--json']);
  assert.equal(r.code, 0, r.stderr);
  for (const table of ['llm_usage_hourly', 'llm_usage_daily']) {
    const { rows } = await client.query<{ calls: string; max: number }>(
      `SELECT sum(calls) AS calls, max(latency_max) AS max FROM ${table} WHERE host = 'h2'`,
    );
    assert.equal(Number(rows[0].calls), hourlyCalls + 3, `${table}: the copied calls and the monitor's own`);
    assert.equal(rows[0].max, 5000, `${table}: latency_max kept across the merge`);
  }
  const { rows: merged } = await client.query<{ calls: number; tokens_in: string }>(
    `SELECT calls, tokens_in FROM llm_usage_hourly WHERE host = 'h2' AND ts = $1 AND channel = $2 AND model = $3
       AND feature = $4 AND provider = $5 AND status = $6`,
    [hour.ts, hour.channel, hour.model, hour.feature, hour.provider, hour.status],
  );
  assert.deepEqual(
    merged.map((m) => [Number(m.calls), Number(m.tokens_in)]),
    [[(hour.calls as number) + 3, (hour.tokens_in as number) + 30]],
  );
});

test('migrate refuses a --to that is not a PostgreSQL URL and a source that is not a monitor database', async (t) => {
  const notUrl = runMigrate(['--from', join(dir, 'x.db'), '--to', join(dir, 'y.db')]);
  assert.equal(notUrl.code, 2);
  assert.match(notUrl.stderr, /--to must be a postgres/);
  if (!requireResource(t, 'PostgreSQL', pgMissing)) return;
  const empty = join(dir, 'empty.db');
  new BetterSqlite3(empty).close();
  const target = await testDatabase();
  const r = runMigrate(['--from', empty, '--to', target.url]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /no kissmon migrations/);
  const missing = runMigrate(['--from', join(dir, 'nope.db'), '--to', target.url]);
  assert.equal(missing.code, 2, missing.stderr);
  assert.match(missing.stderr, /cannot open/);
});
