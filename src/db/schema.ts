// The schema (kysely types + migrations, one list for SQLite and PostgreSQL) and the two ways to
// open an SQLite file: one writable connection (the db-writer actor only) and any number of
// read-only ones (read pool, tests, ops); src/db/backend.ts opens either backend. All times are
// ISO-8601 UTC text (`new Date(ms).toISOString()`), so they sort and compare as text and stay
// readable from the sqlite3 shell (on PostgreSQL `text COLLATE "C"`: the same byte order).
import BetterSqlite3 from 'better-sqlite3';
import {
  CompiledQuery,
  Kysely,
  Migrator,
  PostgresAdapter,
  sql,
  SqliteDialect,
  type ColumnDataType,
  type ColumnType,
  type Expression,
  type Generated,
  type Migration,
} from 'kysely';
import { MonitorError } from '../errors.js';
import { registerHistogramFunctions } from '../llm/histogram.js';
import { DAILY_UNTIL_KEY, foldSql, ROLLUP_ADDED, weekStartMs, WEEKLY_UNTIL_KEY } from '../llm/rollups.js';
import { openReadConnection } from './read-connection.js';

export { ALERTS_MIGRATION, isoTime } from './schema-constants.js';

/**
 * `host` on insert may be left out only where SQLite's DEFAULT '' applies (tests, old tools):
 * the writer always sets it, and on PostgreSQL it has no default.
 */
type HostColumn = ColumnType<string, string | undefined, string>;

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
  /** The monitor that wrote the row (config hostName, 0006_hosts); '' for SQLite rows written before it. */
  host: HostColumn;
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
  /** The monitor that wrote the row (config hostName, 0006_hosts); '' for SQLite rows written before it. */
  host: HostColumn;
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
  /** The monitor that wrote the row (config hostName, 0006_hosts); '' for SQLite rows written before it. */
  host: HostColumn;
}

/**
 * llm_usage_hourly / llm_usage_daily (0004) / llm_usage_weekly (0007): one row per bucket (`ts` =
 * the UTC hour's, day's or ISO week's (Monday's) start, in the same ISO text as every ts) and channel, model, feature, provider ('' when not sent)
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
  /** The monitor that wrote the row (config hostName, 0006_hosts); '' for SQLite rows written before it. */
  host: string;
}

/** Per budget: the period and level last signalled, so a restart signals no level twice (0004). */
export interface LlmBudgetStateTable {
  name: string;
  period_start: string;
  level: string;
  updated_at: string;
  /** The monitor that wrote the row (config hostName, 0006_hosts); '' for SQLite rows written before it. */
  host: HostColumn;
}

/** Small durable facts of the writer (0004), e.g. the last day a digest went out. */
export interface MonitorStateTable {
  key: string;
  value: string;
  updated_at: string;
  /** The monitor that wrote the row (config hostName, 0006_hosts); '' for SQLite rows written before it. */
  host: HostColumn;
}

export interface BotEventsTable {
  id: Generated<number>;
  ts: string;
  channel: string;
  pid: number;
  from_status: string | null;
  to_status: string;
  reason: string;
  /** The monitor that wrote the row (config hostName, 0006_hosts); '' for SQLite rows written before it. */
  host: HostColumn;
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
  /** The monitor that wrote the row (config hostName, 0006_hosts); '' for SQLite rows written before it. */
  host: HostColumn;
}

