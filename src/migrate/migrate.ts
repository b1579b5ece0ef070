// `kissmon migrate`: copies one host's SQLite history into a shared PostgreSQL store.
//
//   SQLite file (read-only, one read transaction = one snapshot)
//     │  per table, in cursor order (rowid, or the key of a WITHOUT ROWID table), batchSize rows
//     ▼
//   PostgreSQL: BEGIN · INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING · progress row · COMMIT
//
// Idempotent and resumable: each batch and the table's cursor (kissmon_migrate_progress, one row per
// host, source file and table) commit in one transaction, so a run killed anywhere resumes after
// the last batch that committed and copies nothing twice; a finished table has its cursor at the
// end and a second run copies 0. ON CONFLICT DO NOTHING on the keyed state tables (bot_status,
// budget and writer state) keeps what PostgreSQL already has for this host — a monitor that
// already runs there wrote newer state; those rows are counted as skipped. Rollup rows add to a
// key PostgreSQL has (its writer's rollups are additive, over calls it stored itself), and the
// daily and weekly tables are copied whole (planFolded). llm_usage ids go through llm_usage_ids, as the
// writer's do, so a call stored under the same id is kept once.
//
// The source file is identified by the time its first migration ran (kysely_migration, stable
// when the file is copied or moved), not by its path. Not copied: the alert tables (they stay in
// the monitor's local SQLite file beside the spool, docs/MULTI_HOST.md), delivery_cursor (the
// writer's exactly-once bookkeeping for its own spool, meaningless to another store) and hosts
// (heartbeats of running monitors; a row for a monitor that is not running would read as down).
import { realpathSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import BetterSqlite3 from 'better-sqlite3';
import type pg from 'pg';
import { defaultHostName, HOST_NAME_PATTERN } from '../config.js';
import { openPostgresWrite, redactUrl } from '../db/backend.js';
import { MonitorError } from '../errors.js';
import { registerHistogramFunctions } from '../llm/histogram.js';
import { DAILY_UNTIL_KEY, weekOfSql, weekStartMs, WEEKLY_UNTIL_KEY } from '../llm/rollups.js';

/** The source cannot be migrated as it is (missing, not a monitor database, too old). */
export class MigrateSourceError extends MonitorError {
  constructor(message: string) {
    super('ERR_MIGRATE_SOURCE', message);
  }
}

/** What is copied, in this order; `omit`: source columns PostgreSQL makes itself. */
const TABLES: { name: string; omit?: string[] }[] = [
  { name: 'bot_status' },
  { name: 'bot_events', omit: ['id'] }, // PostgreSQL numbers them (identity): ids of other hosts share the table
  { name: 'bot_metrics' },
  { name: 'llm_usage' },
  { name: 'llm_usage_hourly' },
  { name: 'llm_usage_daily' },
  { name: 'llm_usage_weekly' },
  { name: 'llm_budget_state' },
  { name: 'monitor_state' },
  { name: 'worker_health' },
];

/** Tables of the source that are deliberately left where they are, and why (the summary says so). */
export const NOT_COPIED: Record<string, string> = {
  alerts: 'alert state stays in the local SQLite file beside the spool',
  alert_groups: 'alert state stays in the local SQLite file beside the spool',
  alert_silences: 'alert state stays in the local SQLite file beside the spool',
  alert_deliveries: 'alert state stays in the local SQLite file beside the spool',
  delivery_cursor: "the writer's exactly-once cursor for its own spool, not data",
  hosts: 'heartbeats of running monitors; the monitor writes its own row when it runs on PostgreSQL',
};

const PROGRESS_TABLE = 'kissmon_migrate_progress';

export interface MigrateOptions {
  /** The SQLite file. */
  from: string;
  /** postgres:// URL. */
  to: string;
  /** Host name the rows get; default the one the file records, else this machine's. */
  hostName?: string;
  batchSize?: number;
  /** After every committed batch (and once per table at its start). */
  onProgress?: (p: TableProgress) => void;
}

export interface TableProgress {
  table: string;
  /** Rows of the source table in this run's snapshot that were not copied by an earlier run. */
  total: number;
  /** Rows of those handled so far in this run (copied + skipped). */
  done: number;
}

export interface TableResult {
  table: string;
  /** Rows in the source table. */
  source_rows: number;
  /** Inserted into PostgreSQL by this run. */
  copied: number;
  /** Read by this run but already in PostgreSQL (same key, or same llm_usage id). */
  skipped: number;
  /** Rows an earlier run had handled (copied or skipped); this run did not read them again. */
  earlier: number;
}

export interface MigrateResult {
  host: string;
  /** Where the host name came from. */
  host_from: 'flag' | 'source' | 'hostname';
  /** The source as recorded in the progress table. */
  source: string;
  from: string;
  to: string;
  tables: TableResult[];
  not_copied: { table: string; reason: string }[];
  /** Host names the source's rows carried other than `host` (they are copied as `host`). */
  renamed_hosts: string[];
  seconds: number;
}

type Cursor = { rowid: number } | { key: unknown[] } | null;

interface Plan {
  /** The target table. */
  table: string;
  /** Its name in the progress table and the summary (the table, or a step of it). */
  step: string;
  /** What is read: the source table, or a derived query over it (the daily fold). */
  from: string;
  /** Parameters of `from`. */
  fromParams: unknown[];
  columns: string[];
  /** PostgreSQL array type per column (`text[]`, `int8[]`, …). */
  arrayTypes: string[];
  /** null: the rowid; else the key columns of a WITHOUT ROWID table. */
  keyColumns: string[] | null;
}

const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;

export async function migrate(options: MigrateOptions): Promise<MigrateResult> {
  const started = performance.now();
  const batchSize = options.batchSize ?? 5_000;
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new TypeError('options.batchSize must be a positive integer');
  if (options.hostName !== undefined && !new RegExp(HOST_NAME_PATTERN).test(options.hostName))
    throw new TypeError('--host-name must be 1–64 characters of A-Z a-z 0-9 _ . -');

  let sqlite: BetterSqlite3.Database;
  try {
    sqlite = new BetterSqlite3(options.from, { readonly: true, fileMustExist: true });
  } catch (err) {
    throw new MigrateSourceError(`cannot open ${options.from}: ${(err as Error).message}`);
  }
  let handle: Awaited<ReturnType<typeof openPostgresWrite>> | null = null;
  try {
    sqlite.pragma('busy_timeout = 5000');
    registerHistogramFunctions(sqlite); // kissmon_hist_agg, for the daily fold
    // One snapshot for the whole run: a monitor still writing the file cannot tear a table.
    sqlite.exec('BEGIN');
    const sourceTables = new Set(
      (sqlite.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).all() as { name: string }[]).map(
        (r) => r.name,
      ),
    );
    const source = sourceIdentity(sqlite, sourceTables, options.from);
    const recorded = recordedHosts(sqlite, sourceTables);
    const host = options.hostName ?? recorded[0] ?? defaultHostName();
    const hostFrom = options.hostName !== undefined ? 'flag' : recorded.length ? 'source' : 'hostname';

    handle = await openPostgresWrite(options.to, { applicationName: 'kissmon-migrate', queryTimeoutMs: 300_000 });
    const client = await handle.pool.connect();
    try {
      await client.query(`CREATE TABLE IF NOT EXISTS ${PROGRESS_TABLE} (
        host text NOT NULL, source text NOT NULL, table_name text NOT NULL,
        cursor_json text NOT NULL, copied bigint NOT NULL, skipped bigint NOT NULL,
        source_path text NOT NULL, updated_at text NOT NULL,
        PRIMARY KEY (host, source, table_name))`);
      const targetColumns = await pgColumns(client);
      const results: TableResult[] = [];
      for (const spec of TABLES) {
        // A source from before 0007 has no weeks: they are made from its days (planFolded).
        const weeksFromDays = spec.name === 'llm_usage_weekly' && !sourceTables.has(spec.name);
        if (!sourceTables.has(weeksFromDays ? 'llm_usage_daily' : spec.name) || !targetColumns.has(spec.name)) continue;
        const target = targetColumns.get(spec.name)!;
        const plan = planTable(sqlite, weeksFromDays ? { name: 'llm_usage_daily' } : spec, target);
        const steps =
          spec.name === 'llm_usage_daily' || spec.name === 'llm_usage_weekly'
            ? planFolded(sqlite, { ...plan, table: spec.name, step: spec.name }, !weeksFromDays)
            : [plan];
        for (const step of steps) {
          step.arrayTypes = ['text[]', ...step.columns.map((c) => `${target.get(c)!}[]`)];
          results.push(await copyTable(sqlite, client, step, { host, source, batchSize, path: options.from }, options));
        }
      }
      const notCopied = [...sourceTables]
        .filter((t) => t in NOT_COPIED)
        .map((table) => ({ table, reason: NOT_COPIED[table] }));
      return {
        host,
        host_from: hostFrom,
        source,
        from: options.from,
        to: redactUrl(options.to),
        tables: results,
        not_copied: notCopied,
        renamed_hosts: recorded.filter((h) => h !== host),
        seconds: Math.round((performance.now() - started) / 100) / 10,
      };
    } finally {
      client.release();
    }
  } finally {
    if (sqlite.inTransaction) sqlite.exec('COMMIT');
    sqlite.close();
    await handle?.db.destroy();
  }
}

