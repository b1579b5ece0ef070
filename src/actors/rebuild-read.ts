// Runs the one-shot rebuild reader thread (src/actors/rebuild-reader.ts) and resolves with what it
// read: this host's bot_status and delivery cursors. Used by the registry at start (its rebuild) and,
// with PostgreSQL as the store, by the alerter (the channels the registry knows, see workers/alerter.ts).
// A thread of its own, so that neither caller loads kysely and the database driver for one read.
import { Worker } from 'node:worker_threads';
import type { RebuildAnswer, RebuildState } from './rebuild-reader.js';

export function readRebuildState(dbPath: string, hostName: string): Promise<RebuildState> {
  return new Promise((resolve, reject) => {
    const reader = new Worker(new URL('./rebuild-reader.js', import.meta.url), { workerData: { dbPath, hostName } });
    reader.once('message', (answer: RebuildAnswer) => {
      if (answer.type === 'state') resolve(answer.state);
      else reject(Object.assign(new Error(answer.message), { code: answer.code }));
    });
    reader.once('error', reject);
    reader.once('exit', (code) => reject(new Error(`the rebuild reader exited (${code}) without an answer`)));
  });
}
