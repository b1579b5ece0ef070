// The raw baseline the monitor's end-to-end throughput is compared with: what one thread does with
// nothing but the essentials. Bare net server on a Unix socket → split lines on \n → JSON.parse →
// llm_usage rows into better-sqlite3, one reused prepared statement, 1000-row transactions, WAL +
// synchronous=NORMAL (the monitor's pragmas). A 50 ms timer commits a partial batch (the monitor's
// writer commits at least every 50 ms too). No validation, no auth, no registry, no actors.
//
// The table has the monitor's llm_usage columns and its ts index, so the comparison is about the
// pipeline, not the schema. ts and cost_usd are computed per row, as the monitor does.
//
// Run: node dist/bench/raw-baseline.js SOCKET DB   (prints "ready" when listening; SIGTERM commits and exits)
import { unlinkSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { LlmUsageMessage } from '../src/protocol/messages.js';
import { serveUsageLines } from './raw-line-server.js';

const [socketPath, dbPath] = process.argv.slice(2);
if (!socketPath || !dbPath) {
  process.stderr.write('usage: raw-baseline SOCKET DB\n');
  process.exit(2);
}

const db = new Database(dbPath);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = NORMAL');
db.exec(`CREATE TABLE IF NOT EXISTS llm_usage (ts TEXT NOT NULL, channel TEXT NOT NULL, model TEXT NOT NULL, feature TEXT NOT NULL,
  tokens_in INTEGER NOT NULL, tokens_out INTEGER NOT NULL, latency_ms REAL, cost_usd REAL NOT NULL);
  CREATE INDEX IF NOT EXISTS llm_usage_ts ON llm_usage (ts);`);
const insert = db.prepare(
  'INSERT INTO llm_usage (ts, channel, model, feature, tokens_in, tokens_out, latency_ms, cost_usd) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
);

/** Trusted, not validated: the baseline skips what the monitor spends on checking. */
type Usage = LlmUsageMessage;

let batch: Usage[] = [];
const commit = db.transaction((rows: Usage[]) => {
  const ts = new Date().toISOString();
  // gpt-4o-mini's price (USD per 1M tokens), like the monitor's table lookup.
  for (const r of rows)
    insert.run(
      ts,
      r.channel,
      r.model,
      r.feature,
      r.tokens_in,
      r.tokens_out,
      r.latency_ms ?? null,
      (r.tokens_in * 0.15 + r.tokens_out * 0.6) / 1e6,
    );
});
const flush = () => {
  if (batch.length === 0) return;
  const rows = batch;
  batch = [];
  commit(rows);
};

serveUsageLines(socketPath, (msg) => {
  batch.push(msg);
  if (batch.length >= 1000) flush();
});
setInterval(flush, 50);
process.on('SIGTERM', () => {
  flush();
  db.close();
  try {
    unlinkSync(socketPath);
  } catch {
    // gone
  }
  process.exit(0);
});