/** "sqlite:<when 0001_initial ran>": the same for a copy of the file, different for another file. */
function sourceIdentity(sqlite: BetterSqlite3.Database, tables: Set<string>, path: string): string {
  if (!tables.has('kysely_migration') || !tables.has('llm_usage_hourly'))
    throw new MigrateSourceError(
      `${path} has no kissmon migrations up to 0004 (no rollup tables): start this version's monitor on it once (kissmon start --db ${path}), stop it, then migrate`,
    );
  const first = sqlite.prepare(`SELECT timestamp FROM kysely_migration WHERE name = '0001_initial'`).get() as
    { timestamp: string } | undefined;
  if (!first) throw new MigrateSourceError(`${path}: kysely_migration has no 0001_initial row`);
  return `sqlite:${first.timestamp}`;
}

/** Host names the file records (its hosts row, else its rows' host column), most recent first. */
function recordedHosts(sqlite: BetterSqlite3.Database, tables: Set<string>): string[] {
  const names = new Set<string>();
  const hasHostColumn = (table: string) =>
    tables.has(table) &&
    (sqlite.prepare(`SELECT name FROM pragma_table_info(?)`).all(table) as { name: string }[]).some(
      (c) => c.name === 'host',
    );
  if (hasHostColumn('hosts'))
    for (const r of sqlite.prepare(`SELECT host FROM hosts ORDER BY last_seen DESC`).all() as { host: string }[])
      names.add(r.host);
  for (const table of ['bot_status', 'llm_usage_daily'])
    if (hasHostColumn(table))
      for (const r of sqlite.prepare(`SELECT DISTINCT host FROM ${table} WHERE host <> '' LIMIT 10`).all() as {
        host: string;
      }[])
        names.add(r.host);
  return [...names].filter((h) => new RegExp(HOST_NAME_PATTERN).test(h));
}

