// The stores a database test runs against: SQLite (a file in a temp dir) and PostgreSQL (a fresh
// database `kissmon_t_<random>` on the machine's server, dropped WITH (FORCE) after the test).
// Under CI=true a missing PostgreSQL fails the test (requireResource); elsewhere it is skipped
// with the reason in the output.
//
//   for (const kind of BACKENDS)
//     test(`... [${kind}]`, async (t) => {
//       const store = await openBackend(t, kind);
//       if (!store) return;                      // skipped: no PostgreSQL here
//       startWriter(store.dbPath, link, store.overrides) ... await store.rows('SELECT ... WHERE x = ?', [1])
//     });
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import type { ConfigOverrides } from '../../src/config.js';
import { requireResource } from './resources.js';

export const BACKENDS = ['sqlite', 'postgres'] as const;
export type BackendKind = (typeof BACKENDS)[number];

/** The server tests create their databases on (env KISSMON_TEST_PG overrides). */
export const PG_ADMIN_URL = process.env.KISSMON_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface TestStore {
  kind: BackendKind;
  /** config dbPath: the file, or the database's URL. */
  dbPath: string;
  /** Settings the monitor/writer needs on this store (a spool in the test's temp dir). */
  overrides: ConfigOverrides;
  dir: string;
  /** Rows of a query written with `?` placeholders (turned into $1.. on PostgreSQL). */
  rows<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  count(table: string, where?: string): Promise<number>;
  /** The same, blocking this thread (a test that must not let the event loop run meanwhile). */
  countSync(table: string): number;
}

let pgChecked: Promise<string | undefined> | null = null;

/** Why PostgreSQL cannot be used here, or undefined. */
export function postgresMissing(): Promise<string | undefined> {
  pgChecked ??= (async () => {
    const client = new pg.Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 3_000 });
    try {
      await client.connect();
      await client.query('SELECT 1');
      return undefined;
    } catch (err) {
      return `no PostgreSQL at ${PG_ADMIN_URL} (${(err as Error).message})`;
    } finally {
      await client.end().catch(() => {});
    }
  })();
  return pgChecked;
}

/** Runs one statement on the admin database (CREATE/DROP/ALTER DATABASE, pg_terminate_backend). */
export async function adminQuery(sql: string, params: unknown[] = []): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: PG_ADMIN_URL });
  await client.connect();
  try {
    return await client.query(sql, params);
  } finally {
    await client.end();
  }
}

/** A new empty database; dropped (WITH FORCE: live connections too) in `t.after`. */
export async function createPgDatabase(t: TestContext): Promise<{ name: string; url: string }> {
  const name = `kissmon_t_${randomBytes(5).toString('hex')}`;
  await adminQuery(`CREATE DATABASE ${name}`);
  t.after(() => adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).then(() => {}));
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return { name, url: url.toString() };
}

/** A fresh store of `kind` for test `t` (null: PostgreSQL missing, the test is skipped). Cleaned up after `t`. */
export async function openBackend(t: TestContext, kind: BackendKind): Promise<TestStore | null> {
  const dir = mkdtempSync(join(tmpdir(), `kissmon-${kind}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  if (kind === 'sqlite') {
    const dbPath = join(dir, 'monitor.db');
    const withDb = async <T>(run: (db: BetterSqlite3.Database) => T): Promise<T> => {
      const db = new BetterSqlite3(dbPath, { readonly: true, fileMustExist: true });
      try {
        return run(db);
      } finally {
        db.close();
      }
    };
    return {
      kind,
      dbPath,
      overrides: { dbPath },
      dir,
      rows: <T>(sql: string, params: unknown[] = []) => withDb((db) => db.prepare(sql).all(...params) as T[]),
      count: (table, where = '1 = 1') =>
        withDb((db) => (db.prepare(`SELECT count(*) AS n FROM ${table} WHERE ${where}`).get() as { n: number }).n),
      countSync: (table) => {
        const db = new BetterSqlite3(dbPath, { readonly: true, fileMustExist: true });
        try {
          return (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
        } finally {
          db.close();
        }
      },
    };
  }
  if (!requireResource(t, 'PostgreSQL', await postgresMissing())) return null;
  const { url } = await createPgDatabase(t);
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  pool.on('error', () => {}); // a test that terminates backends also hits this pool's idle clients
  t.after(() => pool.end());
  const rows = async <T>(sql: string, params: unknown[] = []): Promise<T[]> => {
    let n = 0;
    const text = sql.replace(/\?/g, () => `$${++n}`);
    // bigint / numeric as numbers, as SQLite returns them (src/db/backend.ts does the same).
    const result = await pool.query({ text, values: params, types: numericTypes });
    return result.rows as T[];
  };
  return {
    kind,
    dbPath: url,
    overrides: { dbPath: url, spool: { path: join(dir, 'monitor.spool') } },
    dir,
    rows,
    count: async (table, where = '1 = 1') =>
      (await rows<{ n: number }>(`SELECT count(*) AS n FROM ${table} WHERE ${where}`))[0].n,
    countSync: (table) => {
      // psql in a child: the only way to wait for PostgreSQL without running this thread's event loop.
      const r = spawnSync('psql', [url, '-tAc', `SELECT count(*) FROM ${table}`], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`psql: ${r.stderr}`);
      return Number(r.stdout.trim());
    },
  };
}

const numericTypes = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === 20 || oid === 1700) return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format);
  },
};
