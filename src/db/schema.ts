// The SQLite schema (kysely types + migrations) and the two ways to open the database file:
// one writable connection (the db-writer actor only) and any number of read-only ones (read pool,
// tests, ops). All times are ISO-8601 UTC text (`new Date(ms).toISOString()`), so they sort and
// compare as text and stay readable from the sqlite3 shell.
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, Migrator, sql, SqliteDialect, type Generated, type Migration } from 'kysely';
import { MonitorError } from '../errors.js';
import { registerHistogramFunctions } from '../llm/histogram.js';
import { openReadConnection } from './read-connection.js';

export interface BotStatusTable {
  channel: string;
  pid: number;
  status: string;
  features_json: string | null;
  registered_at: string;
  last_seen: string;
  last_heartbeat: string | null;
  /**
   * Start time of the process `pid` (Linux: clock ticks since boot, /proc/<pid>/stat field 22;
   * without /proc: epoch seconds). With the pid it names one process, so a rebuilt registry can
   * tell its bot from a process that got the pid since. NULL until known.
   */
  start_time: number | null;
}

export interface BotMetricsTable {
  ts: string;
  channel: string;
  pid: number;
  rss_mb: number | null;
  /** pidusage's cpu: % of one core. */
  cpu_pct: number | null;
  /** cpu_pct divided by the core count: % of the whole machine. */
  cpu_pct_machine: number | null;
  /** NULL since 0002_bot_identity: features live in bot_status (view bot_metrics_features joins them). */
  features_json: string | null;
}

export interface LlmUsageTable {
  ts: string;
  channel: string;
  model: string;
  feature: string;
  tokens_in: number;
  tokens_out: number;
  latency_ms: number | null;
  /** NULL: no price for the model at the row's time (src/llm/prices.ts). */
  cost_usd: number | null;
  /** The client's id for this call (optional, unique): a re-sent call is stored once. */
  id: string | null;
  /** Since 0004: the optional accounting fields of the protocol (NULL when not sent). */
  tokens_cached: number | null;
  tokens_reasoning: number | null;
  provider: string | null;
  status: string | null;
  error_type: string | null;
  request_id: string | null;
}

/**
 * llm_usage_hourly / llm_usage_daily (0004): one row per bucket (`ts` = the UTC hour's or day's
 * start, in the same ISO text as every ts) and channel, model, feature, provider ('' when not sent)
 * and status ('ok' when not sent), kept by the writer in the transaction that inserts the rows.
 */
export interface LlmUsageRollupTable {
  ts: string;
  channel: string;
  model: string;
  feature: string;
  provider: string;
  status: string;
  calls: number;
  tokens_in: number;
  tokens_out: number;
  tokens_cached: number;
  tokens_reasoning: number;
  /** Sum over the priced calls. */
  cost_usd: number;
  /** Calls with no price (cost_usd NULL in llm_usage). */
  unpriced_calls: number;
  latency_count: number;
  latency_sum: number;
  latency_min: number | null;
  latency_max: number | null;
  /** Latency histogram (src/llm/histogram.ts), NULL when no call reported a latency. */
  latency_hist: Buffer | null;
}

/** Per budget: the period and level last signalled, so a restart signals no level twice (0004). */
export interface LlmBudgetStateTable {
  name: string;
  period_start: string;
  level: string;
  updated_at: string;
}

/** Small durable facts of the writer (0004), e.g. the last day a digest went out. */
export interface MonitorStateTable {
  key: string;
  value: string;
  updated_at: string;
}

export interface BotEventsTable {
  id: Generated<number>;
  ts: string;
  channel: string;
  pid: number;
  from_status: string | null;
  to_status: string;
  reason: string;
}

export interface WorkerHealthTable {
  ts: string;
  actor: string;
  processed: number;
  queue_depth: number;
  dropped: number;
  loop_lag_p99_ms: number;
  loop_lag_max_ms: number;
  heap_used_mb: number;
  uptime_s: number;
  restarts: number;
  detail_json: string | null;
}

/** Highest batch sequence number committed per Link sender: what makes re-sent batches exactly-once. */
export interface DeliveryCursorTable {
  sender: string;
  seq: number;
  updated_at: string;
}

