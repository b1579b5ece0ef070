// PostgreSQL only: the daily partitions of the time-series tables (PARTITIONED_TABLES, range on
// ts). The writer creates today's and the next days' partitions ahead (at open and every
// retention pass), so rows land in a partition of their own day; a row of a day with no partition
// (a client clock far off, `kissmon migrate` of old history before it made them) lands in the
// table's DEFAULT partition. Retention drops whole partitions, never a long DELETE.
//
//   llm_usage ─┬─ llm_usage_p20261201   FOR VALUES FROM ('2026-12-01') TO ('2026-12-02')
//              ├─ llm_usage_p20261202   ...
//              └─ llm_usage_default     DEFAULT (any other day)
import { sql, type Kysely } from 'kysely';
import { PARTITIONED_TABLES, type Database } from './schema.js';

const DAY_MS = 86_400_000;

export type PartitionedTable = (typeof PARTITIONED_TABLES)[number];

const dayText = (dayMs: number) => new Date(dayMs).toISOString().slice(0, 10);
const startOfDay = (ms: number) => Math.floor(ms / DAY_MS) * DAY_MS;

/** The partition of `table` holding the UTC day of `ms`. */
export function partitionName(table: PartitionedTable, ms: number): string {
  return `${table}_p${dayText(startOfDay(ms)).replaceAll('-', '')}`;
}

/**
 * Creates the daily partitions of every partitioned table for the UTC days from `fromMs` to
 * `toMs` (inclusive) that do not exist yet. Rows of such a day already in the DEFAULT partition
 * are moved into the new one in the same transaction (PostgreSQL refuses the partition otherwise).
 * Returns how many partitions it created.
 */
export async function ensurePartitions(db: Kysely<Database>, fromMs: number, toMs: number): Promise<number> {
  const existing = new Set(
    (
      await sql<{ name: string }>`SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname IN (${sql.join([...PARTITIONED_TABLES])})`.execute(db)
    ).rows.map((r) => r.name),
  );
  let created = 0;
  for (let day = startOfDay(fromMs); day <= startOfDay(toMs); day += DAY_MS) {
    for (const table of PARTITIONED_TABLES) {
      const name = partitionName(table, day);
      if (existing.has(name)) continue;
      await createPartition(db, table, name, dayText(day), dayText(day + DAY_MS));
      created++;
    }
  }
  return created;
}

async function createPartition(db: Kysely<Database>, table: string, name: string, from: string, to: string) {
  await db.transaction().execute(async (tx) => {
    // Serialises monitors creating the same day's partition at once (the second finds it made).
    await sql`SELECT pg_advisory_xact_lock(hashtext(${name}))`.execute(tx);
    const exists = await sql`SELECT 1 FROM pg_class WHERE relname = ${name}`.execute(tx);
    if (exists.rows.length > 0) return;
    const moved = `${name}_moving`;
    await sql`CREATE TEMP TABLE ${sql.table(moved)} (LIKE ${sql.table(table)}) ON COMMIT DROP`.execute(tx);
    await sql`WITH d AS (DELETE FROM ${sql.table(`${table}_default`)} WHERE ts >= ${from} AND ts < ${to} RETURNING *)
      INSERT INTO ${sql.table(moved)} SELECT * FROM d`.execute(tx);
    await sql`CREATE TABLE ${sql.table(name)} PARTITION OF ${sql.table(table)} FOR VALUES FROM (${sql.lit(from)}) TO (${sql.lit(to)})`.execute(
      tx,
    );
    await sql`INSERT INTO ${sql.table(table)} SELECT * FROM ${sql.table(moved)}`.execute(tx);
  });
}

/**
 * Retention of one partitioned table: drops every daily partition whose whole day is before
 * `cutoffMs` and deletes the DEFAULT partition's rows before it. Rows of the cutoff's own day stay
 * until that day's partition goes (retention keeps whole days). Returns the partitions dropped.
 */
export async function dropPartitionsBefore(
  db: Kysely<Database>,
  table: PartitionedTable,
  cutoffMs: number,
): Promise<{ partitions: number; defaultRows: number }> {
  const parts = await sql<{
    name: string;
  }>`SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = ${table}`.execute(db);
  const prefix = `${table}_p`;
  const cutoffName = partitionName(table, cutoffMs);
  let partitions = 0;
  for (const { name } of parts.rows) {
    // Same prefix, eight digits: names sort as their days do.
    if (!name.startsWith(prefix) || !/^\d{8}$/.test(name.slice(prefix.length)) || name >= cutoffName) continue;
    await sql`DROP TABLE IF EXISTS ${sql.table(name)}`.execute(db);
    partitions++;
  }
  const cutoff = new Date(cutoffMs).toISOString();
  const deleted = await sql`DELETE FROM ${sql.table(`${table}_default`)} WHERE ts < ${cutoff}`.execute(db);
  return { partitions, defaultRows: Number(deleted.numAffectedRows ?? 0) };
}
