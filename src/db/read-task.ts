// Piscina task file of the read pool (src/db/read-pool.ts): runs one report/status query on a
// read-only connection. Each pool thread keeps one connection per store (an SQLite file opened
// read-only, or a small PostgreSQL pool), opened on first use and closed with the thread (piscina
// ends idle threads after its idleTimeout).
import type { Kysely } from 'kysely';
import { hostViews } from '../hosts/hosts.js';
import { usageReport, type UsageReportOptions } from '../llm/report.js';
import { openReader, parseBackend } from './backend.js';
import { botDetail, fleetStatus, statusRows, usageTotals, type HostFilter } from './queries.js';
import type { Database } from './schema.js';

/** `store`: the config's dbPath (a resolved file path or a postgres:// URL). */
export type ReadTask =
  | { store: string; query: 'status'; options: HostFilter }
  | { store: string; query: 'fleet'; options: HostFilter & { staleAfterMs?: number } }
  | { store: string; query: 'hosts'; options: { staleAfterMs?: number } }
  | { store: string; query: 'usage'; options: UsageReportOptions }
  | { store: string; query: 'totals'; options: { sinceMs: number } & HostFilter }
  | { store: string; query: 'bot'; options: { channel: string; sinceMs: number } & HostFilter };

const connections = new Map<string, Kysely<Database>>();

function connection(store: string): Kysely<Database> {
  let db = connections.get(store);
  if (!db) {
    db = openReader(parseBackend(store));
    connections.set(store, db);
  }
  return db;
}

export default async function runReadTask(task: ReadTask): Promise<unknown> {
  const db = connection(task.store);
  switch (task.query) {
    case 'status':
      return statusRows(db, task.options);
    case 'fleet':
      return fleetStatus(db, task.options);
    case 'hosts':
      return hostViews(db, task.options);
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
