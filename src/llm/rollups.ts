// Hourly and daily rollups of llm_usage, kept by the writer inside the transaction that inserts the
// rows: a transaction's rows are summed in memory per hour and key, then one upsert per key adds
// them to the stored hourly row. The daily table is folded from finished hours: it holds exactly the
// hourly rows before a watermark (monitor_state `llm_daily_until`, an hour start); when the wall
// clock has passed the watermark's hour, one INSERT … SELECT … GROUP BY adds the hours in between to
// their days and moves the watermark. A late row (its hour already folded) is also upserted into
// its day. Reports read whole days before the watermark from llm_usage_daily, the rest hourly
// (bench: upserting both tables per transaction cost 44 % of the writer's CPU per row).
// Rows, rollups, watermark and delivery_cursor share the transaction, which makes them exactly-once:
// a rolled-back attempt leaves none of them, a re-sent batch adds none.
import type BetterSqlite3 from 'better-sqlite3';
import type { LlmUsageRow } from '../actors/db-writer-messages.js';
import { bucketOf, emptyHistogram, encode, type DenseHistogram } from './histogram.js';
import type { LlmUsageRollupTable } from '../db/schema.js';

export const ROLLUP_TABLES = ['llm_usage_hourly', 'llm_usage_daily'] as const;
export type RollupTable = (typeof ROLLUP_TABLES)[number];

const HOUR_MS = 3_600_000;

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
const isoHour = bucketText(HOUR_MS);

/** monitor_state key of the daily watermark: llm_usage_daily = the hourly rows with ts before it. */
export const DAILY_UNTIL_KEY = 'llm_daily_until';

/** The part of a row the rollups sum (the ingest row, or a stored row being re-priced). */
export type RollupInput = Pick<
  LlmUsageRow,
  'at' | 'channel' | 'model' | 'feature' | 'tokens_in' | 'tokens_out' | 'latency_ms'
> &
  Pick<LlmUsageRow, 'tokens_cached' | 'tokens_reasoning' | 'provider' | 'status'>;

/** A rollup row being summed in memory: the table's row, its histogram still decoded. */
type Sums = Omit<LlmUsageRollupTable, 'latency_hist'> & { hist: DenseHistogram | null };

/** A rollup row's key: one row per bucket and these. */
const KEY = ['ts', 'channel', 'model', 'feature', 'provider', 'status'] as const;
/** The columns an upsert adds to (the rest are min/max and the merged histogram). */
const ADDED = [
  'calls',
  'tokens_in',
  'tokens_out',
  'tokens_cached',
  'tokens_reasoning',
  'cost_usd',
  'unpriced_calls',
  'latency_count',
  'latency_sum',
] as const;
const COLUMNS = [...KEY, ...ADDED, 'latency_min', 'latency_max', 'latency_hist', 'host'] as const;

function upsertSql(table: RollupTable): string {
  const set = [
    ...ADDED.map((c) => `${c} = ${c} + excluded.${c}`),
    // min()/max() of two values is NULL if either is: a side without latencies must not erase the other.
    'latency_min = coalesce(min(latency_min, excluded.latency_min), latency_min, excluded.latency_min)',
    'latency_max = coalesce(max(latency_max, excluded.latency_max), latency_max, excluded.latency_max)',
    'latency_hist = kissmon_hist_merge(latency_hist, excluded.latency_hist)',
  ];
  return `INSERT INTO ${table} (${COLUMNS.join(', ')}) VALUES (${COLUMNS.map(() => '?').join(', ')})
    ON CONFLICT (host, ${KEY.join(', ')}) DO UPDATE SET ${set.join(', ')}`;
}

const dayOf = (hourTs: string) => `${hourTs.slice(0, 10)}T00:00:00.000Z`;

/** Adds the hourly rows of [from, to) to their days (an upsert per day and key). */
function foldSql(): string {
  const sums = ADDED.map((c) => `sum(${c})`).join(', ');
  return `${upsertSql('llm_usage_daily').split(' VALUES ')[0]}
    SELECT substr(ts, 1, 10) || 'T00:00:00.000Z', channel, model, feature, provider, status, ${sums}, min(latency_min), max(latency_max),
      kissmon_hist_agg(latency_hist), host
    FROM llm_usage_hourly WHERE host = ? AND ts >= ? AND ts < ? GROUP BY 1, 2, 3, 4, 5, 6
    ON CONFLICT${upsertSql('llm_usage_daily').split(' ON CONFLICT')[1]}`;
}

const groupKey = (row: RollupInput) =>
  `\0${row.channel}\0${row.model}\0${row.feature}\0${row.provider ?? ''}\0${row.status ?? 'ok'}`;