/** Column name → its type (udt_name, e.g. text, int8, float8, bytea) per table of the current schema. */
async function pgColumns(client: pg.PoolClient): Promise<Map<string, Map<string, string>>> {
  const { rows } = await client.query<{ table_name: string; column_name: string; udt_name: string }>(
    `SELECT c.table_name, c.column_name, c.udt_name FROM information_schema.columns c
     WHERE c.table_schema = current_schema() ORDER BY c.table_name, c.ordinal_position`,
  );
  const tables = new Map<string, Map<string, string>>();
  for (const r of rows) {
    if (!tables.has(r.table_name)) tables.set(r.table_name, new Map());
    tables.get(r.table_name)!.set(r.column_name, r.udt_name);
  }
  return tables;
}

function planTable(sqlite: BetterSqlite3.Database, spec: (typeof TABLES)[number], target: Map<string, string>): Plan {
  const info = sqlite.prepare(`SELECT name, pk FROM pragma_table_info(?)`).all(spec.name) as {
    name: string;
    pk: number;
  }[];
  // Every source column PostgreSQL also has, but host: every row gets the migration's host name.
  const columns = info
    .map((c) => c.name)
    .filter((c) => c !== 'host' && target.has(c) && !(spec.omit ?? []).includes(c));
  const withoutRowid = /\bWITHOUT\s+ROWID\b/i.test(
    (
      sqlite.prepare(`SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?`).get(spec.name) as {
        sql: string;
      }
    ).sql,
  );
  const keyColumns = withoutRowid
    ? info
        .filter((c) => c.pk > 0)
        .sort((a, b) => a.pk - b.pk)
        .map((c) => c.name)
    : null;
  return {
    table: spec.name,
    step: spec.name,
    from: quote(spec.name),
    fromParams: [],
    columns,
    arrayTypes: ['text[]', ...columns.map((c) => `${target.get(c)!}[]`)],
    keyColumns,
  };
}

