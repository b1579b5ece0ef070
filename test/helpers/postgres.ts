// PostgreSQL for tests and benchmarks: a fresh database per test (`CREATE DATABASE kissmon_t_<random>`)
// on the machine's server, dropped afterwards with `DROP DATABASE … WITH (FORCE)` (live connections
// of a killed child included). The server itself is never stopped or restarted from here.
// The admin URL: KISSMON_TEST_PG_URL, default postgres://postgres@127.0.0.1:5432/test (trust auth).
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openPostgresWrite } from '../../src/db/backend.js';

export const PG_ADMIN_URL = process.env.KISSMON_TEST_PG_URL || 'postgres://postgres@127.0.0.1:5432/test';

/** Why PostgreSQL cannot be used here (for requireResource), or undefined when it answers. */
export async function postgresMissing(adminUrl = PG_ADMIN_URL): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 5_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return undefined;
  } catch (err) {
    return `PostgreSQL at ${adminUrl} does not answer (${(err as Error).message})`;
  } finally {
    await client.end().catch(() => {});
  }
}

export interface ScratchDatabase {
  name: string;
  /** The admin URL with this database's name. */
  url: string;
  /** Runs the monitor's migrations on it (every table, as `kissmon start --db URL` would). */
  migrate(): Promise<void>;
  /** Drops it, connections and all; idempotent. */
  drop(): Promise<void>;
}

const scratch = new Set<ScratchDatabase>();

/** Drops every scratch database still there (call in `after`). */
export async function dropScratchDatabases(): Promise<void> {
  for (const db of [...scratch]) await db.drop();
}

async function admin<T>(adminUrl: string, run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}

export async function createScratchDatabase(adminUrl = PG_ADMIN_URL, prefix = 'kissmon_t'): Promise<ScratchDatabase> {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  await admin(adminUrl, (c) => c.query(`CREATE DATABASE ${name}`));
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const db: ScratchDatabase = {
    name,
    url: url.toString(),
    async migrate() {
      const { db: kysely } = await openPostgresWrite(db.url);
      await kysely.destroy();
    },
    async drop() {
      if (!scratch.delete(db)) return;
      await admin(adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  };
  scratch.add(db);
  return db;
}