/** One transaction's worth of rollup changes; `write` adds them to the tables. */
export class RollupBatch {
  #hourly = new Map<string, Sums>();
  #upserts: Record<RollupTable, BetterSqlite3.Statement>;
  #fold: BetterSqlite3.Statement;
  #readUntil: BetterSqlite3.Statement<[string], { value: string }>;
  #setUntil: BetterSqlite3.Statement;
  #firstUntil: BetterSqlite3.Statement<[string], { value: string }>;
  #now: () => number;
  #host: string;

  /** `now`: the wall clock that says which hours are finished (tests move it); `host`: whose rows these are. */
  constructor(sqlite: BetterSqlite3.Database, now: () => number = Date.now, host = '') {
    this.#host = host;
    this.#upserts = {
      llm_usage_hourly: sqlite.prepare(upsertSql('llm_usage_hourly')),
      llm_usage_daily: sqlite.prepare(upsertSql('llm_usage_daily')),
    };
    this.#fold = sqlite.prepare(foldSql());
    this.#readUntil = sqlite.prepare(`SELECT value FROM monitor_state WHERE host = ? AND key = '${DAILY_UNTIL_KEY}'`);
    this.#setUntil =
      sqlite.prepare(`INSERT INTO monitor_state (host, key, value, updated_at) VALUES (?, '${DAILY_UNTIL_KEY}', ?, ?)
      ON CONFLICT (host, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`);
    // A database from before the watermark has every hour in its days already: the hour after the last one.
    this.#firstUntil = sqlite.prepare(
      `SELECT coalesce(strftime('%Y-%m-%dT%H:00:00.000Z', max(ts), '+1 hour'), '') AS value FROM llm_usage_hourly WHERE host = ?`,
    );
    this.#now = now;
  }

  clear(): void {
    this.#hourly.clear();
  }

  /** Adds one stored call at `cost` (null: unpriced). */
  add(row: RollupInput, cost: number | null): void {
    const key = groupKey(row);
    const latency = row.latency_ms;
    const bucket = latency === null || latency === undefined ? -1 : bucketOf(latency);
    const s = this.#sums(this.#hourly, hourStart(row.at), key, row);
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

  /** A re-priced stored call: only its cost in the rollups moves, from `before` to `after`. */
  reprice(row: RollupInput, before: number | null, after: number | null): void {
    const key = groupKey(row);
    const s = this.#sums(this.#hourly, hourStart(row.at), key, row);
    if (before === null) s.unpriced_calls--;
    else s.cost_usd -= before;
    if (after === null) s.unpriced_calls++;
    else s.cost_usd += after;
  }

  #sums(map: Map<string, Sums>, ts: string, group: string, row: RollupInput): Sums {
    const key = ts + group;
    let s = map.get(key);
    if (!s) {
      const provider = row.provider ?? '';
      const status = row.status ?? 'ok';
      s = {
        host: this.#host,
        ts,
        channel: row.channel,
        model: row.model,
        feature: row.feature,
        provider,
        status,
        calls: 0,
        tokens_in: 0,
        tokens_out: 0,
        tokens_cached: 0,
        tokens_reasoning: 0,
        cost_usd: 0,
        unpriced_calls: 0,
        latency_count: 0,
        latency_sum: 0,
        latency_min: null,
        latency_max: null,
        hist: null,
      };
      map.set(key, s);
    }
    return s;
  }

  /**
   * Folds the finished hours into their days, then upserts every key summed since clear() (and a
   * late key into its day too); runs inside the rows' transaction.
   */
  write(): void {
    const until = this.#foldFinishedHours();
    const { llm_usage_hourly: hourly, llm_usage_daily: daily } = this.#upserts;
    for (const s of this.#hourly.values()) {
      const hist = s.hist && encode(s.hist);
      const values = [
        s.channel,
        s.model,
        s.feature,
        s.provider,
        s.status,
        s.calls,
        s.tokens_in,
        s.tokens_out,
        s.tokens_cached,
        s.tokens_reasoning,
        s.cost_usd,
        s.unpriced_calls,
        s.latency_count,
        s.latency_sum,
        s.latency_min,
        s.latency_max,
        hist,
        this.#host,
      ];
      hourly.run(s.ts, ...values);
      if (s.ts < until) daily.run(dayOf(s.ts), ...values);
    }
    this.clear();
  }

  /** The watermark after folding the hours the clock has finished. */
  #foldFinishedHours(): string {
    const until = this.#readUntil.get(this.#host)?.value ?? this.#firstUntil.get(this.#host)!.value;
    const now = this.#now();
    const finished = isoHour(now);
    if (finished <= until) return until;
    this.#fold.run(this.#host, until, finished);
    this.#setUntil.run(this.#host, finished, new Date(now).toISOString());
    return finished;
  }
}
