// Hourly and daily rollups of llm_usage, kept by the writer inside the transaction that inserts the
// rows. The writer keeps the stored hourly rows of the current and the previous hour in memory
// (each read from the table on its first touch after start, so a restart stays exact): a row adds
// to its key's in-memory row, and the transaction writes each key it changed as absolute values, a
// plain `INSERT … ON CONFLICT DO UPDATE SET col = excluded.col` with no merge in SQL (bench: the
// merge upsert with the histogram merged by a JS SQL function cost 7.3 µs a key, 22 % of the
// writer's CPU per row). A rolled-back transaction drops the whole in-memory copy (the next one
// reads its keys from the rolled-back table again).
// The daily table is folded from finished hours: it holds exactly the hourly rows before a
// watermark (monitor_state `llm_daily_until`, an hour start); when the wall clock has passed the
// watermark's hour, one INSERT … SELECT … GROUP BY adds the hours in between to their days and moves
// the watermark. A late row (its hour already folded) is also added to its day (a merge upsert;
// rare). Reports read whole days before the watermark from llm_usage_daily, the rest hourly.
// The weekly table (ISO weeks, Monday 00:00 UTC) is folded from finished days the same way: it
// holds exactly the daily rows before its own watermark (`llm_weekly_until`, a day start, never
// past the daily watermark's day); when the daily watermark enters a new day, the days in between
// are added to their weeks. A late row whose day is folded already is added to its week too.
// Reports read whole weeks from it, so 90 days are ~13 rows a key instead of 90.
// Rows, rollups, watermark and delivery_cursor share the transaction, which makes them exactly-once:
// a rolled-back attempt leaves none of them, a re-sent batch adds none.
// Each monitor keeps its own host's rows (`host` is part of every rollup key, last: reports read a
// time range over all hosts) and its own watermark (monitor_state is keyed by host).
import type BetterSqlite3 from 'better-sqlite3';
import type { LlmUsageRow } from '../actors/db-writer-messages.js';
import { addTo, bucketOf, emptyHistogram, encode, type DenseHistogram } from './histogram.js';
import type { LlmUsageRollupTable } from '../db/schema.js';

export const ROLLUP_TABLES = ['llm_usage_hourly', 'llm_usage_daily', 'llm_usage_weekly'] as const;
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
/** monitor_state key of the weekly watermark (a day start): llm_usage_weekly = the daily rows with ts before it. */
export const WEEKLY_UNTIL_KEY = 'llm_weekly_until';

const DAY_MS = 86_400_000;
export const WEEK_MS = 7 * DAY_MS;
/** 1970-01-01 was a Thursday: ISO weeks start 4 days after the epoch's week boundary. */
const MONDAY_OFFSET_MS = 4 * DAY_MS;
/** The start (ms) of the ISO week (Monday 00:00 UTC) `ms` falls in. */
export const weekStartMs = (ms: number) => Math.floor((ms - MONDAY_OFFSET_MS) / WEEK_MS) * WEEK_MS + MONDAY_OFFSET_MS;
/** SQLite: the ISO text of the week start of `ts` (any ISO time): back 6 days, then forward to a Monday. */
export const weekOfSql = (ts: string) => `date(${ts}, '-6 days', 'weekday 1') || 'T00:00:00.000Z'`;

/** The part of a row the rollups sum (the ingest row, or a stored row being re-priced). */
export type RollupInput = Pick<
  LlmUsageRow,
  'at' | 'channel' | 'model' | 'feature' | 'tokens_in' | 'tokens_out' | 'latency_ms'
> &
  Pick<LlmUsageRow, 'tokens_cached' | 'tokens_reasoning' | 'provider' | 'status'>;

/** A rollup row being summed in memory: the table's row, its histogram still decoded. */
type Sums = Omit<LlmUsageRollupTable, 'latency_hist'> & { hist: DenseHistogram | null };