/** Highest batch sequence number committed per Link sender: what makes re-sent batches exactly-once. */
export interface DeliveryCursorTable {
  sender: string;
  seq: number;
  updated_at: string;
  /** The monitor that wrote the row (config hostName, 0006_hosts); '' for SQLite rows written before it. */
  host: HostColumn;
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

/** One row per monitor (0006_hosts): its heartbeat, kept by the monitor itself (src/db/hosts). */
export interface HostsTable {
  host: string;
  version: string;
  pid: number;
  started_at: string;
  last_seen: string;
  /** Bots by status, e.g. {"online":3,"stale":0,"dead":1,"offline":0}. */
  bots_json: string;
  /** The monitor's own hostStaleAfterMs: every view judges this row down by it. */
  stale_after_ms: number;
}

/**
 * PostgreSQL only (0006_hosts): the client ids of llm_usage rows, one per (host, id). A unique
 * index on a partitioned table must contain the partition key (ts), so the id dedup that SQLite
 * does with a unique index on llm_usage lives in this small unpartitioned table instead; the
 * writer inserts here first and stores only the rows whose id was new (retention trims it with
 * the rows).
 */
export interface LlmUsageIdsTable {
  host: string;
  id: string;
  ts: string;
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
  llm_usage_weekly: LlmUsageRollupTable;
  llm_budget_state: LlmBudgetStateTable;
  monitor_state: MonitorStateTable;
  hosts: HostsTable;
  llm_usage_ids: LlmUsageIdsTable;
}

/** A better-sqlite3 connection and the kysely instance over it; `db.destroy()` closes both. */
export interface DatabaseHandle {
  sqlite: BetterSqlite3.Database;
  db: Kysely<Database>;
}

// Migrations are typed against `Kysely<any>`: each one describes the schema as it was when written,
// not as `Database` says today. Inline (not FileMigrationProvider) so they work inside workers and
// from dist/ without shipping migration files.
//
// One list for both backends. Where the dialects differ a migration asks `isPostgres(db)`:
// PostgreSQL gets `text COLLATE "C"` (times and names sort bytewise, as on SQLite),
// `double precision` for SQLite's 8-byte `real`, `bigint` for counters, `bytea` for blobs, and
// the four time-series tables (llm_usage, bot_metrics, bot_events, worker_health) range-partitioned
// by ts into daily partitions (src/db/partitions.ts; retention drops whole partitions). A PostgreSQL
// database is created by these migrations (0001–0006 in one run), so the parts that adopt an old
// monitor's SQLite file or back-fill its rows are SQLite only — but for 0007, which a PostgreSQL
// store of an earlier version runs on its own: it sums that store's days into their weeks.

/** True when `db` talks to PostgreSQL (the one place that tells the dialects apart). */
export function isPostgres(db: Kysely<any>): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter;
}

/** The column types of each dialect, by what the column holds. */
function types(db: Kysely<any>) {
  const pg = isPostgres(db);
  const t = (sqlite: ColumnDataType, postgres: ColumnDataType | Expression<unknown>) => (pg ? postgres : sqlite);
  return {
    pg,
    text: t('text', sql`text COLLATE "C"`),
    integer: t('integer', 'integer'),
    /** Counters and sums that may pass 2^31 (tokens, seq, processed). */
    bigint: t('integer', 'bigint'),
    real: t('real', 'double precision'),
    blob: t('blob', 'bytea'),
  };
}

/** The tables PostgreSQL partitions by day of ts (src/db/partitions.ts keeps their partitions). */
export const PARTITIONED_TABLES = ['llm_usage', 'bot_metrics', 'bot_events', 'worker_health'] as const;

/** `CREATE TABLE` of a time-series table ends with this on PostgreSQL; its DEFAULT partition catches any day not created ahead. */
const partitioned = (pg: boolean) => (pg ? sql`PARTITION BY RANGE (ts)` : sql``);
async function defaultPartition(db: Kysely<any>, table: string): Promise<void> {
  if (isPostgres(db))
    await sql`CREATE TABLE IF NOT EXISTS ${sql.table(`${table}_default`)} PARTITION OF ${sql.table(table)} DEFAULT`.execute(
      db,
    );
}