/** The alerter's state (src/alerts/store.ts): active and recently resolved alerts. */
export interface AlertsTable {
  fingerprint: string;
  alertname: string;
  severity: string;
  labels_json: string;
  annotations_json: string;
  state: string;
  starts_at: string;
  ends_at: string | null;
  /** When a notification last listed it firing; NULL: never (a restarted monitor would send it as new). */
  notified_at: string | null;
  resolved_notified: number;
  last_delivery_json: string | null;
}

export interface AlertGroupsTable {
  group_key: string;
  last_flush_at: string;
}

export interface AlertSilencesTable {
  id: string;
  matcher_json: string;
  starts_at: string;
  ends_at: string;
  comment: string;
  created_by: string;
}

/** Notifications not yet delivered, per receiver (kept across restarts). */
export interface AlertDeliveriesTable {
  id: string;
  receiver: string;
  notification_json: string;
  attempts: number;
  next_attempt_at: string;
  last_error: string | null;
}

export interface Database {
  alerts: AlertsTable;
  alert_groups: AlertGroupsTable;
  alert_silences: AlertSilencesTable;
  alert_deliveries: AlertDeliveriesTable;
  bot_status: BotStatusTable;
  bot_metrics: BotMetricsTable;
  llm_usage: LlmUsageTable;
  bot_events: BotEventsTable;
  worker_health: WorkerHealthTable;
  delivery_cursor: DeliveryCursorTable;
  llm_usage_hourly: LlmUsageRollupTable;
  llm_usage_daily: LlmUsageRollupTable;
  llm_budget_state: LlmBudgetStateTable;
  monitor_state: MonitorStateTable;
}

/** A better-sqlite3 connection and the kysely instance over it; `db.destroy()` closes both. */
export interface DatabaseHandle {
  sqlite: BetterSqlite3.Database;
  db: Kysely<Database>;
}

