// The registry's one-shot reader thread. At each start the registry rebuilds its bots from
// bot_status and skips ingest batches already stored (delivery_cursor); this thread reads both in
// one read transaction, posts them and exits. It is a thread of its own so that the registry, which
// never writes, never loads kysely and better-sqlite3: they would stay on its heap for its whole
// life for one read at start-up (measured: docs/PERFORMANCE.md, "Numbers behind code choices").
//
// Started by URL from workers/registry.ts with workerData { dbPath }; answers one RebuildAnswer.
import { parentPort, workerData } from 'node:worker_threads';
import { statusRows } from '../db/queries.js';
import { openReadDatabase } from '../db/schema.js';
import type { BotSnapshot } from './registry-messages.js';

export interface RebuildState {
  rows: BotSnapshot[];
  cursors: { sender: string; seq: number }[];
}

export type RebuildAnswer = { type: 'state'; state: RebuildState } | { type: 'error'; message: string; code?: string };

if (parentPort) {
  const port = parentPort;
  const { dbPath } = workerData as { dbPath: string };
  let answer: RebuildAnswer;
  let db;
  try {
    db = openReadDatabase(dbPath, { busyTimeoutMs: 2_000 });
    // One read transaction: the cursors and bot_status from the same commit.
    const state = await db.transaction().execute(async (trx) => ({
      cursors: await trx.selectFrom('delivery_cursor').select(['sender', 'seq']).execute(),
      rows: await statusRows(trx),
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
