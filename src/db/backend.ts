// Which store the monitor uses, and how to open it. `--db` / KISSBOT_MONITOR_DB (config dbPath)
// is either a file path (SQLite, the embedded default) or a postgres:// / postgresql:// URL
// (PostgreSQL through kysely's PostgresDialect over a `pg` pool). Everything else asks this
// module which one it is; nobody else looks at the string.
//
//   parseBackend(config.dbPath) ─▶ { kind: 'sqlite', path } ─▶ openWriteDatabase / openReadDatabase (schema.ts)
//                               └▶ { kind: 'postgres', url } ─▶ openPostgres (a pg.Pool) · migratePostgres
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Backend } from './backend-url.js';
import { migratePostgres, openReadDatabase, type Database } from './schema.js';

export { describeBackend, parseBackend, redactUrl, type Backend } from './backend-url.js';

// bigint (count(*), sums, seq) and numeric (sum of bigint) arrive from pg as strings; every value
// the monitor stores fits a double exactly far beyond any real total, and SQLite returns numbers,
// so both backends give the same row objects.
const INT8 = 20;
const NUMERIC = 1700;
const toNumber = (text: string) => Number(text);
const pgTypes = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === INT8 || oid === NUMERIC) return toNumber;
    return pg.types.getTypeParser(oid, format);
  },
};

export interface PostgresOptions {
  /** Connections in the pool (default 4). */
  max?: number;
  /** Shown in pg_stat_activity (default kissbot-monitor). */
  applicationName?: string;
  /** A query (or a connect) that takes longer fails: a store that stops answering is a failed attempt, not a hang. */
  queryTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** Errors of idle pooled connections (a terminated backend, a restart): logged, never thrown. */
  onIdleError?: (err: Error) => void;
}

/** A kysely instance over a new pg.Pool for `url`; `db.destroy()` ends the pool. Does not connect yet. */
export function openPostgres(url: string, options: PostgresOptions = {}): { db: Kysely<Database>; pool: pg.Pool } {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.max ?? 4,
    application_name: options.applicationName ?? 'kissbot-monitor',
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5_000,
    query_timeout: options.queryTimeoutMs ?? 30_000,
    keepAlive: true,
    types: pgTypes,
  });
  // Without a listener an idle client's error (pg_terminate_backend, a server restart) is an
  // unhandled 'error' event and ends the process; the pool drops that client either way.
  pool.on('error', (err) => options.onIdleError?.(err));
  return { db: new Kysely<Database>({ dialect: new PostgresDialect({ pool }) }), pool };
}

/** Opens `url` and migrates it to the latest schema (creating every table on a new database). */
export async function openPostgresWrite(
  url: string,
  options: PostgresOptions = {},
): Promise<{ db: Kysely<Database>; pool: pg.Pool }> {
  const handle = openPostgres(url, options);
  try {
    await migratePostgres(handle.db);
    return handle;
  } catch (err) {
    await handle.db.destroy().catch(() => {});
    throw err;
  }
}

/**
 * A connection for reading (reports, status, tests, ops): SQLite read-only (the file must exist),
 * or a small PostgreSQL pool. `db.destroy()` closes it.
 */
export function openReader(backend: Backend, options: { busyTimeoutMs?: number; max?: number } = {}): Kysely<Database> {
  if (backend.kind === 'sqlite') return openReadDatabase(backend.path, { busyTimeoutMs: options.busyTimeoutMs });
  return openPostgres(backend.url, { max: options.max ?? 2, applicationName: 'kissbot-monitor-read' }).db;
}

/** pg's error codes (SQLSTATE) that mean the server or the connection, not the statement: retry later. */
export function isConnectionError(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : '';
  if (/^(08|57P|53)/.test(code)) return true; // connection exception, operator intervention (shutdown, terminate), insufficient resources
  // The database refuses every statement, not this one: not accepting connections (55000,
  // ALLOW_CONNECTIONS false), gone or renamed (3D000), authentication (28xxx), read-only (25006: a
  // failover to a standby, default_transaction_read_only), statement timeout or cancel (57014).
  // Retrying row by row would drop every row as "rejected"; the store is down until it answers.
  if (/^(55000|3D000|28|25006|57014)/.test(code)) return true;
  if (/^(ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH)$/.test(code)) return true;
  const message = typeof e?.message === 'string' ? e.message : '';
  return /Connection terminated|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error|connection is closed/i.test(
    message,
  );
}