const SUMMED = [
  'calls',
  'tokens_in',
  'tokens_out',
  'tokens_cached',
  'tokens_reasoning',
  'cost_usd',
  'unpriced_calls',
  'latency_count',
  'latency_sum',
];

const watermark = (sqlite: BetterSqlite3.Database, key: string) =>
  (sqlite.prepare(`SELECT max(value) AS w FROM monitor_state WHERE key = ?`).get(key) as { w: string | null }).w;

/**
 * The daily or weekly rollups, split where the source's folds stopped. SQLite's llm_usage_daily
 * holds the hourly rows before its watermark (monitor_state llm_daily_until; src/llm/rollups.ts),
 * the hours after it only in llm_usage_hourly; llm_usage_weekly the daily rows before its own
 * (llm_weekly_until), the days after it only in llm_usage_daily (and hourly). On PostgreSQL the
 * writer keeps every table current, so the copy must be whole: buckets before the watermark's
 * bucket are copied as they are; from that bucket on, each row is the source's row plus its
 * unfolded days and hours, summed here (histograms merged with the source's own aggregate) into
 * one row per key. `stored: false`: a source from before 0007, whose weeks are all made from days.
 */
function planFolded(sqlite: BetterSqlite3.Database, plan: Plan, stored = true): Plan[] {
  const weekly = plan.table === 'llm_usage_weekly';
  const hoursFrom = watermark(sqlite, DAILY_UNTIL_KEY);
  const daysFrom = weekly ? (stored ? (watermark(sqlite, WEEKLY_UNTIL_KEY) ?? '') : '') : null;
  // No daily watermark: a file from before it, whose days hold every hour already (as rollups.ts reads it).
  if (!weekly && !hoursFrom) return [plan];
  const bucketSql = weekly ? weekOfSql : (ts: string) => `substr(${ts}, 1, 10) || 'T00:00:00.000Z'`;
  const bucketOf = (ts: string) =>
    weekly ? new Date(weekStartMs(Date.parse(ts.slice(0, 10)))).toISOString() : `${ts.slice(0, 10)}T00:00:00.000Z`;
  const from = weekly ? daysFrom! : hoursFrom!;
  const first = from ? bucketOf(from) : '';
  const key = plan.keyColumns!;
  const hourlyColumns = new Set(
    (sqlite.prepare(`SELECT name FROM pragma_table_info('llm_usage_hourly')`).all() as { name: string }[]).map(
      (c) => c.name,
    ),
  );
  const cols = [...new Set([...key, ...plan.columns])].filter((c) => hourlyColumns.has(c));
  const bucketed = cols.map((c) => (c === 'ts' ? `${bucketSql('ts')} AS ts` : quote(c))).join(', ');
  const agg = (c: string) =>
    key.includes(c)
      ? quote(c)
      : SUMMED.includes(c)
        ? `sum(${quote(c)}) AS ${quote(c)}`
        : c === 'latency_min'
          ? 'min(latency_min) AS latency_min'
          : c === 'latency_max'
            ? 'max(latency_max) AS latency_max'
            : c === 'latency_hist'
              ? 'kissmon_hist_agg(latency_hist) AS latency_hist'
              : `max(${quote(c)}) AS ${quote(c)}`;
  // The source's own rows from the watermark's bucket on, then what its folds left out, bucketed.
  const parts: [sql: string, since: string][] = [];
  if (stored) parts.push([`SELECT ${cols.map(quote).join(', ')} FROM ${quote(plan.table)} WHERE ts >= ?`, first]);
  if (weekly) parts.push([`SELECT ${bucketed} FROM llm_usage_daily WHERE ts >= ?`, from]);
  if (hoursFrom) parts.push([`SELECT ${bucketed} FROM llm_usage_hourly WHERE ts >= ?`, hoursFrom]);
  const derived = `(SELECT ${cols.map(agg).join(', ')} FROM (
      ${parts.map(([q]) => q).join(' UNION ALL ')}
    ) GROUP BY ${key.map(quote).join(', ')})`;
  return [
    ...(stored && first
      ? [{ ...plan, from: `(SELECT * FROM ${quote(plan.table)} WHERE ts < ?)`, fromParams: [first] }]
      : []),
    {
      ...plan,
      step: `${plan.table} (with unfolded ${weekly ? 'days and hours' : 'hours'})`,
      from: derived,
      fromParams: parts.map(([, since]) => since),
      columns: plan.columns.filter((c) => cols.includes(c)),
    },
  ];
}

