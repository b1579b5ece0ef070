// The SQL that differs between the two backends, in one place, so query modules (src/db/queries.ts,
// src/llm/report.ts, src/hosts/) share their SQL and only ask for the pieces that differ.
// Times are ISO-8601 UTC text on both backends (PostgreSQL: text COLLATE "C"), so comparisons,
// substr() and || are the same; what differs is aggregates, casts and the clock.
// No value import of kysely here: `kissmon usage` on SQLite reads without loading it (src/cli.ts).
import type { Kysely } from 'kysely';

export type SqlDialect = 'sqlite' | 'postgres';

/**
 * Which backend a kysely instance talks to (asked of its adapter, never of a URL). Of the two
 * dialects the monitor opens only PostgreSQL's adapter runs DDL in transactions; asking that
 * instead of `instanceof PostgresAdapter` keeps kysely unloaded for callers that never open it.
 */
export function dialectOf(db: Kysely<any>): SqlDialect {
  return db.getExecutor().adapter.supportsTransactionalDdl ? 'postgres' : 'sqlite';
}

/** SQL text fragments that differ by dialect (for the queries built as text, e.g. the usage report). */
export interface DialectSql {
  /** Sum that is 0 over no rows, as a float (SQLite total()). */
  total: (expr: string) => string;
  /** Count of rows where `cond` holds. */
  countIf: (cond: string) => string;
  /** An integer aggregate returned as a JS number (PostgreSQL gives bigint/numeric as strings). */
  int: (expr: string) => string;
  /** Continuous percentile (`fraction` 0..1) of `expr` over the group, rounded to 2 decimals. */
  percentile: (expr: string, fraction: number) => string;
  /** The database's clock as stored text (`2026-12-01T10:00:00.000Z`). */
  now: string;
}

export const DIALECT_SQL: Record<SqlDialect, DialectSql> = {
  sqlite: {
    total: (e) => `total(${e})`,
    countIf: (c) => `sum(${c})`,
    int: (e) => e,
    // Built into the SQLite bundled with better-sqlite3 (SQLITE_ENABLE_PERCENTILE).
    percentile: (e, f) => `round(percentile_cont(${e}, ${f}), 2)`,
    now: `strftime('%Y-%m-%dT%H:%M:%fZ', 'now')`,
  },
  postgres: {
    total: (e) => `coalesce(sum(${e}), 0)::float8`,
    countIf: (c) => `count(*) FILTER (WHERE ${c})::int8`,
    int: (e) => `(${e})::int8`,
    percentile: (e, f) => `round((percentile_cont(${f}) WITHIN GROUP (ORDER BY ${e}))::numeric, 2)::float8`,
    now: `to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`,
  },
};

/** The fragments for this connection's backend. */
export const dialectSql = (db: Kysely<any>): DialectSql => DIALECT_SQL[dialectOf(db)];

/** A string literal for SQL built as text (values the caller has validated; quotes doubled anyway). */
export const literal = (text: string): string => `'${text.replace(/'/g, "''")}'`;
