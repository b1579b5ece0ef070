// A PostgreSQL database made and dropped by hand, for code without a TestContext (the bench, a
// test file's shared database): the same server, check and admin connection as backends.ts, whose
// createPgDatabase(t) is the per-test form.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { adminQuery, PG_ADMIN_URL } from './backends.js';

export { postgresMissing } from './backends.js';

export class TestDatabase {
  readonly name = `kissmon_t_${randomBytes(6).toString('hex')}`;
  #created = false;

  /** The database's URL, as `--db` takes it. */
  get url(): string {
    const url = new URL(PG_ADMIN_URL);
    url.pathname = `/${this.name}`;
    return url.toString();
  }

  async create(): Promise<this> {
    await adminQuery(`CREATE DATABASE ${this.name}`);
    this.#created = true;
    return this;
  }

  /** Drops the database and ends whatever is still connected to it. Idempotent. */
  async drop(): Promise<void> {
    if (!this.#created) return;
    this.#created = false;
    await adminQuery(`DROP DATABASE IF EXISTS ${this.name} WITH (FORCE)`);
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