interface CopyContext {
  host: string;
  source: string;
  batchSize: number;
  path: string;
}

async function copyTable(
  sqlite: BetterSqlite3.Database,
  client: pg.PoolClient,
  plan: Plan,
  ctx: CopyContext,
  options: MigrateOptions,
): Promise<TableResult> {
  const progress = await client.query<{ cursor_json: string; copied: string; skipped: string }>(
    `SELECT cursor_json, copied, skipped FROM ${PROGRESS_TABLE} WHERE host = $1 AND source = $2 AND table_name = $3`,
    [ctx.host, ctx.source, plan.step],
  );
  let cursor: Cursor = progress.rows[0] ? (JSON.parse(progress.rows[0].cursor_json) as Cursor) : null;
  const earlier = progress.rows[0] ? Number(progress.rows[0].copied) + Number(progress.rows[0].skipped) : 0;

  const t = plan.from;
  const p = plan.fromParams;
  const selectCols = plan.columns.map(quote).join(', ');
  const sourceRows = (sqlite.prepare(`SELECT count(*) AS n FROM ${t}`).get(...p) as { n: number }).n;
  let read: BetterSqlite3.Statement;
  let readFirst: BetterSqlite3.Statement;
  let remaining: number;
  if (plan.keyColumns) {
    const key = plan.keyColumns.map(quote).join(', ');
    const marks = plan.keyColumns.map(() => '?').join(', ');
    readFirst = sqlite.prepare(`SELECT ${key}, ${selectCols} FROM ${t} ORDER BY ${key} LIMIT ?`);
    read = sqlite.prepare(`SELECT ${key}, ${selectCols} FROM ${t} WHERE (${key}) > (${marks}) ORDER BY ${key} LIMIT ?`);
    remaining =
      cursor && 'key' in cursor
        ? (
            sqlite.prepare(`SELECT count(*) AS n FROM ${t} WHERE (${key}) > (${marks})`).get(...p, ...cursor.key) as {
              n: number;
            }
          ).n
        : sourceRows;
  } else {
    readFirst = sqlite.prepare(`SELECT rowid AS __rowid, ${selectCols} FROM ${t} ORDER BY rowid LIMIT ?`);
    read = sqlite.prepare(`SELECT rowid AS __rowid, ${selectCols} FROM ${t} WHERE rowid > ? ORDER BY rowid LIMIT ?`);
    remaining =
      cursor && 'rowid' in cursor
        ? (sqlite.prepare(`SELECT count(*) AS n FROM ${t} WHERE rowid > ?`).get(...p, cursor.rowid) as { n: number }).n
        : sourceRows;
  }
  read.raw(true);
  readFirst.raw(true);
  const keyWidth = plan.keyColumns?.length ?? 1;

  const insert = insertSql(plan);
  let copied = 0;
  let skipped = 0;
  options.onProgress?.({ table: plan.table, total: remaining, done: 0 });
  for (;;) {
    const batch = (
      cursor === null
        ? readFirst.all(...p, ctx.batchSize)
        : 'key' in cursor
          ? read.all(...p, ...cursor.key, ctx.batchSize)
          : read.all(...p, cursor.rowid, ctx.batchSize)
    ) as unknown[][];
    if (batch.length === 0) break;
    const last = batch[batch.length - 1];
    const next: Cursor = plan.keyColumns ? { key: last.slice(0, keyWidth) } : { rowid: last[0] as number };
    // Column-wise arrays for unnest: host first, then the planned columns.
    const params: unknown[][] = [new Array<string>(batch.length).fill(ctx.host)];
    for (let c = 0; c < plan.columns.length; c++) params.push(batch.map((row) => row[keyWidth + c]));
    await client.query('BEGIN');
    try {
      const inserted = (await client.query(insert, params)).rowCount ?? 0;
      await client.query(
        `INSERT INTO ${PROGRESS_TABLE} (host, source, table_name, cursor_json, copied, skipped, source_path, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (host, source, table_name) DO UPDATE SET cursor_json = excluded.cursor_json,
           copied = ${PROGRESS_TABLE}.copied + excluded.copied, skipped = ${PROGRESS_TABLE}.skipped + excluded.skipped,
           source_path = excluded.source_path, updated_at = excluded.updated_at`,
        [
          ctx.host,
          ctx.source,
          plan.step,
          JSON.stringify(next),
          inserted,
          batch.length - inserted,
          absolute(ctx.path),
          new Date().toISOString(),
        ],
      );
      await client.query('COMMIT');
      copied += inserted;
      skipped += batch.length - inserted;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    }
    cursor = next;
    options.onProgress?.({ table: plan.table, total: remaining, done: copied + skipped });
  }
  return { table: plan.step, source_rows: sourceRows, copied, skipped, earlier };
}