// Migrations are typed against `Kysely<any>`: each one describes the schema as it was when written,
// not as `Database` says today. Inline (not FileMigrationProvider) so they work inside workers and
// from dist/ without shipping migration files.
const MIGRATIONS: Record<string, Migration> = {
  '0001_initial': {
    async up(db: Kysely<any>): Promise<void> {
      // `ifNotExists` everywhere: a database written by the old monitor already has bot_status,
      // bot_metrics and llm_usage; this migration adopts it instead of failing.
      await db.schema
        .createTable('bot_status')
        .ifNotExists()
        .addColumn('channel', 'text', (c) => c.primaryKey())
        .addColumn('pid', 'integer')
        .addColumn('status', 'text')
        .addColumn('features_json', 'text')
        .addColumn('registered_at', 'text')
        .addColumn('last_seen', 'text')
        .addColumn('last_heartbeat', 'text')
        .execute();
      await db.schema
        .createTable('bot_metrics')
        .ifNotExists()
        .addColumn('ts', 'text', (c) => c.notNull())
        .addColumn('channel', 'text', (c) => c.notNull())
        .addColumn('pid', 'integer')
        .addColumn('rss_mb', 'real')
        .addColumn('cpu_pct', 'real')
        .addColumn('features_json', 'text')
        .addColumn('cpu_pct_machine', 'real')
        .execute();
      const metricColumns = (await db.introspection.getTables()).find((t) => t.name === 'bot_metrics')?.columns ?? [];
      if (!metricColumns.some((c) => c.name === 'cpu_pct_machine')) {
        await db.schema.alterTable('bot_metrics').addColumn('cpu_pct_machine', 'real').execute();
      }
      await db.schema.createIndex('bot_metrics_ts').ifNotExists().on('bot_metrics').column('ts').execute();
      await db.schema
        .createIndex('bot_metrics_channel_ts')
        .ifNotExists()
        .on('bot_metrics')
        .columns(['channel', 'ts'])
        .execute();
      await db.schema
        .createTable('llm_usage')
        .ifNotExists()
        .addColumn('ts', 'text', (c) => c.notNull())
        .addColumn('channel', 'text', (c) => c.notNull())
        .addColumn('model', 'text')
        .addColumn('feature', 'text')
        .addColumn('tokens_in', 'integer')
        .addColumn('tokens_out', 'integer')
        .addColumn('latency_ms', 'real')
        .addColumn('cost_usd', 'real')
        .execute();
      await db.schema.createIndex('llm_usage_ts').ifNotExists().on('llm_usage').column('ts').execute();
      await db.schema
        .createTable('bot_events')
        .ifNotExists()
        .addColumn('id', 'integer', (c) => c.primaryKey())
        .addColumn('ts', 'text', (c) => c.notNull())
        .addColumn('channel', 'text', (c) => c.notNull())
        .addColumn('pid', 'integer')
        .addColumn('from_status', 'text')
        .addColumn('to_status', 'text', (c) => c.notNull())
        .addColumn('reason', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('bot_events_ts').ifNotExists().on('bot_events').column('ts').execute();
      await db.schema
        .createIndex('bot_events_channel_ts')
        .ifNotExists()
        .on('bot_events')
        .columns(['channel', 'ts'])
        .execute();
      await db.schema
        .createTable('worker_health')
        .ifNotExists()
        .addColumn('ts', 'text', (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('processed', 'integer')
        .addColumn('queue_depth', 'integer')
        .addColumn('dropped', 'integer')
        .addColumn('loop_lag_p99_ms', 'real')
        .addColumn('loop_lag_max_ms', 'real')
        .addColumn('heap_used_mb', 'real')
        .addColumn('uptime_s', 'integer')
        .addColumn('restarts', 'integer')
        .addColumn('detail_json', 'text')
        .execute();
      // Retention deletes by ts; without this index each pass would scan the table.
      await db.schema.createIndex('worker_health_ts').ifNotExists().on('worker_health').column('ts').execute();
      await db.schema
        .createTable('delivery_cursor')
        .ifNotExists()
        .addColumn('sender', 'text', (c) => c.primaryKey())
        .addColumn('seq', 'integer', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
    },
  },
  '0002_bot_identity': {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema.alterTable('bot_status').addColumn('start_time', 'integer').execute();
      // Features are stored once per bot (bot_status), no longer copied into every sample. The
      // column stays, NULL in new rows: dropping it rewrites the whole table under the write lock
      // at start-up, minutes for a week of 10k bots (docs/PERFORMANCE.md, "Numbers behind code choices"). Old rows keep
      // theirs until retention removes them; the view gives every row its features either way.
      await db.schema
        .createView('bot_metrics_features')
        .ifNotExists()
        .as(
          db
            .selectFrom('bot_metrics as m')
            .leftJoin('bot_status as s', 's.channel', 'm.channel')
            .select(['m.ts', 'm.channel', 'm.pid', 'm.rss_mb', 'm.cpu_pct', 'm.cpu_pct_machine'])
            .select((eb) => eb.fn.coalesce('m.features_json', 's.features_json').as('features_json')),
        )
        .execute();
    },
  },
  '0003_llm_usage_id': {
    async up(db: Kysely<any>): Promise<void> {
      // NULL for clients that send no id: a UNIQUE index lets any number of NULLs through.
      await db.schema.alterTable('llm_usage').addColumn('id', 'text').execute();
      await db.schema.createIndex('llm_usage_id').unique().on('llm_usage').column('id').execute();
    },
  },
  '0004_llm_accounting': {
    async up(db: Kysely<any>): Promise<void> {
      for (const [column, type] of [
        ['tokens_cached', 'integer'],
        ['tokens_reasoning', 'integer'],
        ['provider', 'text'],
        ['status', 'text'],
        ['error_type', 'text'],
        ['request_id', 'text'],
      ] as const) {
        await db.schema.alterTable('llm_usage').addColumn(column, type).execute();
      }
      for (const table of ['llm_usage_hourly', 'llm_usage_daily']) {
        await db.schema
          .createTable(table)
          .addColumn('ts', 'text', (c) => c.notNull())
          .addColumn('channel', 'text', (c) => c.notNull())
          .addColumn('model', 'text', (c) => c.notNull())
          .addColumn('feature', 'text', (c) => c.notNull())
          .addColumn('provider', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('calls', 'integer', (c) => c.notNull())
          .addColumn('tokens_in', 'integer', (c) => c.notNull())
          .addColumn('tokens_out', 'integer', (c) => c.notNull())
          .addColumn('tokens_cached', 'integer', (c) => c.notNull())
          .addColumn('tokens_reasoning', 'integer', (c) => c.notNull())
          .addColumn('cost_usd', 'real', (c) => c.notNull())
          .addColumn('unpriced_calls', 'integer', (c) => c.notNull())
          .addColumn('latency_count', 'integer', (c) => c.notNull())
          .addColumn('latency_sum', 'real', (c) => c.notNull())
          .addColumn('latency_min', 'real')
          .addColumn('latency_max', 'real')
          .addColumn('latency_hist', 'blob')
          // The key is the upsert target; ts first, so a time range (reports, retention) is a range.
          .addPrimaryKeyConstraint(`${table}_pk`, ['ts', 'channel', 'model', 'feature', 'provider', 'status'])
          // Clustered by that key: a report's range reads adjacent pages, not one rowid lookup per row
          // (measured: 90k daily rows of a 1.7 GB database took seconds through the rowid table), and an
          // upsert touches one b-tree instead of a table and its key index.
          .modifyEnd(sql`WITHOUT ROWID`)
          .execute();
      }
      await db.schema
        .createTable('llm_budget_state')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('period_start', 'text', (c) => c.notNull())
        .addColumn('level', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('monitor_state')
        .addColumn('key', 'text', (c) => c.primaryKey())
        .addColumn('value', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
      // Rows written before 0004 get their rollups here, so reports over old data stay whole.
      // Their latency histogram is left NULL (percentiles of those hours come from raw rows).
      for (const [table, bucket] of [
        ['llm_usage_hourly', `substr(ts, 1, 13) || ':00:00.000Z'`],
        ['llm_usage_daily', `substr(ts, 1, 10) || 'T00:00:00.000Z'`],
      ] as const) {
        await sql`INSERT INTO ${sql.table(table)}
          SELECT ${sql.raw(bucket)}, channel, coalesce(model, ''), coalesce(feature, ''), '', 'ok', count(*),
                 coalesce(sum(tokens_in), 0), coalesce(sum(tokens_out), 0), 0, 0, total(cost_usd), count(*) - count(cost_usd),
                 count(latency_ms), total(latency_ms), min(latency_ms), max(latency_ms), NULL
          FROM llm_usage GROUP BY 1, 2, 3, 4`.execute(db);
      }
    },
  },
  '0005_alerts': {
    async up(db: Kysely<any>): Promise<void> {
      // Written by the alerter actor on its own connection (the db-writer never touches them).
      await db.schema
        .createTable('alerts')
        .addColumn('fingerprint', 'text', (c) => c.primaryKey())
        .addColumn('alertname', 'text', (c) => c.notNull())
        .addColumn('severity', 'text', (c) => c.notNull())
        .addColumn('labels_json', 'text', (c) => c.notNull())
        .addColumn('annotations_json', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('starts_at', 'text', (c) => c.notNull())
        .addColumn('ends_at', 'text')
        .addColumn('notified_at', 'text')
        .addColumn('resolved_notified', 'integer', (c) => c.notNull())
        .addColumn('last_delivery_json', 'text')
        .execute();
      await db.schema
        .createTable('alert_groups')
        .addColumn('group_key', 'text', (c) => c.primaryKey())
        .addColumn('last_flush_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('alert_silences')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('matcher_json', 'text', (c) => c.notNull())
        .addColumn('starts_at', 'text', (c) => c.notNull())
        .addColumn('ends_at', 'text', (c) => c.notNull())
        .addColumn('comment', 'text', (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('alert_deliveries')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('receiver', 'text', (c) => c.notNull())
        .addColumn('notification_json', 'text', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull())
        .addColumn('next_attempt_at', 'text', (c) => c.notNull())
        .addColumn('last_error', 'text')
        .execute();
    },
  },
};

/** The migration that creates the alerter's tables: it waits for it before it opens them. */
export const ALERTS_MIGRATION = '0005_alerts';

/** Start-up may wait this long for another process's write (e.g. a concurrent monitor migrating). */
const MIGRATION_BUSY_TIMEOUT_MS = 5_000;

/** Why the database could not be opened for writing; the writer retries and reports this. */
export type OpenFailure = 'locked' | 'cannot_open' | 'migration_pending';

export class OpenDatabaseError extends MonitorError {
  readonly failure: OpenFailure;
  readonly sqliteCode: string | undefined;
  constructor(failure: OpenFailure, cause: unknown) {
    super('ERR_OPEN_DATABASE', (cause as Error)?.message ?? String(cause), { cause });
    this.failure = failure;
    const code = (cause as { code?: unknown } | null)?.code;
    this.sqliteCode = typeof code === 'string' ? code : undefined;
  }
}

const isBusy = (err: unknown) => /^SQLITE_(BUSY|LOCKED)/.test((err as { code?: string } | null)?.code ?? '');

/**
 * Opens the one writable connection: WAL (readers never block the writer), synchronous=NORMAL
 * (no fsync per commit; a power cut may lose the last commits, never corrupt), then migrates.
 * Afterwards busy_timeout is `busyTimeoutMs`, so a locked database costs the writer thread at most
 * that long per attempt.
 */
export async function openWriteDatabase(
  path: string,
  options: { busyTimeoutMs: number; migrationBusyTimeoutMs?: number },
): Promise<DatabaseHandle> {
  let sqlite: BetterSqlite3.Database;
  try {
    sqlite = new BetterSqlite3(path);
  } catch (err) {
    throw new OpenDatabaseError('cannot_open', err);
  }
  let stage: OpenFailure = 'locked';
  try {
    sqlite.pragma(
      `busy_timeout = ${Math.max(options.busyTimeoutMs, options.migrationBusyTimeoutMs ?? MIGRATION_BUSY_TIMEOUT_MS)}`,
    );
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = NORMAL');
    // A burst (or a long reader blocking checkpoints) can grow the WAL; truncate it back afterwards.
    sqlite.pragma(`journal_size_limit = ${64 * 1024 * 1024}`);
    registerHistogramFunctions(sqlite);
    const handle = { sqlite, db: new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) }) };
    stage = 'migration_pending';
    await migrate(handle);
    sqlite.pragma(`busy_timeout = ${Math.round(options.busyTimeoutMs)}`);
    return handle;
  } catch (err) {
    sqlite.close();
    throw new OpenDatabaseError(isBusy(err) ? stage : 'cannot_open', err);
  }
}

/** Opens a read-only connection (the file must exist, i.e. the writer has started once). */
export function openReadDatabase(path: string, options: { busyTimeoutMs?: number } = {}): Kysely<Database> {
  return new Kysely<Database>({ dialect: new SqliteDialect({ database: openReadConnection(path, options) }) });
}

/**
 * Idempotent across restarts and across processes starting at once. kysely's SQLite adapter takes
 * no migration lock (it assumes one connection), so the whole run happens inside our own
 * `BEGIN IMMEDIATE`: a second process waits on the write lock, then finds nothing pending.
 * The read-only check first means a restart never needs the write lock at all, so a writer
 * restarted while someone else holds the database still starts.
 */
async function migrate({ sqlite, db }: DatabaseHandle): Promise<void> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => MIGRATIONS } });
  if ((await migrator.getMigrations()).every((m) => m.executedAt !== undefined)) return;
  sqlite.exec('BEGIN IMMEDIATE');
  try {
    const { error } = await migrator.migrateToLatest();
    if (error) throw error instanceof Error ? error : new Error('migration failed', { cause: error });
    sqlite.exec('COMMIT');
  } catch (err) {
    if (sqlite.inTransaction) sqlite.exec('ROLLBACK');
    throw err;
  }
}

// Rows stamped in the same millisecond (a tick's worth of ingest) share one conversion: without
// this, toISOString was a visible share of the writer's CPU (docs/PERFORMANCE.md, "Numbers behind code choices").
let lastMs = Number.NaN;
let lastText = '';

/** Milliseconds since the epoch → the stored text form. */
export function isoTime(ms: number): string {
  if (ms !== lastMs) {
    lastText = new Date(ms).toISOString();
    lastMs = ms;
  }
  return lastText;
}