const MIGRATIONS: Record<string, Migration> = {
  '0001_initial': {
    async up(db: Kysely<any>): Promise<void> {
      const t = types(db);
      // `ifNotExists` everywhere: a database written by the old monitor already has bot_status,
      // bot_metrics and llm_usage; this migration adopts it instead of failing.
      await db.schema
        .createTable('bot_status')
        .ifNotExists()
        .addColumn('channel', t.text, (c) => c.primaryKey())
        .addColumn('pid', 'integer')
        .addColumn('status', t.text)
        .addColumn('features_json', t.text)
        .addColumn('registered_at', t.text)
        .addColumn('last_seen', t.text)
        .addColumn('last_heartbeat', t.text)
        .execute();
      await db.schema
        .createTable('bot_metrics')
        .ifNotExists()
        .addColumn('ts', t.text, (c) => c.notNull())
        .addColumn('channel', t.text, (c) => c.notNull())
        .addColumn('pid', 'integer')
        .addColumn('rss_mb', t.real)
        .addColumn('cpu_pct', t.real)
        .addColumn('features_json', t.text)
        .addColumn('cpu_pct_machine', t.real)
        .modifyEnd(partitioned(t.pg))
        .execute();
      await defaultPartition(db, 'bot_metrics');
      const metricColumns = (await db.introspection.getTables()).find((x) => x.name === 'bot_metrics')?.columns ?? [];
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
        .addColumn('ts', t.text, (c) => c.notNull())
        .addColumn('channel', t.text, (c) => c.notNull())
        .addColumn('model', t.text)
        .addColumn('feature', t.text)
        .addColumn('tokens_in', t.bigint)
        .addColumn('tokens_out', t.bigint)
        .addColumn('latency_ms', t.real)
        .addColumn('cost_usd', t.real)
        .modifyEnd(partitioned(t.pg))
        .execute();
      await defaultPartition(db, 'llm_usage');
      await db.schema.createIndex('llm_usage_ts').ifNotExists().on('llm_usage').column('ts').execute();
      await db.schema
        .createTable('bot_events')
        .ifNotExists()
        // PostgreSQL: an identity column, not a key (a key of a partitioned table must contain ts).
        .addColumn('id', t.pg ? 'bigint' : 'integer', (c) =>
          t.pg ? c.generatedByDefaultAsIdentity().notNull() : c.primaryKey(),
        )
        .addColumn('ts', t.text, (c) => c.notNull())
        .addColumn('channel', t.text, (c) => c.notNull())
        .addColumn('pid', 'integer')
        .addColumn('from_status', t.text)
        .addColumn('to_status', t.text, (c) => c.notNull())
        .addColumn('reason', t.text, (c) => c.notNull())
        .modifyEnd(partitioned(t.pg))
        .execute();
      await defaultPartition(db, 'bot_events');
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
        .addColumn('ts', t.text, (c) => c.notNull())
        .addColumn('actor', t.text, (c) => c.notNull())
        .addColumn('processed', t.bigint)
        .addColumn('queue_depth', t.bigint)
        .addColumn('dropped', t.bigint)
        .addColumn('loop_lag_p99_ms', t.real)
        .addColumn('loop_lag_max_ms', t.real)
        .addColumn('heap_used_mb', t.real)
        .addColumn('uptime_s', t.bigint)
        .addColumn('restarts', t.integer)
        .addColumn('detail_json', t.text)
        .modifyEnd(partitioned(t.pg))
        .execute();
      await defaultPartition(db, 'worker_health');
      // Retention deletes by ts; without this index each pass would scan the table.
      await db.schema.createIndex('worker_health_ts').ifNotExists().on('worker_health').column('ts').execute();
      await db.schema
        .createTable('delivery_cursor')
        .ifNotExists()
        .addColumn('sender', t.text, (c) => c.primaryKey())
        .addColumn('seq', t.bigint, (c) => c.notNull())
        .addColumn('updated_at', t.text, (c) => c.notNull())
        .execute();
    },
  },
  '0002_bot_identity': {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema.alterTable('bot_status').addColumn('start_time', types(db).bigint).execute();
      // Features are stored once per bot (bot_status), no longer copied into every sample. The
      // column stays, NULL in new rows: dropping it rewrites the whole table under the write lock
      // at start-up, minutes for a week of 10k bots (docs/PERFORMANCE.md, "Numbers behind code choices"). Old rows keep
      // theirs until retention removes them; the view gives every row its features either way.
      await createFeaturesView(db);
    },
  },
  '0003_llm_usage_id': {
    async up(db: Kysely<any>): Promise<void> {
      const t = types(db);
      await db.schema.alterTable('llm_usage').addColumn('id', t.text).execute();
      // NULL for clients that send no id: a UNIQUE index lets any number of NULLs through.
      // PostgreSQL: the id dedup is llm_usage_ids (0006; a partitioned table's unique index needs ts).
      if (!t.pg) await db.schema.createIndex('llm_usage_id').unique().on('llm_usage').column('id').execute();
    },
  },
  '0004_llm_accounting': {
    async up(db: Kysely<any>): Promise<void> {
      const t = types(db);
      for (const [column, type] of [
        ['tokens_cached', t.bigint],
        ['tokens_reasoning', t.bigint],
        ['provider', t.text],
        ['status', t.text],
        ['error_type', t.text],
        ['request_id', t.text],
      ] as const) {
        await db.schema.alterTable('llm_usage').addColumn(column, type).execute();
      }
      for (const table of ['llm_usage_hourly', 'llm_usage_daily']) await createRollupTable(db, table, false);
      await db.schema
        .createTable('llm_budget_state')
        .addColumn('name', t.text, (c) => c.primaryKey())
        .addColumn('period_start', t.text, (c) => c.notNull())
        .addColumn('level', t.text, (c) => c.notNull())
        .addColumn('updated_at', t.text, (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('monitor_state')
        .addColumn('key', t.text, (c) => c.primaryKey())
        .addColumn('value', t.text, (c) => c.notNull())
        .addColumn('updated_at', t.text, (c) => c.notNull())
        .execute();
      if (t.pg) return; // a new PostgreSQL database has no older rows
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
      // With PostgreSQL as the store they live in a local SQLite file instead (src/alerts/store.ts:
      // the alerter must be able to say the store is down), so they are not created there.
      if (isPostgres(db)) return;
      await createAlertTables(db);
    },
  },
  '0006_hosts': {
    async up(db: Kysely<any>): Promise<void> {
      const t = types(db);
      // Every data table gets the name of the monitor that wrote the row, and the keyed ones get
      // it in their key (channels are unique per host, not across hosts). The rollups keep ts first
      // and take host last: reports read a time range over all hosts, and that stays a key range.
      const keyed: [table: string, key: string[]][] = [
        ['bot_status', ['host', 'channel']],
        ['delivery_cursor', ['host', 'sender']],
        ['monitor_state', ['host', 'key']],
        ['llm_budget_state', ['host', 'name']],
        ['llm_usage_hourly', ['ts', 'channel', 'model', 'feature', 'provider', 'status', 'host']],
        ['llm_usage_daily', ['ts', 'channel', 'model', 'feature', 'provider', 'status', 'host']],
      ];
      if (t.pg) {
        // Tables created empty by 0001..0004 in this same run: no default, no rows to fill.
        for (const table of [...PARTITIONED_TABLES, ...keyed.map(([name]) => name)])
          await db.schema
            .alterTable(table)
            .addColumn('host', t.text, (c) => c.notNull())
            .execute();
        for (const [table, key] of keyed) {
          const constraint = table.startsWith('llm_usage_') ? `${table}_pk` : `${table}_pkey`;
          await sql`ALTER TABLE ${sql.table(table)} DROP CONSTRAINT ${sql.ref(constraint)},
            ADD CONSTRAINT ${sql.ref(constraint)} PRIMARY KEY (${sql.join(key.map((c) => sql.ref(c)))})`.execute(db);
        }
        await db.schema
          .createTable('llm_usage_ids')
          .addColumn('host', t.text, (c) => c.notNull())
          .addColumn('id', t.text, (c) => c.notNull())
          .addColumn('ts', t.text, (c) => c.notNull())
          .addPrimaryKeyConstraint('llm_usage_ids_pk', ['host', 'id'])
          .execute();
        await db.schema.createIndex('llm_usage_ids_ts').on('llm_usage_ids').column('ts').execute();
        // Features of a sample come from its own host's bot of that channel.
        await db.schema.dropView('bot_metrics_features').execute();
        await db.schema
          .createView('bot_metrics_features')
          .as(
            db
              .selectFrom('bot_metrics as m')
              .leftJoin('bot_status as s', (j) => j.onRef('s.host', '=', 'm.host').onRef('s.channel', '=', 'm.channel'))
              .select(['m.ts', 'm.host', 'm.channel', 'm.pid', 'm.rss_mb', 'm.cpu_pct', 'm.cpu_pct_machine'])
              .select((eb) => eb.fn.coalesce('m.features_json', 's.features_json').as('features_json')),
          )
          .execute();
      } else {
        // Append-only tables: a new column with a default is a schema change only, whatever their size.
        for (const table of PARTITIONED_TABLES)
          await db.schema
            .alterTable(table)
            .addColumn('host', 'text', (c) => c.notNull().defaultTo(''))
            .execute();
        // SQLite cannot change a primary key in place: the keyed tables (small, apart from the
        // rollups) are copied into a new table with the new key. Their rows get host '' and are
        // claimed by the monitor that opens the file next (src/db/sqlite-store.ts). The view over
        // bot_status would stop the rename: it is made again afterwards, as it was (one host per file).
        await db.schema.dropView('bot_metrics_features').execute();
        for (const [table, key] of keyed) {
          const columns = (await db.introspection.getTables()).find((x) => x.name === table)!.columns;
          const copy = `${table}_0006`;
          await sql`CREATE TABLE ${sql.table(copy)} (
            ${sql.join(
              columns.map(
                (c) =>
                  sql`${sql.ref(c.name)} ${sql.raw(c.dataType || 'text')}${sql.raw(c.isNullable ? '' : ' NOT NULL')}`,
              ),
            )},
            host text NOT NULL DEFAULT '',
            PRIMARY KEY (${sql.join(key.map((c) => sql.ref(c)))})
          )${sql.raw(table.startsWith('llm_usage_') ? ' WITHOUT ROWID' : '')}`.execute(db);
          const names = sql.join(columns.map((c) => sql.ref(c.name)));
          await sql`INSERT INTO ${sql.table(copy)} (${names}) SELECT ${names} FROM ${sql.table(table)}`.execute(db);
          await db.schema.dropTable(table).execute();
          await db.schema.alterTable(copy).renameTo(table).execute();
        }
        await createFeaturesView(db);
        await db.schema.dropIndex('llm_usage_id').execute();
        await db.schema.createIndex('llm_usage_host_id').unique().on('llm_usage').columns(['host', 'id']).execute();
      }
      await db.schema
        .createTable('hosts')
        .addColumn('host', t.text, (c) => c.primaryKey())
        .addColumn('version', t.text, (c) => c.notNull())
        .addColumn('pid', 'integer', (c) => c.notNull())
        .addColumn('started_at', t.text, (c) => c.notNull())
        .addColumn('last_seen', t.text, (c) => c.notNull())
        .addColumn('bots_json', t.text, (c) => c.notNull())
        .addColumn('stale_after_ms', 'integer', (c) => c.notNull())
        .execute();
    },
  },
  '0007_weekly_rollups': {
    async up(db: Kysely<any>): Promise<void> {
      // ISO weeks (Monday 00:00 UTC) of the daily rows, so a 90-day report reads ~13 rows a key, not 90.
      await createRollupTable(db, 'llm_usage_weekly', true);
      if (!isPostgres(db)) return fillWeeklyRollups(db);
      // PostgreSQL's writer keeps every level current (additive upserts, src/db/postgres-store.ts):
      // each week is the sum of its days, histograms NULL there as in the daily rows.
      await sql`INSERT INTO llm_usage_weekly
        SELECT to_char(date_trunc('week', ts::timestamp), 'YYYY-MM-DD"T00:00:00.000Z"'), channel, model, feature, provider, status,
          ${sql.raw(ROLLUP_ADDED.map((c) => `sum(${c})`).join(', '))}, min(latency_min), max(latency_max), NULL, host
        FROM llm_usage_daily GROUP BY 1, 2, 3, 4, 5, 6, host`.execute(db);
    },
  },
};

/**
 * A rollup table (0004; 0007 the weekly one, with `host` in its key from the start as 0006 left
 * the others).
 */
async function createRollupTable(db: Kysely<any>, table: string, withHost: boolean): Promise<void> {
  const t = types(db);
  let create = db.schema
    .createTable(table)
    .addColumn('ts', t.text, (c) => c.notNull())
    .addColumn('channel', t.text, (c) => c.notNull())
    .addColumn('model', t.text, (c) => c.notNull())
    .addColumn('feature', t.text, (c) => c.notNull())
    .addColumn('provider', t.text, (c) => c.notNull())
    .addColumn('status', t.text, (c) => c.notNull())
    .addColumn('calls', t.bigint, (c) => c.notNull())
    .addColumn('tokens_in', t.bigint, (c) => c.notNull())
    .addColumn('tokens_out', t.bigint, (c) => c.notNull())
    .addColumn('tokens_cached', t.bigint, (c) => c.notNull())
    .addColumn('tokens_reasoning', t.bigint, (c) => c.notNull())
    .addColumn('cost_usd', t.real, (c) => c.notNull())
    .addColumn('unpriced_calls', t.bigint, (c) => c.notNull())
    .addColumn('latency_count', t.bigint, (c) => c.notNull())
    .addColumn('latency_sum', t.real, (c) => c.notNull())
    .addColumn('latency_min', t.real)
    .addColumn('latency_max', t.real)
    .addColumn('latency_hist', t.blob);
  // As 0006 made the others: no default on PostgreSQL (the writer always sets it), '' on SQLite.
  if (withHost) create = create.addColumn('host', t.text, (c) => (t.pg ? c.notNull() : c.notNull().defaultTo('')));
  await create
    // The key is the upsert target; ts first, so a time range (reports, retention) is a range.
    .addPrimaryKeyConstraint(`${table}_pk`, [
      'ts',
      'channel',
      'model',
      'feature',
      'provider',
      'status',
      ...(withHost ? (['host'] as never[]) : []),
    ])
    // Clustered by that key: a report's range reads adjacent pages, not one rowid lookup per row
    // (measured: 90k daily rows of a 1.7 GB database took seconds through the rowid table), and an
    // upsert touches one b-tree instead of a table and its key index.
    .modifyEnd(t.pg ? sql`` : sql`WITHOUT ROWID`)
    .execute();
}

/**
 * 0007 on SQLite: each host's days already folded into whole weeks, so an upgraded file's reports
 * read weeks at once. A host's daily watermark is its monitor_state row or, for a file from before
 * it, the hour after its last hourly row (as src/llm/rollups.ts reads it); its weekly watermark is
 * the start of the week that watermark's day is in, and the whole weeks before it are filled from
 * the daily rows. Host '' (rows from before 0006) too: the store that claims them re-folds its
 * levels to its own watermarks (src/db/sqlite-store.ts).
 */
async function fillWeeklyRollups(db: Kysely<any>): Promise<void> {
  const hosts = await sql<{ host: string; until: string | null; last_hour: string | null }>`
    SELECT h.host, (SELECT value FROM monitor_state s WHERE s.host = h.host AND s.key = ${DAILY_UNTIL_KEY}) AS until,
      (SELECT strftime('%Y-%m-%dT%H:00:00.000Z', max(ts), '+1 hour') FROM llm_usage_hourly x WHERE x.host = h.host) AS last_hour
    FROM (SELECT DISTINCT host FROM llm_usage_daily UNION SELECT host FROM monitor_state WHERE key = ${DAILY_UNTIL_KEY}) h`.execute(
    db,
  );
  const now = new Date().toISOString();
  const fold = foldSql('llm_usage_daily', 'llm_usage_weekly');
  for (const { host, until, last_hour } of hosts.rows) {
    const daily = until ?? last_hour;
    if (!daily) continue; // no hour folded: the writer folds its days into weeks from the start
    const weekUntil = new Date(weekStartMs(Date.parse(daily.slice(0, 10)))).toISOString();
    await db.executeQuery(CompiledQuery.raw(fold, [host, '', weekUntil]));
    await sql`INSERT INTO monitor_state (host, key, value, updated_at) VALUES (${host}, ${WEEKLY_UNTIL_KEY}, ${weekUntil}, ${now})`.execute(
      db,
    );
  }
}

/** bot_metrics with every sample's features (0002; made again by 0006 on SQLite). */
async function createFeaturesView(db: Kysely<any>): Promise<void> {
  const view = db.schema.createView('bot_metrics_features');
  // PostgreSQL has no CREATE VIEW IF NOT EXISTS (and no old file to adopt).
  await (isPostgres(db) ? view.orReplace() : view.ifNotExists())
    .as(
      db
        .selectFrom('bot_metrics as m')
        .leftJoin('bot_status as s', 's.channel', 'm.channel')
        .select(['m.ts', 'm.channel', 'm.pid', 'm.rss_mb', 'm.cpu_pct', 'm.cpu_pct_machine'])
        .select((eb) => eb.fn.coalesce('m.features_json', 's.features_json').as('features_json')),
    )
    .execute();
}

/** The alerter's tables (0005 on SQLite; the local alert file beside the spool when the store is PostgreSQL). */
function alertTableBuilders(db: Kysely<any>) {
  return [
    db.schema
      .createTable('alerts')
      .ifNotExists()
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
      .addColumn('last_delivery_json', 'text'),
    db.schema
      .createTable('alert_groups')
      .ifNotExists()
      .addColumn('group_key', 'text', (c) => c.primaryKey())
      .addColumn('last_flush_at', 'text', (c) => c.notNull()),
    db.schema
      .createTable('alert_silences')
      .ifNotExists()
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('matcher_json', 'text', (c) => c.notNull())
      .addColumn('starts_at', 'text', (c) => c.notNull())
      .addColumn('ends_at', 'text', (c) => c.notNull())
      .addColumn('comment', 'text', (c) => c.notNull())
      .addColumn('created_by', 'text', (c) => c.notNull()),
    db.schema
      .createTable('alert_deliveries')
      .ifNotExists()
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('receiver', 'text', (c) => c.notNull())
      .addColumn('notification_json', 'text', (c) => c.notNull())
      .addColumn('attempts', 'integer', (c) => c.notNull())
      .addColumn('next_attempt_at', 'text', (c) => c.notNull())
      .addColumn('last_error', 'text'),
  ];
}

async function createAlertTables(db: Kysely<any>): Promise<void> {
  for (const table of alertTableBuilders(db)) await table.execute();
}

/**
 * Creates the alerter's tables in a local SQLite file if they are missing (synchronously: the
 * alerter's store is better-sqlite3). Used when the store is PostgreSQL (src/alerts/store.ts).
 */
export function ensureLocalAlertTables(sqlite: BetterSqlite3.Database): void {
  const db = new Kysely<any>({ dialect: new SqliteDialect({ database: sqlite }) });
  for (const table of alertTableBuilders(db)) sqlite.exec(table.compile().sql);
}

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
  const migrator = newMigrator(db);
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

function newMigrator(db: Kysely<Database>): Migrator {
  return new Migrator({ db, provider: { getMigrations: async () => MIGRATIONS } });
}

/**
 * Migrates a PostgreSQL database to the latest schema. kysely's PostgreSQL adapter takes an
 * advisory lock and runs the pending migrations in one transaction, so monitors starting at once
 * against the same database migrate it once.
 */
export async function migratePostgres(db: Kysely<Database>): Promise<void> {
  const { error } = await newMigrator(db).migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error('migration failed', { cause: error });
}
