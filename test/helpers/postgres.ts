// A fresh PostgreSQL database per test (the machine's server: socket /var/run/postgresql and
// 127.0.0.1:5432, trust auth). `create()` makes kissmon_t_<random>, `drop()` removes it with
// its connections (DROP DATABASE ... WITH (FORCE)). Never touches the server itself.
import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The server and an existing database to connect to for CREATE/DROP (KISSMON_TEST_PG_URL overrides). */
const ADMIN_URL = process.env.KISSMON_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Why PostgreSQL is not usable here (for requireResource), or undefined. */
export async function postgresMissing(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: ADMIN_URL, connectionTimeoutMillis: 3_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return undefined;
  } catch (err) {
    return `PostgreSQL at ${ADMIN_URL} does not answer (${(err as Error).message})`;
  } finally {
    await client.end().catch(() => {});
  }
}

export class TestDatabase {
  readonly name = `kissmon_t_${randomBytes(6).toString('hex')}`;
  #created = false;

  /** The database's URL, as `--db` takes it. */
  get url(): string {
    const url = new URL(ADMIN_URL);
    url.pathname = `/${this.name}`;
    return url.toString();
  }

  async create(): Promise<this> {
    await admin(`CREATE DATABASE ${this.name}`);
    this.#created = true;
    return this;
  }

  /** Drops the database and ends whatever is still connected to it. Idempotent. */
  async drop(): Promise<void> {
    if (!this.#created) return;
    this.#created = false;
    await admin(`DROP DATABASE IF EXISTS ${this.name} WITH (FORCE)`);
  }

  /** One query on a short-lived connection to the test database. */
  async query<T extends pg.QueryResultRow = Record<string, unknown>>(
    text: string,
    values: unknown[] = [],
  ): Promise<T[]> {
    const client = new pg.Client({ connectionString: this.url });
    await client.connect();
    try {
      return (await client.query<T>(text, values)).rows;
    } finally {
      await client.end();
    }
  }
}

async function admin(statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: ADMIN_URL });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}
