// Hourly and daily rollups of llm_usage, kept by the writer inside the transaction that inserts the
// rows: a transaction's rows are summed in memory per bucket and key, then one upsert per key and
// table adds them to the stored row. Sharing the transaction with the rows and delivery_cursor is
// what makes them exactly-once: a rolled-back attempt leaves neither, a re-sent batch adds neither.
import type BetterSqlite3 from 'better-sqlite3';
import type { LlmUsageRow } from '../actors/db-writer-messages.js';
import { bucketOf, emptyHistogram, encode, type DenseHistogram } from './histogram.js';

export const ROLLUP_TABLES = ['llm_usage_hourly', 'llm_usage_daily'] as const;
export type RollupTable = (typeof ROLLUP_TABLES)[number];

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

/**
 * The ISO text of the UTC hour or day `ms` falls in. The last one is kept: a transaction's rows
 * are mostly of one hour, and toISOString per row was the rollups' biggest cost in the bench.
 */
function bucketText(size: number): (ms: number) => string {
  let last = Number.NaN;
  let text = '';
  return (ms) => {
    const start = Math.floor(ms / size) * size;
    if (start !== last) {
      last = start;
      text = new Date(start).toISOString();
    }
    return text;
  };
}
export const hourStart = bucketText(HOUR_MS);
export const dayStart = bucketText(DAY_MS);

/** The part of a row the rollups sum (the ingest row, or a stored row being re-priced). */
export type RollupInput = Pick<LlmUsageRow, 'at' | 'channel' | 'model' | 'feature' | 'tokens_in' | 'tokens_out' | 'latency_ms'> &
  Pick<LlmUsageRow, 'tokens_cached' | 'tokens_reasoning' | 'provider' | 'status'>;

interface Sums {
  ts: string;
  channel: string;
  model: string;
  feature: string;
  provider: string;
  status: string;
  calls: number;
  tokens_in: number;
  tokens_out: number;
  tokens_cached: number;
  tokens_reasoning: number;
  cost_usd: number;
  unpriced_calls: number;
  latency_count: number;
  latency_sum: number;
  latency_min: number | null;
  latency_max: number | null;
  hist: DenseHistogram | null;
}

const COLUMNS = [
  'ts', 'channel', 'model', 'feature', 'provider', 'status', 'calls', 'tokens_in', 'tokens_out', 'tokens_cached', 'tokens_reasoning',
  'cost_usd', 'unpriced_calls', 'latency_count', 'latency_sum', 'latency_min', 'latency_max', 'latency_hist',
] as const;
const KEY = COLUMNS.slice(0, 6);
const ADDED = ['calls', 'tokens_in', 'tokens_out', 'tokens_cached', 'tokens_reasoning', 'cost_usd', 'unpriced_calls', 'latency_count', 'latency_sum'];

function upsertSql(table: RollupTable): string {
  const set = [
    ...ADDED.map((c) => `${c} = ${c} + excluded.${c}`),
    // min()/max() of two values is NULL if either is: a side without latencies must not erase the other.
    'latency_min = coalesce(min(latency_min, excluded.latency_min), latency_min, excluded.latency_min)',
    'latency_max = coalesce(max(latency_max, excluded.latency_max), latency_max, excluded.latency_max)',
    'latency_hist = kissmon_hist_merge(latency_hist, excluded.latency_hist)',
  ];
  return `INSERT INTO ${table} (${COLUMNS.join(', ')}) VALUES (${COLUMNS.map(() => '?').join(', ')})
    ON CONFLICT (${KEY.join(', ')}) DO UPDATE SET ${set.join(', ')}`;
}

const groupKey = (row: RollupInput) => `\0${row.channel}\0${row.model}\0${row.feature}\0${row.provider ?? ''}\0${row.status ?? 'ok'}`;

/** One transaction's worth of rollup changes; `write` adds them to the tables. */
export class RollupBatch {
  #hourly = new Map<string, Sums>();
  #daily = new Map<string, Sums>();
  #upserts: Record<RollupTable, BetterSqlite3.Statement>;

  constructor(sqlite: BetterSqlite3.Database) {
    this.#upserts = { llm_usage_hourly: sqlite.prepare(upsertSql('llm_usage_hourly')), llm_usage_daily: sqlite.prepare(upsertSql('llm_usage_daily')) };
  }

  clear(): void {
    this.#hourly.clear();
    this.#daily.clear();
  }

  /** Adds one stored call at `cost` (null: unpriced). */
  add(row: RollupInput, cost: number | null): void {
    const key = groupKey(row);
    const latency = row.latency_ms;
    const bucket = latency === null || latency === undefined ? -1 : bucketOf(latency);
    for (const s of [this.#sums(this.#hourly, hourStart(row.at), key, row), this.#sums(this.#daily, dayStart(row.at), key, row)]) {
      s.calls++;
      s.tokens_in += row.tokens_in;
      s.tokens_out += row.tokens_out;
      s.tokens_cached += row.tokens_cached ?? 0;
      s.tokens_reasoning += row.tokens_reasoning ?? 0;
      if (cost === null) s.unpriced_calls++;
      else s.cost_usd += cost;
      if (bucket >= 0) {
        s.latency_count++;
        s.latency_sum += latency!;
        if (s.latency_min === null || latency! < s.latency_min) s.latency_min = latency!;
        if (s.latency_max === null || latency! > s.latency_max) s.latency_max = latency!;
        (s.hist ??= emptyHistogram())[bucket]++;
      }
    }
  }

  /** A re-priced stored call: only its cost in the rollups moves, from `before` to `after`. */
  reprice(row: RollupInput, before: number | null, after: number | null): void {
    const key = groupKey(row);
    for (const s of [this.#sums(this.#hourly, hourStart(row.at), key, row), this.#sums(this.#daily, dayStart(row.at), key, row)]) {
      if (before === null) s.unpriced_calls--;
      else s.cost_usd -= before;
      if (after === null) s.unpriced_calls++;
      else s.cost_usd += after;
    }
  }

  #sums(map: Map<string, Sums>, ts: string, group: string, row: RollupInput): Sums {
    const key = ts + group;
    let s = map.get(key);
    if (!s) {
      const provider = row.provider ?? '';
      const status = row.status ?? 'ok';
      s = {
        ts, channel: row.channel, model: row.model, feature: row.feature, provider, status, calls: 0, tokens_in: 0, tokens_out: 0, tokens_cached: 0,
        tokens_reasoning: 0, cost_usd: 0, unpriced_calls: 0, latency_count: 0, latency_sum: 0, latency_min: null, latency_max: null, hist: null,
      };
      map.set(key, s);
    }
    return s;
  }

  /** Upserts every key summed since clear(); runs inside the rows' transaction. */
  write(): void {
    for (const [table, map] of [['llm_usage_hourly', this.#hourly], ['llm_usage_daily', this.#daily]] as const) {
      const upsert = this.#upserts[table];
      for (const s of map.values()) {
        upsert.run(
          s.ts, s.channel, s.model, s.feature, s.provider, s.status, s.calls, s.tokens_in, s.tokens_out, s.tokens_cached, s.tokens_reasoning,
          s.cost_usd, s.unpriced_calls, s.latency_count, s.latency_sum, s.latency_min, s.latency_max, s.hist && encode(s.hist),
        );
      }
    }
    this.clear();
  }
}

