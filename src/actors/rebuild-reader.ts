// The registry's one-shot reader thread. At each start the registry rebuilds its bots from
// bot_status and skips ingest batches already stored (delivery_cursor); this thread reads both in
// one read transaction, posts them and exits. It is a thread of its own so that the registry, which
// never writes, never loads kysely and better-sqlite3: they would stay on its heap for its whole
// life for one read at start-up (measured: docs/PERFORMANCE.md, "Numbers behind code choices").
//
// Started by URL from workers/registry.ts with workerData { dbPath, hostName }; answers one
// RebuildAnswer. On SQLite the file is this monitor's own; on PostgreSQL (a store shared by several
// hosts) only this host's bots and cursors are read.
import { parentPort, workerData } from 'node:worker_threads';
import { parseBackend, openReader } from '../db/backend.js';
import { statusRows } from '../db/queries.js';
import type { BotSnapshot } from './registry-messages.js';

export interface RebuildState {
  rows: BotSnapshot[];
  cursors: { sender: string; seq: number }[];
}

export type RebuildAnswer = { type: 'state'; state: RebuildState } | { type: 'error'; message: string; code?: string };

if (parentPort) {
  const port = parentPort;
  const { dbPath, hostName } = workerData as { dbPath: string; hostName: string };
  let answer: RebuildAnswer;
  let db;
  try {
    const backend = parseBackend(dbPath);
    const shared = backend.kind === 'postgres';
    db = openReader(backend, { busyTimeoutMs: 2_000, max: 1 });
    // One read transaction: the cursors and bot_status from the same commit (on PostgreSQL
    // REPEATABLE READ, so both come from one snapshot there too).
    const read = db.transaction();
    const state = await (shared ? read.setIsolationLevel('repeatable read') : read).execute(async (trx) => ({
      cursors: await (
        shared
          ? trx.selectFrom('delivery_cursor').select(['sender', 'seq']).where('host', '=', hostName)
          : trx.selectFrom('delivery_cursor').select(['sender', 'seq'])
      ).execute(),
      rows: await statusRows(trx, shared ? { host: hostName } : {}),
    }));
    answer = { type: 'state', state };
  } catch (err) {
    const { message, code } = err as { message?: unknown; code?: unknown };
    answer = {
      type: 'error',
      message: typeof message === 'string' ? message : String(err),
      ...(typeof code === 'string' ? { code } : {}),
    };
  } finally {
    await db?.destroy();
  }
  port.postMessage(answer);
}