/**
 * One statement per batch: `$1` is host, `$2…` the planned columns, each a typed array. llm_usage
 * on PostgreSQL keeps its client ids in llm_usage_ids (a partitioned table cannot have a unique
 * index without ts); a row whose id is there already is skipped, as the writer does.
 */
function insertSql(plan: Plan): string {
  const cols = ['host', ...plan.columns];
  const names = cols.map(quote).join(', ');
  const unnest = `unnest(${plan.arrayTypes.map((type, i) => `$${i + 1}::${type}`).join(', ')}) AS s(${names})`;
  if (plan.table === 'llm_usage' && plan.columns.includes('id')) {
    return `WITH s AS (SELECT * FROM ${unnest}),
      new_ids AS (INSERT INTO llm_usage_ids (host, id, ts) SELECT host, id, ts FROM s WHERE id IS NOT NULL
                  ON CONFLICT DO NOTHING RETURNING id)
      INSERT INTO llm_usage (${names}) SELECT ${names} FROM s WHERE s.id IS NULL OR s.id IN (SELECT id FROM new_ids)`;
  }
  if (['llm_usage_hourly', 'llm_usage_daily', 'llm_usage_weekly'].includes(plan.table)) {
    // The PostgreSQL writer's rollups are additive (src/db/postgres-store.ts): a key it has for
    // this host already counts calls it stored itself, disjoint from the copied ones, so the two
    // add up. PostgreSQL keeps no histograms; a merged row has none either.
    const t = quote(plan.table);
    const set = plan.columns
      .filter((c) => !(plan.keyColumns ?? []).includes(c))
      .map((c) =>
        SUMMED.includes(c)
          ? `${quote(c)} = ${t}.${quote(c)} + excluded.${quote(c)}`
          : c === 'latency_min'
            ? `latency_min = LEAST(${t}.latency_min, excluded.latency_min)`
            : c === 'latency_max'
              ? `latency_max = GREATEST(${t}.latency_max, excluded.latency_max)`
              : `${quote(c)} = NULL`,
      );
    const conflict = [...new Set([...(plan.keyColumns ?? []).filter((c) => c !== 'host'), 'host'])];
    return `INSERT INTO ${t} (${names}) SELECT ${names} FROM ${unnest}
      ON CONFLICT (${conflict.map(quote).join(', ')}) DO UPDATE SET ${set.join(', ')}`;
  }
  return `INSERT INTO ${quote(plan.table)} (${names}) SELECT ${names} FROM ${unnest} ON CONFLICT DO NOTHING`;
}

function absolute(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}