/** A rollup row's key: one row per bucket and these (and host). */
export const ROLLUP_KEY = ['ts', 'channel', 'model', 'feature', 'provider', 'status'] as const;
/** The columns an upsert adds to (the rest are min/max and the merged histogram). */
export const ROLLUP_ADDED = [
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
const COLUMNS = [...ROLLUP_KEY, ...ROLLUP_ADDED, 'latency_min', 'latency_max', 'latency_hist', 'host'] as const;
/** The conflict target: the table's primary key (0006_hosts). */
const CONFLICT = [...ROLLUP_KEY, 'host'].join(', ');

/** A merge upsert: adds a row's sums to its key's stored row. */
function upsertSql(table: RollupTable): string {
  const set = [
    ...ROLLUP_ADDED.map((c) => `${c} = ${c} + excluded.${c}`),
    // min()/max() of two values is NULL if either is: a side without latencies must not erase the other.
    'latency_min = coalesce(min(latency_min, excluded.latency_min), latency_min, excluded.latency_min)',
    'latency_max = coalesce(max(latency_max, excluded.latency_max), latency_max, excluded.latency_max)',
    'latency_hist = kissmon_hist_merge(latency_hist, excluded.latency_hist)',
  ];
  return `INSERT INTO ${table} (${COLUMNS.join(', ')}) VALUES (${COLUMNS.map(() => '?').join(', ')})
    ON CONFLICT (${CONFLICT}) DO UPDATE SET ${set.join(', ')}`;
}

/** Writes a row's absolute values (the writer's in-memory row is the stored row plus this transaction). */
function putSql(table: RollupTable): string {
  const set = COLUMNS.filter((c) => !(ROLLUP_KEY as readonly string[]).includes(c) && c !== 'host').map(
    (c) => `${c} = excluded.${c}`,
  );
  return `INSERT INTO ${table} (${COLUMNS.join(', ')}) VALUES (${COLUMNS.map(() => '?').join(', ')})
    ON CONFLICT (${CONFLICT}) DO UPDATE SET ${set.join(', ')}`;
}

const dayOf = (hourTs: string) => `${hourTs.slice(0, 10)}T00:00:00.000Z`;
const weekOf = (ts: string) => new Date(weekStartMs(Date.parse(ts))).toISOString();

/**
 * Adds the rows of `from` in [?, ?) (a host's) to their buckets in `to` (an upsert per bucket and
 * key): hours into days, days into weeks. Also the 0007 migration's fill of the weekly table.
 */
export function foldSql(
  from: 'llm_usage_hourly' | 'llm_usage_daily',
  to: 'llm_usage_daily' | 'llm_usage_weekly',
): string {
  const sums = ROLLUP_ADDED.map((c) => `sum(${c})`).join(', ');
  const bucket = to === 'llm_usage_daily' ? "substr(ts, 1, 10) || 'T00:00:00.000Z'" : weekOfSql('ts');
  return `${upsertSql(to).split(' VALUES ')[0]}
    SELECT ${bucket}, channel, model, feature, provider, status, ${sums}, min(latency_min), max(latency_max),
      kissmon_hist_agg(latency_hist), host
    FROM ${from} WHERE host = ? AND ts >= ? AND ts < ? GROUP BY 1, 2, 3, 4, 5, 6
    ON CONFLICT${upsertSql(to).split(' ON CONFLICT')[1]}`;
}

function emptySums(host: string, ts: string, row: RollupInput): Held {
  return {
    host,
    ts,
    channel: row.channel,
    model: row.model,
    feature: row.feature,
    provider: row.provider ?? '',
    status: row.status ?? 'ok',
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
    dirty: false,
  };
}

function addCall(s: Sums, row: RollupInput, cost: number | null, bucket: number): void {
  s.calls++;
  s.tokens_in += row.tokens_in;
  s.tokens_out += row.tokens_out;
  s.tokens_cached += row.tokens_cached ?? 0;
  s.tokens_reasoning += row.tokens_reasoning ?? 0;
  if (cost === null) s.unpriced_calls++;
  else s.cost_usd += cost;
  if (bucket >= 0) {
    const latency = row.latency_ms!;
    s.latency_count++;
    s.latency_sum += latency;
    if (s.latency_min === null || latency < s.latency_min) s.latency_min = latency;
    if (s.latency_max === null || latency > s.latency_max) s.latency_max = latency;
    (s.hist ??= emptyHistogram())[bucket]++;
  }
}

/** A re-priced call: its cost in a rollup row moves from `before` to `after` (null: unpriced). */
export function moveCost(
  s: Pick<Sums, 'cost_usd' | 'unpriced_calls'>,
  before: number | null,
  after: number | null,
): void {
  if (before === null) s.unpriced_calls--;
  else s.cost_usd -= before;
  if (after === null) s.unpriced_calls++;
  else s.cost_usd += after;
}

const values = (s: Sums) => [
  s.ts,
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
  s.hist && encode(s.hist),
  s.host,
];

/**
 * A channel's in-memory rows: a short list compared field by field (no key string built and hashed
 * per row: bench, 2-4× cheaper than a Map of joined keys), and a Map once the channel has many.
 */
interface ChannelRows {
  list: Held[];
  byKey: Map<string, Held> | null;
}
const LIST_MAX = 16;
const restKey = (model: string, feature: string, provider: string, status: string) =>
  `${model}\0${feature}\0${provider}\0${status}`;
/** An in-memory hourly row: the stored row plus what this writer added; `dirty` until written. */
type Held = Sums & { dirty: boolean };

/** The stored hourly rows of one hour the writer holds; `complete`: every row of the hour is here. */
interface HourRows {
  rows: Map<string, ChannelRows>;
  complete: boolean;
}

/** Hours kept in memory: the current one and the one before (late rows load theirs and drop it after). */
const KEPT_HOURS = 2;

/**
 * The writer's rollups: per transaction, add()/reprice() each stored call, then write() inside the
 * transaction; rollback() when the transaction did not commit.
 */
export class RollupBatch {
  #hours = new Map<string, HourRows>();
  /** The in-memory rows this transaction changed (written by write()). */
  #dirty: Held[] = [];
  /** What this transaction adds to hours already folded into their days (late rows): day deltas. */
  #late = new Map<string, Sums>();
  /** What it adds to days already folded into their weeks (late rows of those days): week deltas. */
  #lateWeeks = new Map<string, Sums>();
  /** The fold watermarks as this transaction found them (null: not read yet). */
  #until: string | null = null;
  #weekUntil: string | null = null;
  /** The hour last compared with the watermarks, and whether it is before them (a compare per hour, not per row). */
  #lateCheckedTs = '';
  #lateHour = false;
  #lateDay = false;
  #lastTs = '';
  #lastHour: HourRows | null = null;
  #put: BetterSqlite3.Statement;
  #addDaily: BetterSqlite3.Statement;
  #addWeekly: BetterSqlite3.Statement;
  #load: BetterSqlite3.Statement<unknown[], LlmUsageRollupTable>;
  #anyInHour: BetterSqlite3.Statement<[string, string], unknown>;
  #fold: BetterSqlite3.Statement;
  #foldDays: BetterSqlite3.Statement;
  #readUntil: BetterSqlite3.Statement<[string], { value: string }>;
  #setUntil: BetterSqlite3.Statement;
  #readWeekUntil: BetterSqlite3.Statement<[string], { value: string }>;
  #setWeekUntil: BetterSqlite3.Statement;
  #firstUntil: BetterSqlite3.Statement<[string], { value: string }>;
  #now: () => number;
  #host: string;

  /** `now`: the wall clock that says which hours are finished (tests move it); `host`: whose rows these are. */
  constructor(sqlite: BetterSqlite3.Database, now: () => number = Date.now, host = '') {
    this.#host = host;
    this.#put = sqlite.prepare(putSql('llm_usage_hourly'));
    this.#addDaily = sqlite.prepare(upsertSql('llm_usage_daily'));
    this.#addWeekly = sqlite.prepare(upsertSql('llm_usage_weekly'));
    this.#load = sqlite.prepare<unknown[], LlmUsageRollupTable>(
      `SELECT * FROM llm_usage_hourly WHERE ${ROLLUP_KEY.map((c) => `${c} = ?`).join(' AND ')} AND host = ?`,
    );
    this.#anyInHour = sqlite.prepare<[string, string]>(
      'SELECT 1 FROM llm_usage_hourly WHERE ts = ? AND host = ? LIMIT 1',
    );
    this.#fold = sqlite.prepare(foldSql('llm_usage_hourly', 'llm_usage_daily'));
    this.#foldDays = sqlite.prepare(foldSql('llm_usage_daily', 'llm_usage_weekly'));
    const read = (key: string) =>
      sqlite.prepare<[string], { value: string }>(`SELECT value FROM monitor_state WHERE host = ? AND key = '${key}'`);
    const set = (key: string) =>
      sqlite.prepare(`INSERT INTO monitor_state (host, key, value, updated_at) VALUES (?, '${key}', ?, ?)
      ON CONFLICT (host, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`);
    this.#readUntil = read(DAILY_UNTIL_KEY);
    this.#setUntil = set(DAILY_UNTIL_KEY);
    this.#readWeekUntil = read(WEEKLY_UNTIL_KEY);
    this.#setWeekUntil = set(WEEKLY_UNTIL_KEY);
    // A database from before the watermark has every hour in its days already: the hour after the last one.
    this.#firstUntil = sqlite.prepare(
      `SELECT coalesce(strftime('%Y-%m-%dT%H:00:00.000Z', max(ts), '+1 hour'), '') AS value FROM llm_usage_hourly WHERE host = ?`,
    );
    this.#now = now;
  }

  /**
   * A transaction attempt starts. Changes of an attempt that did not reach write() are not
   * trusted: the in-memory rows go, to be read again from the table.
   */
  begin(): void {
    if (this.#dirty.length > 0 || this.#late.size > 0 || this.#lateWeeks.size > 0) this.rollback();
    this.#forgetWatermark();
  }

  /** The transaction did not commit: forget every in-memory row (the table is the truth again). */
  rollback(): void {
    this.#hours.clear();
    this.#lastTs = '';
    this.#lastHour = null;
    this.#dirty = [];
    this.#late.clear();
    this.#lateWeeks.clear();
    this.#forgetWatermark();
  }

  /** Adds one stored call at `cost` (null: unpriced). */
  add(row: RollupInput, cost: number | null): void {
    const latency = row.latency_ms;
    const bucket = latency === null || latency === undefined ? -1 : bucketOf(latency);
    const ts = hourStart(row.at);
    addCall(this.#row(ts, row), row, cost, bucket);
    if (this.#isLate(ts)) {
      addCall(this.#lateRow(this.#late, dayOf(ts), row), row, cost, bucket);
      if (this.#lateDay) addCall(this.#lateRow(this.#lateWeeks, weekOf(ts), row), row, cost, bucket);
    }
  }

  /** A re-priced stored call: only its cost in the rollups moves, from `before` to `after`. */
  reprice(row: RollupInput, before: number | null, after: number | null): void {
    const ts = hourStart(row.at);
    moveCost(this.#row(ts, row), before, after);
    if (this.#isLate(ts)) {
      moveCost(this.#lateRow(this.#late, dayOf(ts), row), before, after);
      if (this.#lateDay) moveCost(this.#lateRow(this.#lateWeeks, weekOf(ts), row), before, after);
    }
  }

  /**
   * Is hour `ts` folded into its day already? Then #lateDay: is its day folded into its week too?
   * (`ts` from hourStart: the same string while the hour is.)
   */
  #isLate(ts: string): boolean {
    if (ts !== this.#lateCheckedTs) {
      this.#lateCheckedTs = ts;
      this.#lateHour = ts < this.#watermark();
      // The weekly watermark is a day start no later than the daily one's day: an hour before it is late for both.
      this.#lateDay = this.#lateHour && ts < this.#weekWatermark();
    }
    return this.#lateHour;
  }

  /** The watermarks are read again by the next transaction (write() may have moved them). */
  #forgetWatermark(): void {
    this.#until = null;
    this.#weekUntil = null;
    this.#lateCheckedTs = '';
  }

  #watermark(): string {
    if (this.#until !== null) return this.#until;
    const stored = this.#readUntil.get(this.#host)?.value;
    if (stored !== undefined) return (this.#until = stored);
    // Stored at once: read again by the next transaction, "the hour after the last one" would
    // take the hour this one writes for folded, and its rows would never reach their day.
    const first = this.#firstUntil.get(this.#host)!.value;
    if (first) this.#setUntil.run(this.#host, first, new Date(this.#now()).toISOString());
    return (this.#until = first);
  }

  /** No weekly watermark: a host new since 0007 (which set one for every host it found), none of whose days is in a week yet. */
  #weekWatermark(): string {
    return (this.#weekUntil ??= this.#readWeekUntil.get(this.#host)?.value ?? '');
  }

  /** The in-memory hourly row of `ts` and the row's key: read from the table on first touch, or new. */
  #row(ts: string, row: RollupInput): Held {
    let hour = this.#lastHour;
    if (ts !== this.#lastTs || hour === null) {
      hour = this.#hours.get(ts) ?? null;
      if (hour === null) {
        // An hour with no row yet is written by this writer alone: its keys need no lookups.
        hour = { rows: new Map(), complete: this.#anyInHour.get(ts, this.#host) === undefined };
        this.#hours.set(ts, hour);
      }
      this.#lastTs = ts;
      this.#lastHour = hour;
    }
    const provider = row.provider ?? '';
    const status = row.status ?? 'ok';
    let channel = hour.rows.get(row.channel);
    if (channel === undefined) hour.rows.set(row.channel, (channel = { list: [], byKey: null }));
    const { model, feature } = row;
    let s: Held | undefined;
    if (channel.byKey === null) {
      for (const e of channel.list)
        if (e.model === model && e.feature === feature && e.provider === provider && e.status === status) {
          s = e;
          break;
        }
    } else s = channel.byKey.get(restKey(model, feature, provider, status));
    if (s === undefined) {
      const stored = hour.complete
        ? undefined
        : this.#load.get(ts, row.channel, model, feature, provider, status, this.#host);
      s = emptySums(this.#host, ts, row);
      if (stored) fromStored(s, stored);
      channel.list.push(s);
      if (channel.byKey !== null) channel.byKey.set(restKey(model, feature, provider, status), s);
      else if (channel.list.length > LIST_MAX)
        channel.byKey = new Map(channel.list.map((e) => [restKey(e.model, e.feature, e.provider, e.status), e]));
    }
    if (!s.dirty) {
      s.dirty = true;
      this.#dirty.push(s);
    }
    return s;
  }

  /** The delta row of `bucket` (a day or a week start) and the row's key in `late`. */
  #lateRow(late: Map<string, Sums>, bucket: string, row: RollupInput): Sums {
    const key = `${bucket}\0${row.channel}\0${row.model}\0${row.feature}\0${row.provider ?? ''}\0${row.status ?? 'ok'}`;
    let s = late.get(key);
    if (!s) late.set(key, (s = emptySums(this.#host, bucket, row)));
    return s;
  }

  /**
   * Inside the rows' transaction: writes every hourly row this transaction changed, adds the late
   * rows to their days (and weeks), then folds the hours the clock has finished into their days,
   * and the days finished so into their weeks.
   */
  write(): void {
    for (const s of this.#dirty) {
      this.#put.run(values(s));
      s.dirty = false;
    }
    for (const s of this.#late.values()) this.#addDaily.run(values(s));
    for (const s of this.#lateWeeks.values()) this.#addWeekly.run(values(s));
    this.#dirty = [];
    this.#late.clear();
    this.#lateWeeks.clear();
    this.#foldFinishedHours(this.#watermark());
    this.#forgetWatermark();
    this.#forgetOldHours();
  }

  /** Folds the hours from `until` to the one the clock is in into their days and moves the watermark. */
  #foldFinishedHours(until: string): void {
    const now = this.#now();
    const finished = isoHour(now);
    if (finished <= until) return;
    this.#fold.run(this.#host, until, finished);
    this.#setUntil.run(this.#host, finished, new Date(now).toISOString());
    const finishedDay = dayOf(finished);
    const weekUntil = this.#weekWatermark();
    if (finishedDay <= weekUntil) return;
    this.#foldDays.run(this.#host, weekUntil, finishedDay);
    this.#setWeekUntil.run(this.#host, finishedDay, new Date(now).toISOString());
  }

  /** Keeps the hours the clock is in and the one before; a late row's hour is read again next time. */
  #forgetOldHours(): void {
    if (this.#hours.size <= KEPT_HOURS) return;
    const oldest = new Date(Math.floor(this.#now() / HOUR_MS) * HOUR_MS - (KEPT_HOURS - 1) * HOUR_MS).toISOString();
    for (const ts of this.#hours.keys()) if (ts < oldest) this.#hours.delete(ts);
    this.#lastTs = '';
    this.#lastHour = null;
  }
}

/** A stored row's values into the fresh in-memory row `s` of its key (one object shape for all). */
function fromStored(s: Held, r: LlmUsageRollupTable): void {
  for (const c of ROLLUP_ADDED) s[c] = r[c];
  s.latency_min = r.latency_min;
  s.latency_max = r.latency_max;
  if (r.latency_hist !== null) addTo((s.hist = emptyHistogram()), r.latency_hist);
}
