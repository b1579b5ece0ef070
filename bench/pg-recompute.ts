// `kissmon usage recompute` on PostgreSQL: N llm_usage rows over the last 30 days (daily
// partitions, as a live store has them) written through the store at one price, then re-priced by
// the store's recompute (what the writer thread runs) after a price fix that changes half of them,
// and once more with nothing left to change. Prints wall time, rows/s, this process's CPU and that
// of the database's PostgreSQL backends (/proc), with the load average before and after.
//
//   node dist/bench/pg-recompute.js [--rows 200000]
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import type { LlmUsageRow } from '../src/actors/db-writer-messages.js';
import { resolveConfig, type ConfigOverrides } from '../src/config.js';
import { ensurePartitions } from '../src/db/partitions.js';
import { openPostgresStore } from '../src/db/postgres-store.js';
import { noRows } from '../src/db/store.js';
import { TestDatabase } from '../test/helpers/postgres.js';
import { backendTicks } from './postgres.js';
import { CLOCK_TICKS_PER_S } from '../src/proc.js';

const DAY_MS = 86_400_000;
const PLAN_ROWS = 20_000;
const arg = (flag: string, fallback: number) => {
  const i = process.argv.indexOf(flag);
  return i < 0 ? fallback : Number(process.argv[i + 1]);
};
const rows = arg('--rows', 200_000);
const load = () =>
  os
    .loadavg()
    .map((n) => n.toFixed(1))
    .join(' ');

const database = await new TestDatabase().create();
try {
  const config = (prices: ConfigOverrides['prices']) =>
    resolveConfig({ dbPath: database.url, hostName: 'bench', logLevel: 'error', prices });
  const now = Date.now();
  let store = await openPostgresStore(
    database.url,
    config({ 'bench-fixed': { input: 1, output: 4 }, 'bench-same': { input: 1, output: 4 } }),
  );
  await ensurePartitions(store.db, now - 31 * DAY_MS, now);
  for (let at = 0; at < rows; at += PLAN_ROWS) {
    const plan = {
      rows: Array.from({ length: Math.min(PLAN_ROWS, rows - at) }, (_, i): LlmUsageRow => ({
        type: 'llm_usage',
        at: now - 30 * DAY_MS + Math.floor(((at + i) * 30 * DAY_MS) / rows),
        channel: `bot_${(at + i) % 50}`,
        model: (at + i) % 2 === 0 ? 'bench-fixed' : 'bench-same',
        feature: 'chat',
        tokens_in: 1000 + ((at + i) % 500),
        tokens_out: 200,
        latency_ms: 300,
      })),
      cursors: new Map<string, number>(),
    };
    await store.write(plan, noRows(), () => {});
    store.committed();
  }
  await store.close();
  store = await openPostgresStore(
    database.url,
    config({ 'bench-fixed': { input: 1, output: 5 }, 'bench-same': { input: 1, output: 4 } }),
  );
  for (const pass of ['price fix', 'nothing to change']) {
    const loadBefore = load();
    const ticks = await backendTicks(database);
    const cpu = process.cpuUsage();
    const t0 = performance.now();
    const result = await store.recompute(now - 31 * DAY_MS, () => false, 100);
    const seconds = (performance.now() - t0) / 1000;
    const used = process.cpuUsage(cpu);
    let backendTicksUsed = 0;
    for (const [pid, after] of await backendTicks(database)) backendTicksUsed += after - (ticks.get(pid) ?? 0);
    console.log(
      JSON.stringify({
        pass,
        ...result,
        seconds: Number(seconds.toFixed(2)),
        rows_per_s: Math.round(result.rows_checked / seconds),
        process_cpu_s: Number(((used.user + used.system) / 1e6).toFixed(2)),
        backends_cpu_s: Number((backendTicksUsed / CLOCK_TICKS_PER_S).toFixed(2)),
        load_before: loadBefore,
        load_after: load(),
      }),
    );
  }
  await store.close();
} finally {
  await database.drop();
}
