// The raw PostgreSQL baseline the monitor's end-to-end throughput into PostgreSQL is compared with:
// what one thread does with nothing but the essentials. Bare net server on a Unix socket → split
// lines on \n → JSON.parse → llm_usage rows into PostgreSQL through one `pg` connection, one
// `INSERT … SELECT * FROM unnest($1::text[], …)` per batch (DESIGN.md: ~116k rows/s here, twice a
// multi-row VALUES insert). While a batch is in flight the next one collects, so the connection
// is never idle while lines wait; a 50 ms timer commits a partial batch (the monitor's writer
// commits at least every 50 ms too). No validation, no auth, no registry, no actors, no rollups.
//
// The table is the one the monitor writes (bench/postgres.ts runs the monitor's own migrations on
// the fresh database before starting this), so the comparison is about the pipeline, not the
// schema. ts and cost_usd are computed per row, as the monitor does.
//
// Run: node dist/bench/raw-pg-baseline.js SOCKET POSTGRES_URL HOST
//   (prints "ready" when listening; SIGTERM commits what it holds and exits)
import { unlinkSync } from 'node:fs';
import pg from 'pg';
import type { LlmUsageMessage } from '../src/protocol/messages.js';
import { serveUsageLines } from './raw-line-server.js';

const [socketPath, url, host] = process.argv.slice(2);
if (!socketPath || !url || !host) {
  process.stderr.write('usage: raw-pg-baseline SOCKET POSTGRES_URL HOST\n');
  process.exit(2);
}

/** Rows per INSERT at most: one statement of 10k rows is ~1 MB of parameters. */
const MAX_BATCH = 10_000;

const client = new pg.Client({ connectionString: url });
await client.connect();
const INSERT = `INSERT INTO llm_usage (host, ts, channel, model, feature, tokens_in, tokens_out, latency_ms, cost_usd)
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::float8[], $9::float8[])`;

/** Trusted, not validated: the baseline skips what the monitor spends on checking. */
type Usage = LlmUsageMessage;

let batch: Usage[] = [];
let inFlight: Promise<void> | null = null;

async function commit(rows: Usage[]): Promise<void> {
  const ts = new Date().toISOString();
  const n = rows.length;
  const hosts = new Array<string>(n).fill(host);
  const tss = new Array<string>(n).fill(ts);
  const channel = new Array<string>(n);
  const model = new Array<string>(n);
  const feature = new Array<string>(n);
  const tokensIn = new Array<number>(n);
  const tokensOut = new Array<number>(n);
  const latency = new Array<number | null>(n);
  const cost = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const r = rows[i];
    channel[i] = r.channel;
    model[i] = r.model;
    feature[i] = r.feature;
    tokensIn[i] = r.tokens_in;
    tokensOut[i] = r.tokens_out;
    latency[i] = r.latency_ms ?? null;
    // gpt-4o-mini's price (USD per 1M tokens), like the monitor's table lookup.
    cost[i] = (r.tokens_in * 0.15 + r.tokens_out * 0.6) / 1e6;
  }
  // A single statement is its own transaction: no BEGIN/COMMIT round trips.
  await client.query(INSERT, [hosts, tss, channel, model, feature, tokensIn, tokensOut, latency, cost]);
}

/** Sends what has collected unless a batch is in flight; when that one lands, sends again. */
function flush(): void {
  if (inFlight || batch.length === 0) return;
  const rows = batch.length > MAX_BATCH ? batch.splice(0, MAX_BATCH) : batch;
  if (rows === batch) batch = [];
  inFlight = commit(rows).then(
    () => {
      inFlight = null;
      if (batch.length >= 1_000) flush();
    },
    (err: unknown) => {
      process.stderr.write(`raw-pg-baseline: insert failed: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
}

serveUsageLines(socketPath, (msg) => {
  batch.push(msg);
  if (batch.length >= 1_000) flush();
});
setInterval(flush, 50);
process.on('SIGTERM', () => {
  void (async () => {
    while (inFlight || batch.length) {
      flush();
      await inFlight;
    }
    await client.end();
    try {
      unlinkSync(socketPath);
    } catch {
      // gone
    }
    process.exit(0);
  })();
});
