// A read-only better-sqlite3 connection set up for reports, without kysely: `kissmon usage` opens
// it directly, so a one-shot command does not load kysely's ~280 modules (schema.ts wraps it).
import BetterSqlite3 from 'better-sqlite3';
import { registerHistogramFunctions } from '../llm/histogram.js';

/** Opens a read-only connection (the file must exist, i.e. the writer has started once). */
export function openReadConnection(path: string, options: { busyTimeoutMs?: number } = {}): BetterSqlite3.Database {
  const sqlite = new BetterSqlite3(path, { readonly: true, fileMustExist: true });
  sqlite.pragma(`busy_timeout = ${Math.round(options.busyTimeoutMs ?? 1_000)}`);
  registerHistogramFunctions(sqlite);
  // Reports read tens of thousands of rollup pages; SQLite's default 2 MB cache would re-read them per query.
  sqlite.pragma('cache_size = -32768');
  return sqlite;
}
