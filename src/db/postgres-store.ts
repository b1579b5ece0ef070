// The writer's store on PostgreSQL (src/db/store.ts): a small pg pool; each plan is one
// transaction on one connection, every table written by one `INSERT ... SELECT * FROM unnest($n::type[], ...)`
// (one statement and one round trip per table whatever the batch size: ~116k rows/s single-thread
// here, twice a multi-row VALUES loop — DESIGN.md "New facts").
//
//   BEGIN · llm_usage_ids (new ids) · llm_usage · bot_status · bot_events · bot_metrics · worker_health
//         · delivery_cursor · COMMIT
//
// A broken connection, a server restart or pg_terminate_backend fails the attempt: the connection
// is thrown away (never back into the pool), the writer keeps the rows and retries. A failure
// during COMMIT leaves its outcome unknown; the writer reloads the cursors before the next attempt,
// so a batch that did commit is skipped then (exactly-once). A statement refused for one of its
// rows (a value the column cannot take) is run again row by row under savepoints, the refused
// rows dropped and counted, like SQLite's per-row errors.
//
// Client ids: llm_usage is partitioned by ts, and a unique index there would have to contain ts,
// so ids are made unique per host in llm_usage_ids (host, id) first and only the rows whose id was
// new are inserted (ids repeated inside one plan are counted as duplicates before that).
//
// Rollups: the stored rows of a plan are summed in JS per hour (and per day and ISO week) and key,
// and added to llm_usage_hourly, llm_usage_daily and llm_usage_weekly by one additive upsert each,
// in the same transaction (exactly-once like the rows). All three are kept current, so this host's
// daily watermark is simply the current hour (no weekly watermark is needed). Not SQLite's fold:
// reports on PostgreSQL read the raw rows (src/llm/report.ts), so a fold would only save the
// weekly upsert (a transaction's week keys are its day keys), at the price of a watermark, a
// late-row and a recompute path here too; the upsert's cost was within the bench's noise
// (docs/PERFORMANCE.md, "The weekly level"). PostgreSQL has no histogram merge: latency_hist stays
// NULL there, and percentiles come from the raw rows (as for rows from before 0004 on SQLite).
// Budgets: the same BudgetTracker as on SQLite, over storage read ahead at open (this host's
// levels, and its hourly spend since the earliest current period); levels it decides are written
// in the rows' transaction, signalled once that commits.
// The daily digest runs the same portable SQL as on SQLite (src/llm/digest.ts).
//
// Recompute: llm_usage has no unique key here (a partitioned table's key would have to contain
// ts), so the walk pages over ts alone: each chunk is this host's rows with ts in (previous
// chunk's last ts, the RECOMPUTE_CHUNK_ROWS-th next ts], whole milliseconds, so no ts value is ever
// split between two chunks. Within its transaction a chunk finds its rows again by
// (tableoid, ctid) for one `UPDATE … FROM unnest(…)` of the changed costs; if a row moved or went
// meanwhile (a new partition taking rows out of DEFAULT, a retention drop) the chunk is redone.
// Rows committed while the walk goes on are visited if dated after its position; a row dated
// behind it (a spool replay of old rows, a clock stepped back) is not, unlike SQLite's rowid walk,
// and needs not be: this store priced it on insert with the same price table the recompute applies.
// A chunk and a write never overlap (#exclusive): the additive rollup upserts could not lose each
// other's sums anyway, but two transactions upserting the same keys in different orders could
// deadlock, and the budgets' reload after the walk must see no write half done.
import { setImmediate as nextTurn, setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';
import type { Kysely } from 'kysely';
import type { LlmUsageRow, PruneResult, RowItem } from '../actors/db-writer-messages.js';
import type { MonitorConfig } from '../config.js';
import {
  emptyRecompute,
  RECOMPUTE_CHUNK_ROWS,
  RECOMPUTE_STOPPED,
  repriceStored,
  STORED_USAGE_COLUMNS,
  type RecomputeResult,
  type StoredUsageRow,
} from '../llm/accounting.js';
import {
  BudgetTracker,
  type BudgetLevel,
  type BudgetSignal,
  type BudgetStatus,
  type BudgetStorage,
} from '../llm/budgets.js';
import { periodStart } from '../llm/periods.js';
import { buildDigest, type DigestInput } from '../llm/digest.js';
import { PriceTable } from '../llm/prices.js';
import { DAILY_UNTIL_KEY, moveCost, ROLLUP_ADDED, ROLLUP_KEY, weekStartMs, type RollupInput } from '../llm/rollups.js';
import { isConnectionError, openPostgresWrite, type PostgresOptions } from './backend.js';
import { dropPartitionsBefore, ensurePartitions } from './partitions.js';
import { isoTime, OpenDatabaseError, PARTITIONED_TABLES, type Database } from './schema.js';
import {
  noRows,
  PRUNE_CHUNK_ROWS,
  type RetentionLimits,
  type RowCounts,
  type StoreFailure,
  type WritePlan,
  type WriteStore,
} from './store.js';
import type { HostBeat } from '../actors/host-messages.js';
import { upsertHost } from '../hosts/hosts.js';

const DAY_MS = 86_400_000;
/** Partitions are created this many days ahead of today (and one behind, for a clock a little off). */
const PARTITION_DAYS_AHEAD = 2;

/** The columns of each insert, in unnest order, with their array types. `host` is always $1. */
const USAGE_COLUMNS = [
  ['ts', 'text'],
  ['channel', 'text'],
  ['model', 'text'],
  ['feature', 'text'],
  ['tokens_in', 'int8'],
  ['tokens_out', 'int8'],
  ['latency_ms', 'float8'],
  ['cost_usd', 'float8'],
  ['id', 'text'],
  ['tokens_cached', 'int8'],
  ['tokens_reasoning', 'int8'],
  ['provider', 'text'],
  ['status', 'text'],
  ['error_type', 'text'],
  ['request_id', 'text'],
] as const;
const STATUS_COLUMNS = [
  ['channel', 'text'],
  ['pid', 'int8'],
  ['status', 'text'],
  ['features_json', 'text'],
  ['registered_at', 'text'],
  ['last_seen', 'text'],
  ['last_heartbeat', 'text'],
  ['start_time', 'int8'],
] as const;
const EVENT_COLUMNS = [
  ['ts', 'text'],
  ['channel', 'text'],
  ['pid', 'int8'],
  ['from_status', 'text'],
  ['to_status', 'text'],
  ['reason', 'text'],
] as const;
const METRIC_COLUMNS = [
  ['ts', 'text'],
  ['channel', 'text'],
  ['pid', 'int8'],
  ['rss_mb', 'float8'],
  ['cpu_pct', 'float8'],
  ['cpu_pct_machine', 'float8'],
] as const;
const HEALTH_COLUMNS = [
  ['ts', 'text'],
  ['actor', 'text'],
  ['processed', 'int8'],
  ['queue_depth', 'int8'],
  ['dropped', 'int8'],
  ['loop_lag_p99_ms', 'float8'],
  ['loop_lag_max_ms', 'float8'],
  ['heap_used_mb', 'float8'],
  ['uptime_s', 'int8'],
  ['restarts', 'int8'],
  ['detail_json', 'text'],
] as const;

type Columns = readonly (readonly [string, string])[];

/** `INSERT INTO table (host, a, b) SELECT $1, * FROM unnest($2::text[], $3::int8[])` + `tail`. */
function unnestInsert(table: string, columns: Columns, tail = ''): string {
  const names = columns.map(([c]) => c).join(', ');
  const arrays = columns.map(([, type], i) => `$${i + 2}::${type}[]`).join(', ');
  return `INSERT INTO ${table} (host, ${names}) SELECT $1, * FROM unnest(${arrays}) ${tail}`;
}

const ROLLUP_COLUMNS: Columns = [
  ...ROLLUP_KEY.map((c) => [c, 'text'] as const),
  ...ROLLUP_ADDED.map((c) => [c, c === 'cost_usd' || c === 'latency_sum' ? 'float8' : 'int8'] as const),
  ['latency_min', 'float8'],
  ['latency_max', 'float8'],
];
/** Adds a plan's sums to the stored rollup rows (LEAST/GREATEST skip NULLs: a side without latencies erases nothing). */
const rollupUpsert = (table: string) =>
  unnestInsert(
    table,
    ROLLUP_COLUMNS,
    `ON CONFLICT (${[...ROLLUP_KEY, 'host'].join(', ')}) DO UPDATE SET ${[
      ...ROLLUP_ADDED.map((c) => `${c} = ${table}.${c} + excluded.${c}`),
      `latency_min = LEAST(${table}.latency_min, excluded.latency_min)`,
      `latency_max = GREATEST(${table}.latency_max, excluded.latency_max)`,
    ].join(', ')}`,
  );

interface RollupSums {
  key: string[];
  calls: number;
  tokens_in: number;
  tokens_out: number;
  tokens_cached: number;
  tokens_reasoning: number;
  cost_usd: number;
  unpriced_calls: number;
  latency_count: number;
  latency_sum: number;
  latency_min: number | null;
  latency_max: number | null;
}

/** A call the rollups sum: the row (its key and figures) and its ISO ts. */
interface RolledUp {
  row: RollupInput;
  ts: string;
}

/** `items` summed per bucket (`bucketOf` their ISO ts) and key, each added to its key's sums by `add`. */
function sumRollups<T extends RolledUp>(
  items: T[],
  bucketOf: (ts: string) => string,
  add: (s: RollupSums, item: T) => void,
): RollupSums[] {
  const sums = new Map<string, RollupSums>();
  for (const item of items) {
    const { row } = item;
    const key = [bucketOf(item.ts), row.channel, row.model, row.feature, row.provider ?? '', row.status ?? 'ok'];
    const k = key.join('\0');
    let s = sums.get(k);
    if (!s) {
      s = {
        key: key.map((v) => text(v)!),
        calls: 0,
        tokens_in: 0,
        tokens_out: 0,
        tokens_cached: 0,
        tokens_reasoning: 0,
        cost_usd: 0,
        unpriced_calls: 0,
        latency_count: 0,
        latency_sum: 0,
        latency_min: null,
        latency_max: null,
      };
      sums.set(k, s);
    }
    add(s, item);
  }
  return [...sums.values()];
}

/** A stored call, added whole. */
function addCall(s: RollupSums, { row, cost }: StoredUsage): void {
  s.calls++;
  s.tokens_in += row.tokens_in;
  s.tokens_out += row.tokens_out;
  s.tokens_cached += row.tokens_cached ?? 0;
  s.tokens_reasoning += row.tokens_reasoning ?? 0;
  if (cost === null) s.unpriced_calls++;
  else s.cost_usd += cost;
  const latency = row.latency_ms;
  if (latency !== null && latency !== undefined) {
    s.latency_count++;
    s.latency_sum += latency;
    if (s.latency_min === null || latency < s.latency_min) s.latency_min = latency;
    if (s.latency_max === null || latency > s.latency_max) s.latency_max = latency;
  }
}

/** A stored call re-priced: only its cost moves. */
interface Repriced extends RolledUp {
  before: number | null;
  after: number | null;
}
const repriceCall = (s: RollupSums, { before, after }: Repriced) => moveCost(s, before, after);

const hourOf = (ts: string) => `${ts.slice(0, 13)}:00:00.000Z`;
const dayOf = (ts: string) => `${ts.slice(0, 10)}T00:00:00.000Z`;
/** The week start of `ts`; the last day's answer is kept (a plan's rows are mostly of one day). */
const weekOf = (() => {
  let day = '';
  let week = '';
  return (ts: string) => {
    if (!ts.startsWith(day) || day === '') {
      day = ts.slice(0, 10);
      week = new Date(weekStartMs(Date.parse(day))).toISOString();
    }
    return week;
  };
})();

const SQL = {
  hourly: rollupUpsert('llm_usage_hourly'),
  daily: rollupUpsert('llm_usage_daily'),
  weekly: rollupUpsert('llm_usage_weekly'),
  budget: `INSERT INTO llm_budget_state (host, name, period_start, level, updated_at) VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (host, name) DO UPDATE SET period_start = excluded.period_start, level = excluded.level, updated_at = excluded.updated_at`,
  watermark: `INSERT INTO monitor_state (host, key, value, updated_at) VALUES ($1, '${DAILY_UNTIL_KEY}', $2, $3)
    ON CONFLICT (host, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
  ids: `INSERT INTO llm_usage_ids (host, id, ts) SELECT $1, * FROM unnest($2::text[], $3::text[]) ON CONFLICT DO NOTHING RETURNING id`,
  // Recompute: this host's rows after the previous chunk's last ts, up to the ts of the
  // RECOMPUTE_CHUNK_ROWS-th, whole (every row of that ts); then the changed ones by (tableoid, ctid).
  recomputeChunk: `SELECT tableoid AS rel, ctid AS tid, ${STORED_USAGE_COLUMNS} FROM llm_usage
    WHERE host = $1 AND ts >= $2 AND ts > $3 AND ts <= (SELECT max(ts) FROM (SELECT ts FROM llm_usage
      WHERE host = $1 AND ts >= $2 AND ts > $3 ORDER BY ts LIMIT ${RECOMPUTE_CHUNK_ROWS}) AS chunk)`,
  setCost: `UPDATE llm_usage u SET cost_usd = d.cost FROM unnest($2::oid[], $3::tid[], $4::float8[]) AS d(rel, tid, cost)
    WHERE u.host = $1 AND u.ts > $5 AND u.ts <= $6 AND u.tableoid = d.rel AND u.ctid = d.tid`, // ts: only the chunk's partitions are probed
  // One row per channel per statement (ON CONFLICT DO UPDATE may not touch a row twice): the plan keeps the last.
  status: unnestInsert(
    'bot_status',
    STATUS_COLUMNS,
    `ON CONFLICT (host, channel) DO UPDATE SET ${STATUS_COLUMNS.slice(1)
      .map(([c]) => `${c} = excluded.${c}`)
      .join(', ')}`,
  ),
  event: unnestInsert('bot_events', EVENT_COLUMNS),
  metric: unnestInsert('bot_metrics', METRIC_COLUMNS),
  health: unnestInsert('worker_health', HEALTH_COLUMNS),
  cursor: `INSERT INTO delivery_cursor (host, sender, seq, updated_at) SELECT $1, s, q, $4 FROM unnest($2::text[], $3::int8[]) AS c(s, q)
    ON CONFLICT (host, sender) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at`,
};

/** SQLSTATEs of a transaction the server rolled back on its own: run it again. */
const SERIALIZATION_FAILURE = '40001';
/** Tries of one recompute chunk that may end in a statement timeout before the recompute gives up. */
const RECOMPUTE_MAX_TIMEOUTS = 3;
/** The server cancelled the statement (57014) or the client stopped waiting for it (pg's query_timeout). */
const isTimeout = (err: unknown) => {
  const e = err as { code?: unknown; message?: unknown } | null;
  return e?.code === '57014' || (typeof e?.message === 'string' && /Query read timeout/i.test(e.message));
};
const DEADLOCK = '40P01';

/** PostgreSQL text cannot hold NUL; SQLite stores it. Dropped rather than refusing the row. */
const text = (value: string | null | undefined): string | null =>
  value === null || value === undefined ? null : value.includes('\0') ? value.replaceAll('\0', '') : value;

/** Column-wise arrays for unnest, one per column. */
function columnsOf<T>(rows: T[], width: number, values: (row: T) => unknown[]): unknown[][] {
  const out = Array.from({ length: width }, () => new Array<unknown>(rows.length));
  rows.forEach((row, r) => {
    const v = values(row);
    for (let c = 0; c < width; c++) out[c][r] = v[c];
  });
  return out;
}

/** An llm_usage row of the plan with its price and ISO ts (computed once: the insert and both rollups use it). */
interface StoredUsage {
  row: LlmUsageRow;
  cost: number | null;
  ts: string;
}

/**
 * The plan's llm_usage INSERT: one array per column filled in one pass (no per-row arrays), and
 * the optional columns that are NULL in every row left out of the statement (their default is
 * NULL): most clients send none of them, and each unnest array is serialised here and parsed by
 * the server, 20,000 NULLs apiece.
 */
function usageInsert(host: string, stored: StoredUsage[]): { text: string; values: unknown[] } {
  const n = stored.length;
  const cols = USAGE_COLUMNS.map(() => new Array<unknown>(n));
  const [
    ts,
    channel,
    model,
    feature,
    tokensIn,
    tokensOut,
    latency,
    cost,
    id,
    cached,
    reasoning,
    provider,
    status,
    errorType,
    requestId,
  ] = cols;
  for (let i = 0; i < n; i++) {
    const u = stored[i];
    const r = u.row;
    ts[i] = u.ts;
    channel[i] = r.channel;
    model[i] = text(r.model);
    feature[i] = text(r.feature);
    tokensIn[i] = r.tokens_in;
    tokensOut[i] = r.tokens_out;
    latency[i] = r.latency_ms ?? null;
    cost[i] = u.cost;
    id[i] = text(r.id);
    cached[i] = r.tokens_cached ?? null;
    reasoning[i] = r.tokens_reasoning ?? null;
    provider[i] = text(r.provider);
    status[i] = r.status ?? null;
    errorType[i] = text(r.error_type);
    requestId[i] = text(r.request_id);
  }
  const kept = USAGE_COLUMNS.flatMap((column, c) =>
    c < USAGE_REQUIRED || cols[c].some((v) => v !== null) ? [[column, cols[c]] as const] : [],
  );
  const key = kept.map(([[name]]) => name).join(',');
  let sql = usageSql.get(key);
  if (sql === undefined) {
    sql = unnestInsert(
      'llm_usage',
      kept.map(([column]) => column),
    );
    usageSql.set(key, sql);
  }
  return { text: sql, values: [host, ...kept.map(([, values]) => values)] };
}

/** USAGE_COLUMNS before this index are always sent (ts, channel, model, feature, tokens). */
const USAGE_REQUIRED = 6;
/** The llm_usage INSERT per set of columns sent (at most 2^9, in practice a handful). */
const usageSql = new Map<string, string>();

export async function openPostgresStore(
  url: string,
  config: MonitorConfig,
  options: PostgresOptions = {},
): Promise<PostgresStore> {
  let handle: Awaited<ReturnType<typeof openPostgresWrite>>;
  try {
    handle = await openPostgresWrite(url, {
      max: 3,
      applicationName: `kissbot-monitor ${config.hostName}`,
      ...options,
    });
  } catch (err) {
    throw new OpenDatabaseError('cannot_open', err);
  }
  let store: PostgresStore | null = null;
  try {
    store = new PostgresStore(handle.db, handle.pool, config, await readBudgetStorage(handle.pool, config));
    await store.maintain(Date.now());
  } catch (err) {
    await (store ? store.close() : handle.db.destroy()).catch(() => {});
    throw new OpenDatabaseError('cannot_open', err);
  }
  return store;
}

/** Budget storage read ahead; `refresh()` reads it again (the tracker's reload after a recompute). */
type ReadAheadBudgets = BudgetStorage & { saves: Parameters<BudgetStorage['save']>[]; refresh(): Promise<void> };

/** Budget storage read ahead (null: no budgets): stored levels, and hourly spend since the earliest current period. */
async function readBudgetStorage(pool: pg.Pool, config: MonitorConfig): Promise<ReadAheadBudgets | null> {
  if (config.budgets.length === 0) return null;
  const host = config.hostName;
  const source = config.llm.rollups
    ? 'SELECT ts, channel, model, feature, coalesce(sum(cost_usd), 0) AS cost FROM llm_usage_hourly WHERE host = $1 AND ts >= $2 GROUP BY 1, 2, 3, 4'
    : "SELECT substr(ts, 1, 13) || ':00:00.000Z' AS ts, channel, coalesce(model, '') AS model, coalesce(feature, '') AS feature, coalesce(sum(cost_usd), 0) AS cost FROM llm_usage WHERE host = $1 AND ts >= $2 GROUP BY 1, 2, 3, 4";
  let states: { name: string; period_start: string; level: BudgetLevel }[] = [];
  let hours: { ts: string; channel: string; model: string; feature: string; cost: number }[] = [];
  const saves: Parameters<BudgetStorage['save']>[] = [];
  const storage: ReadAheadBudgets = {
    saves,
    states: () => states,
    spend: (_source, start, end) => hours.filter((h) => h.ts >= start && h.ts < end),
    save: (...args) => void saves.push(args),
    async refresh() {
      const now = Date.now();
      const since = Math.min(
        ...config.budgets.map((b) => periodStart(b.period, now, b.timeZone ?? config.llm.timeZone)),
      );
      states = (
        await pool.query<{ name: string; period_start: string; level: BudgetLevel }>(
          'SELECT name, period_start, level FROM llm_budget_state WHERE host = $1',
          [host],
        )
      ).rows;
      hours = (
        await pool.query<{ ts: string; channel: string; model: string; feature: string; cost: number }>(source, [
          host,
          isoTime(since),
        ])
      ).rows;
    },
  };
  await storage.refresh();
  return storage;
}

export class PostgresStore implements WriteStore {
  readonly kind = 'postgres' as const;
  readonly db: Kysely<Database>;
  readonly #pool: pg.Pool;
  readonly #host: string;
  readonly #prices: PriceTable;
  readonly #rollups: boolean;
  #unpriced = 0;
  #pendingUnpriced = 0;
  readonly #budgets: BudgetTracker | null;
  readonly #budgetStorage: ReadAheadBudgets | null;
  /** Levels the tracker saved during the transaction under way (written before COMMIT). */
  readonly #budgetSaves: Parameters<BudgetStorage['save']>[];
  #signals = 0;
  /** The transaction under way (a write or a recompute chunk): the next one starts after it. */
  #turn: Promise<unknown> = Promise.resolve();

  constructor(db: Kysely<Database>, pool: pg.Pool, config: MonitorConfig, budgets: ReadAheadBudgets | null = null) {
    this.db = db;
    this.#budgets = budgets && new BudgetTracker(budgets, config);
    this.#budgetStorage = budgets;
    this.#budgetSaves = budgets?.saves ?? [];
    this.#pool = pool;
    this.#host = config.hostName;
    this.#prices = new PriceTable(config.prices);
    this.#rollups = config.llm.rollups;
  }

  async loadCursors(): Promise<[string, number][]> {
    const { rows } = await this.#pool.query<{ sender: string; seq: number }>(
      'SELECT sender, seq FROM delivery_cursor WHERE host = $1',
      [this.#host],
    );
    return rows.map((r) => [r.sender, r.seq]);
  }

  cost(row: LlmUsageRow): number | null {
    return this.#prices.cost(row.model, row.at, row);
  }

  write(plan: WritePlan, counts: RowCounts, onRejected: (err: unknown, type: string) => void): Promise<void> {
    return this.#exclusive(() => this.#write(plan, counts, onRejected));
  }

  /** Runs `transaction` once the one under way is done (one at a time, in call order). */
  #exclusive<T>(transaction: () => Promise<T>): Promise<T> {
    const result = this.#turn.then(transaction);
    this.#turn = result.catch(() => {});
    return result;
  }

  async #write(plan: WritePlan, counts: RowCounts, onRejected: (err: unknown, type: string) => void): Promise<void> {
    const client = await this.#pool.connect();
    let failed: Error | undefined;
    const planned = { redelivered: counts.redelivered, reapplied: counts.reapplied };
    try {
      await client.query('BEGIN');
      try {
        await this.#writeRows(client, plan.rows, counts);
      } catch (err) {
        if (this.classify(err).kind !== 'other') throw err;
        // One row's value refused the whole statement: again, each row alone under a savepoint.
        await client.query('ROLLBACK');
        this.rolledBack();
        Object.assign(counts, noRows(), planned);
        await client.query('BEGIN');
        for (const row of plan.rows) {
          await client.query('SAVEPOINT one_row');
          try {
            await this.#writeRows(client, [row], counts);
            await client.query('RELEASE SAVEPOINT one_row');
          } catch (rowErr) {
            if (this.classify(rowErr).kind !== 'other') throw rowErr;
            await client.query('ROLLBACK TO SAVEPOINT one_row');
            counts.rejected++;
            onRejected(rowErr, row.type);
          }
        }
      }
      if (this.#budgets) {
        this.#budgets.stage(Date.now());
        for (const [name, periodStart, level, updatedAt] of this.#budgetSaves.splice(0))
          await client.query(SQL.budget, [this.#host, name, periodStart, level, updatedAt]);
      }
      if (plan.cursors.size > 0)
        await client.query(SQL.cursor, [
          this.#host,
          [...plan.cursors.keys()],
          [...plan.cursors.values()],
          isoTime(Date.now()),
        ]);
      await client.query('COMMIT');
    } catch (err) {
      failed = err as Error;
      throw err;
    } finally {
      // A failed attempt's connection is closed, not pooled: it may be broken, or mid-transaction.
      client.release(failed ?? undefined);
    }
    this.#unpriced += this.#pendingUnpriced;
    this.#pendingUnpriced = 0;
  }

  async #writeRows(client: pg.PoolClient, rows: RowItem[], counts: RowCounts): Promise<void> {
    const host = this.#host;
    const usage: StoredUsage[] = [];
    const status = new Map<string, Extract<RowItem, { type: 'status' }>>();
    const events: Extract<RowItem, { type: 'event' }>[] = [];
    const metrics: Extract<RowItem, { type: 'metric' }>[] = [];
    const health: Extract<RowItem, { type: 'health' }>[] = [];
    const ids = new Set<string>();
    for (const row of rows) {
      switch (row.type) {
        case 'llm_usage':
          if (row.id !== undefined) {
            if (ids.has(row.id)) {
              counts.duplicate++;
              continue;
            }
            ids.add(row.id);
          }
          usage.push({ row, cost: this.cost(row), ts: isoTime(row.at) });
          break;
        case 'status':
          status.delete(row.channel); // re-inserted last: the newest state of a channel wins, as with one upsert per row
          status.set(row.channel, row);
          counts.status++;
          break;
        case 'event':
          events.push(row);
          break;
        case 'metric':
          metrics.push(row);
          break;
        case 'health':
          health.push(row);
          break;
        default: {
          const unknown: never = row;
          throw new TypeError(`unknown write item type ${JSON.stringify((unknown as { type?: unknown }).type)}`);
        }
      }
    }
    let stored = usage;
    if (ids.size > 0) {
      const withId = usage.filter((u) => u.row.id !== undefined);
      const fresh = await client.query<{ id: string }>(SQL.ids, [
        host,
        withId.map((u) => text(u.row.id)),
        withId.map((u) => u.ts),
      ]);
      const isNew = new Set(fresh.rows.map((r) => r.id));
      stored = usage.filter((u) => u.row.id === undefined || isNew.has(text(u.row.id)!));
      counts.duplicate += usage.length - stored.length;
    }
    if (stored.length > 0) {
      const { text: usageSql, values } = usageInsert(host, stored);
      await client.query(usageSql, values);
      counts.llm_usage += stored.length;
      for (const u of stored) {
        if (u.cost === null) this.#pendingUnpriced++;
        this.#budgets?.add(u.row.at, u.row.channel, u.row.model, u.row.feature, u.cost);
      }
      if (this.#rollups) {
        await this.#addRollups(client, stored, addCall);
        const now = Date.now();
        await client.query(SQL.watermark, [host, hourOf(isoTime(now)), isoTime(now)]);
      }
    }
    if (status.size > 0)
      await client.query(SQL.status, [
        host,
        ...columnsOf([...status.values()], STATUS_COLUMNS.length, (s) => [
          s.channel,
          s.pid,
          s.status,
          text(s.features_json),
          isoTime(s.registered_at),
          isoTime(s.last_seen),
          s.last_heartbeat === null ? null : isoTime(s.last_heartbeat),
          s.start_time ?? null,
        ]),
      ]);
    if (events.length > 0) {
      await client.query(SQL.event, [
        host,
        ...columnsOf(events, EVENT_COLUMNS.length, (e) => [
          isoTime(e.at),
          e.channel,
          e.pid,
          e.from ?? null,
          e.to,
          e.reason,
        ]),
      ]);
      counts.event += events.length;
    }
    if (metrics.length > 0) {
      await client.query(SQL.metric, [
        host,
        ...columnsOf(metrics, METRIC_COLUMNS.length, (m) => [
          isoTime(m.at),
          m.channel,
          m.pid,
          m.rss_mb,
          m.cpu_pct,
          m.cpu_pct_machine,
        ]),
      ]);
      counts.metric += metrics.length;
    }
    if (health.length > 0) {
      await client.query(SQL.health, [
        host,
        ...columnsOf(health, HEALTH_COLUMNS.length, ({ at, health: h }) => [
          isoTime(at),
          h.actor,
          h.processed,
          h.queue_depth,
          h.dropped,
          h.loop_lag_p99_ms,
          h.loop_lag_max_ms,
          h.heap_used_mb,
          h.uptime_s,
          h.restarts,
          text(JSON.stringify(h.detail)),
        ]),
      ]);
      counts.health += health.length;
    }
  }

  /** Adds `items` to this host's hourly, daily and weekly rollups (all kept current: every row is in each). */
  async #addRollups<T extends RolledUp>(
    client: pg.PoolClient,
    items: T[],
    add: (s: RollupSums, item: T) => void,
  ): Promise<void> {
    for (const [sql, bucket] of [
      [SQL.hourly, hourOf],
      [SQL.daily, dayOf],
      [SQL.weekly, weekOf],
    ] as const) {
      const sums = sumRollups(items, bucket, add);
      await client.query(sql, [
        this.#host,
        ...columnsOf(sums, ROLLUP_COLUMNS.length, (r) => [
          ...r.key,
          ...ROLLUP_ADDED.map((c) => r[c]),
          r.latency_min,
          r.latency_max,
        ]),
      ]);
    }
  }

  committed(): BudgetSignal[] {
    const signals = this.#budgets?.commit() ?? [];
    this.#signals += signals.length;
    return signals;
  }

  rolledBack(): void {
    this.#pendingUnpriced = 0;
    this.#budgets?.rollback();
    this.#budgetSaves.length = 0;
  }

  get hasBudgets(): boolean {
    return (this.#budgets?.size ?? 0) > 0;
  }

  classify(err: unknown): StoreFailure {
    const code = (err as { code?: unknown } | null)?.code;
    return { kind: isConnectionError(err) ? 'down' : 'other', code: typeof code === 'string' ? code : undefined };
  }

  /** Today's and the next days' partitions (and yesterday's: a clock a little behind). */
  async maintain(now: number): Promise<void> {
    await ensurePartitions(this.db, now - DAY_MS, now + PARTITION_DAYS_AHEAD * DAY_MS);
  }

  async prune(retention: RetentionLimits, now: number, stop: () => boolean): Promise<PruneResult> {
    const result: PruneResult = {};
    await this.maintain(now);
    for (const table of PARTITIONED_TABLES) {
      const ageMs = retention[table];
      if (ageMs === undefined || stop()) continue;
      // Partitions hold every host's rows: the store's retention is that of the monitor with the shortest.
      const { partitions, defaultRows } = await dropPartitionsBefore(this.db, table, now - ageMs);
      result[table] = partitions; // PostgreSQL counts dropped partitions, not rows
      if (defaultRows > 0) result[table] = partitions + defaultRows;
      if (table === 'llm_usage') await this.#deleteChunked('llm_usage_ids', false, isoTime(now - ageMs), stop);
    }
    for (const table of ['llm_usage_hourly', 'llm_usage_daily', 'llm_usage_weekly'] as const) {
      const ageMs = retention[table];
      if (ageMs === undefined || stop()) continue;
      result[table] = await this.#deleteChunked(table, true, isoTime(now - ageMs), stop);
    }
    if (stop()) return result;
    const cursors = await this.#pool.query('DELETE FROM delivery_cursor WHERE host = $1 AND updated_at < $2', [
      this.#host,
      isoTime(now - retention.delivery_cursor),
    ]);
    result.delivery_cursor = cursors.rowCount ?? 0;
    return result;
  }

  /** DELETE … WHERE ts < cutoff, PRUNE_CHUNK_ROWS rows per statement (by ctid: PostgreSQL has no DELETE … LIMIT). */
  async #deleteChunked(table: string, ownHost: boolean, cutoff: string, stop: () => boolean): Promise<number> {
    const where = ownHost ? 'host = $2 AND ts < $1' : 'ts < $1';
    const params = ownHost ? [cutoff, this.#host] : [cutoff];
    let deleted = 0;
    let n: number;
    do {
      if (stop()) break;
      const r = await this.#pool.query(
        `DELETE FROM ${table} WHERE ctid = ANY (ARRAY(SELECT ctid FROM ${table} WHERE ${where} LIMIT ${PRUNE_CHUNK_ROWS}))`,
        params,
      );
      n = r.rowCount ?? 0;
      deleted += n;
      await nextTurn();
    } while (n === PRUNE_CHUNK_ROWS);
    return deleted;
  }

  budgets(now?: number): BudgetStatus[] {
    // No budgets configured is an empty list (as on SQLite), not null: the writer's null means "not open".
    return this.#budgets?.status(now) ?? [];
  }

  unpricedRows(): number {
    return this.#unpriced;
  }

  budgetSignals(): number {
    return this.#signals;
  }

  async digest(day: number, now: number, timeZone: string): Promise<DigestInput | null> {
    const sent = await this.#pool.query<{ value: string }>(
      "SELECT value FROM monitor_state WHERE host = $1 AND key = 'digest_day'",
      [this.#host],
    );
    if (sent.rows[0]?.value === isoTime(day)) return null;
    const query = async (sql: string, params: unknown[]) => {
      let n = 0;
      return (
        await this.#pool.query(
          sql.replace(/\?/g, () => `$${++n}`),
          params,
        )
      ).rows;
    };
    const digest = await buildDigest(query, now, timeZone, this.budgets(now) ?? [], this.#host);
    await this.#pool.query(
      `INSERT INTO monitor_state (host, key, value, updated_at) VALUES ($1, 'digest_day', $2, $3)
      ON CONFLICT (host, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
      [this.#host, isoTime(day), isoTime(now)],
    );
    return digest;
  }

  /** Re-prices this host's rows since `sinceMs`, a chunk per transaction (the walk: top of this file). */
  async recompute(sinceMs: number, stop: () => boolean, retryDelayMs: number): Promise<RecomputeResult> {
    const result = emptyRecompute(sinceMs);
    let after: string | null = '';
    while (after !== null) {
      const from: string = after;
      // Counted once committed: a chunk redone after a failure starts from 0 again.
      let counted = emptyRecompute(sinceMs);
      after = await this.#retrying(
        () => this.#recomputeChunk(result.since, from, (counted = emptyRecompute(sinceMs))),
        stop,
        retryDelayMs,
      );
      for (const key of ['rows_checked', 'rows_changed', 'rows_priced_now', 'rows_unpriced_now'] as const)
        result[key] += counted[key];
      await nextTurn();
    }
    const budgets = this.#budgets;
    const storage = this.#budgetStorage;
    if (budgets && storage)
      await this.#retrying(
        async () => {
          await storage.refresh();
          budgets.reload(this.#rollups ? 'llm_usage_hourly' : 'llm_usage');
        },
        stop,
        retryDelayMs,
      );
    return result;
  }

  /**
   * `step` in its turn (#exclusive); again after `retryDelayMs` while the store is down or the
   * server rolled it back (a deadlock, a serialization failure); `stop()` true ends it.
   */
  async #retrying<T>(step: () => Promise<T>, stop: () => boolean, retryDelayMs: number): Promise<T> {
    let timeouts = 0;
    for (;;) {
      if (stop()) throw new Error(RECOMPUTE_STOPPED);
      try {
        return await this.#exclusive(step);
      } catch (err) {
        if (stop()) throw new Error(RECOMPUTE_STOPPED, { cause: err });
        const { kind, code } = this.classify(err);
        if (kind !== 'down' && code !== SERIALIZATION_FAILURE && code !== DEADLOCK) throw err;
        // A chunk that outlasts the statement timeout would do so again: each try holds the
        // writer's turn for the whole timeout, so give up instead of starving ingest.
        if (isTimeout(err) && ++timeouts >= RECOMPUTE_MAX_TIMEOUTS)
          throw new Error(
            `recompute stopped: a chunk ran past the store's statement timeout ${timeouts} times; what was committed stays re-priced, run it again with a shorter --since or when the store is less busy`,
            { cause: err },
          );
        await delay(retryDelayMs);
      }
    }
  }

  /** One chunk of the walk after ts `after`, in its transaction; the last ts it took, or null when it was the last. */
  async #recomputeChunk(since: string, after: string, counted: RecomputeResult): Promise<string | null> {
    const client = await this.#pool.connect();
    let failed: Error | undefined;
    try {
      await client.query('BEGIN');
      const { rows } = await client.query<StoredUsageRow & { rel: number; tid: string }>(SQL.recomputeChunk, [
        this.#host,
        since,
        after,
      ]);
      const moved: Repriced[] = [];
      const where = { rel: [] as number[], tid: [] as string[], cost: [] as (number | null)[] };
      let last = after;
      for (const r of rows) {
        if (r.ts > last) last = r.ts;
        const changed = repriceStored(this.#prices, r, counted);
        if (changed === null) continue;
        moved.push({ row: changed.input, ts: r.ts, before: r.cost_usd, after: changed.cost });
        where.rel.push(r.rel);
        where.tid.push(r.tid);
        where.cost.push(changed.cost);
      }
      if (moved.length > 0) {
        const updated = await client.query(SQL.setCost, [this.#host, where.rel, where.tid, where.cost, after, last]);
        if (updated.rowCount !== moved.length)
          throw Object.assign(new Error('rows of a recompute chunk moved or went during it; the chunk is redone'), {
            code: SERIALIZATION_FAILURE,
          });
        if (this.#rollups) await this.#addRollups(client, moved, repriceCall);
      }
      await client.query('COMMIT');
      return rows.length < RECOMPUTE_CHUNK_ROWS ? null : last;
    } catch (err) {
      failed = err as Error;
      throw err;
    } finally {
      client.release(failed ?? undefined);
    }
  }

  heartbeat(beat: HostBeat): Promise<void> {
    return upsertHost(this.db, beat);
  }

  async close(): Promise<void> {
    await this.db.destroy(); // ends the pool
  }
}
