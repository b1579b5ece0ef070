// Piscina task file of the read pool (src/db/read-pool.ts): runs one report/status query on a
// read-only connection. Each pool thread keeps one connection per database path, opened on first
// use and closed with the thread (piscina ends idle threads after its idleTimeout).
import type { Kysely } from 'kysely';
import { usageReport, type UsageReportOptions } from '../llm/report.js';
import { botDetail, statusRows, usageTotals } from './queries.js';
import { openReadDatabase, type Database } from './schema.js';

export type ReadTask =
  | { dbPath: string; query: 'status' }
  | { dbPath: string; query: 'usage'; options: UsageReportOptions }
  | { dbPath: string; query: 'totals'; options: { sinceMs: number } }
  | { dbPath: string; query: 'bot'; options: { channel: string; sinceMs: number } };

const connections = new Map<string, Kysely<Database>>();

function connection(dbPath: string): Kysely<Database> {
  let db = connections.get(dbPath);
  if (!db) {
    db = openReadDatabase(dbPath);
    connections.set(dbPath, db);
  }
  return db;
}

export default async function runReadTask(task: ReadTask): Promise<unknown> {
  const db = connection(task.dbPath);
  switch (task.query) {
    case 'status':
      return statusRows(db);
    case 'usage':
      return usageReport(db, task.options);
    case 'totals':
      return usageTotals(db, task.options);
    case 'bot':
      return botDetail(db, task.options);
    default:
      throw new TypeError(`unknown read query ${JSON.stringify((task as { query?: unknown }).query)}`);
  }
}
