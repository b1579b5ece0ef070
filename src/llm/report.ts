// `kissmon usage` / GET /usage: LLM calls, tokens, cost, error rate, cached share and latency
// percentiles over a window, grouped by one or more dimensions.
//
// Source: the hourly/daily/weekly rollups (whole ISO weeks the writer has folded from
// llm_usage_weekly, the days at their edges from llm_usage_daily, the edges and the days after the
// fold watermark from llm_usage_hourly), so 90 days of a busy fleet is a few thousand rows to sum,
// whatever the raw row count; the window is then whole UTC hours (since rounded down, until up). Percentiles: exact
// from the raw rows when the window holds at most `exactMaxCalls` calls and every one of them is
// still in llm_usage (retention), else estimated from the rollups' histograms (±12.5 %), and the
// answer says which. With rollups off (`llm.rollups: false`) everything comes from the raw rows.
import type { Kysely } from 'kysely';
import type { MonitorConfig } from '../config.js';
import { isPostgresUrl } from '../config-defaults.js';
import { dialectOf, DIALECT_SQL, literal, type SqlDialect } from '../db/dialect.js';
import type { Database } from '../db/schema.js';
import { DURATION_PATTERN, parseDuration } from '../duration.js';
import { addTo, emptyHistogram, encode, estimatePercentile } from './histogram.js';
import { DAILY_UNTIL_KEY, WEEK_MS, weekStartMs, WEEKLY_UNTIL_KEY } from './rollups.js';

export const USAGE_DIMENSIONS = ['host', 'channel', 'model', 'feature', 'provider', 'status', 'day', 'hour'] as const;
export type UsageDimension = (typeof USAGE_DIMENSIONS)[number];

export interface UsageReportOptions {
  /** Calls at or after this time (ms since the epoch). */
  sinceMs: number;
  /** Calls before this time; default now. */
  untilMs?: number;
  by: UsageDimension[];
  /** Only this monitor's rows (`--host`); default every host's. */
  host?: string;
  /** Only the N costliest groups (totals still cover all). */
  top?: number;
  /** 'raw' when the monitor runs without rollups. Default 'rollups'. */
  source?: 'rollups' | 'raw';
  /** Exact percentiles from raw rows up to this many calls in the window. */
  exactMaxCalls?: number;
}

export interface UsageFigures {
  calls: number;
  tokens_in: number;
  tokens_out: number;
  tokens_cached: number;
  tokens_reasoning: number;
  /**
   * USD of the priced calls; null when every call of the group is unpriced (the cost is unknown,
   * not 0). Below unpriced_calls > 0 it is a lower bound.
   */
  cost_usd: number | null;
  /** Calls with no price (their cost is not in cost_usd). */
  unpriced_calls: number;
  /** Calls whose status is not ok, and their share in %. */
  errors: number;
  error_rate_pct: number;
  /** tokens_cached / tokens_in in %. */
  cached_share_pct: number;
  latency_mean_ms: number | null;
  latency_p50_ms: number | null;
  latency_p95_ms: number | null;
  latency_p99_ms: number | null;
}

export type UsageRow = UsageFigures &
  Partial<Record<UsageDimension, string>> & {
    /** The group's dimension values joined by '/'. */
    key: string;
  };

export interface UsageReport {
  since: string;
  until: string;
  by: UsageDimension[];
  source: 'rollups' | 'raw';
  percentiles: 'exact' | 'estimated';
  rows: UsageRow[];
  totals: UsageFigures;
}

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

const isoTime = (ms: number) => new Date(ms).toISOString();

/**
 * Where a report reads: a kysely connection (the monitor's read pool), or a function running one
 * SQL text (`kissmon usage` on a bare better-sqlite3 connection: no kysely to load).
 */
export type UsageSource = Kysely<Database> | ((query: string) => Promise<unknown[]>);

/** The function form is a bare SQLite connection; a kysely one says what it talks to. */
const sourceDialect = (db: UsageSource): SqlDialect => (typeof db === 'function' ? 'sqlite' : dialectOf(db));

async function run<T>(db: UsageSource, query: string): Promise<T[]> {
  if (typeof db === 'function') return (await db(query)) as T[];
  const { sql } = await import('kysely'); // loaded already: the caller holds a kysely connection
  return (await sql<T>`${sql.raw(query)}`.execute(db)).rows;
}

const DIMENSION_SQL: Record<UsageDimension, string> = {
  host: 'host',
  channel: 'channel',
  model: "coalesce(model, '')",
  feature: "coalesce(feature, '')",
  provider: "coalesce(provider, '')",
  status: "coalesce(status, 'ok')",
  day: 'substr(ts, 1, 10)',
  hour: "substr(ts, 1, 13) || ':00Z'",
};

interface SummedRow {
  calls: number;
  tokens_in: number;
  tokens_out: number;
  tokens_cached: number;
  tokens_reasoning: number;
  cost_usd: number;
  unpriced_calls: number;
  errors: number;
  latency_count: number;
  latency_sum: number;
  latency_min: number | null;
  latency_max: number | null;
  hist?: Buffer | null;
  p50?: number | null;
  p95?: number | null;
  p99?: number | null;
  [dimension: string]: unknown;
}

function checkOptions(o: UsageReportOptions): void {
  if (typeof o?.sinceMs !== 'number' || !Number.isFinite(o.sinceMs) || o.sinceMs < 0)
    throw new TypeError('options.sinceMs must be a time in ms since the epoch');
  if (o.untilMs !== undefined && !(Number.isFinite(o.untilMs) && o.untilMs > o.sinceMs))
    throw new TypeError('options.untilMs must be a time after options.sinceMs');
  if (
    !Array.isArray(o.by) ||
    o.by.length === 0 ||
    o.by.some((d) => !(USAGE_DIMENSIONS as readonly string[]).includes(d)) ||
    new Set(o.by).size !== o.by.length
  ) {
    throw new TypeError(`options.by must be a list of distinct dimensions from ${USAGE_DIMENSIONS.join(', ')}`);
  }
  if (o.host !== undefined && !(typeof o.host === 'string' && /^[A-Za-z0-9_.-]{1,64}$/.test(o.host)))
    throw new TypeError('options.host must be 1-64 characters of [A-Za-z0-9_.-]');
  if (o.top !== undefined && !(Number.isInteger(o.top) && o.top > 0))
    throw new TypeError('options.top must be a positive integer');
}

const round = (n: number, d: number) => Math.round(n * 10 ** d) / 10 ** d;

function figures(r: SummedRow, percentiles: [number | null, number | null, number | null]): UsageFigures {
  return {
    calls: r.calls,
    tokens_in: r.tokens_in,
    tokens_out: r.tokens_out,
    tokens_cached: r.tokens_cached,
    tokens_reasoning: r.tokens_reasoning,
    cost_usd: r.calls > 0 && r.unpriced_calls === r.calls ? null : round(r.cost_usd, 9),
    unpriced_calls: r.unpriced_calls,
    errors: r.errors,
    error_rate_pct: r.calls > 0 ? round((100 * r.errors) / r.calls, 2) : 0,
    cached_share_pct: r.tokens_in > 0 ? round((100 * r.tokens_cached) / r.tokens_in, 2) : 0,
    latency_mean_ms: r.latency_count > 0 ? round(r.latency_sum / r.latency_count, 2) : null,
    latency_p50_ms: percentiles[0],
    latency_p95_ms: percentiles[1],
    latency_p99_ms: percentiles[2],
  };
}

function estimated(r: SummedRow): [number | null, number | null, number | null] {
  const dense = emptyHistogram();
  addTo(dense, r.hist ?? null);
  return [0.5, 0.95, 0.99].map((f) => estimatePercentile(dense, f, r.latency_min, r.latency_max)) as [
    number | null,
    number | null,
    number | null,
  ];
}

/** The sums of raw rows, SQL text per backend (src/db/dialect.ts). Rollups are SQLite-only so far (usageOptions). */
function rawSums(dialect: SqlDialect): string {
  const { total, countIf, int, percentile } = DIALECT_SQL[dialect];
  return `${int('count(*)')} AS calls, ${int('coalesce(sum(tokens_in), 0)')} AS tokens_in, ${int('coalesce(sum(tokens_out), 0)')} AS tokens_out,
  ${int('coalesce(sum(tokens_cached), 0)')} AS tokens_cached, ${int('coalesce(sum(tokens_reasoning), 0)')} AS tokens_reasoning, ${total('cost_usd')} AS cost_usd,
  ${int('count(*) - count(cost_usd)')} AS unpriced_calls, ${countIf("coalesce(status, 'ok') != 'ok'")} AS errors, ${int('count(latency_ms)')} AS latency_count,
  ${total('latency_ms')} AS latency_sum, min(latency_ms) AS latency_min, max(latency_ms) AS latency_max,
  ${percentile('latency_ms', 0.5)} AS p50, ${percentile('latency_ms', 0.95)} AS p95, ${percentile('latency_ms', 0.99)} AS p99`;
}

// The group's histograms are their entries concatenated, in SQLite's own group_concat (a blob's bytes
// as they are; PostgreSQL: string_agg over bytea), then added in JS: one decode per group instead of
// a JS aggregate step per rollup row (bench: 200 of the 90-day query's ~330 ms CPU went to that).
const ROLLUP_SUMS = `coalesce(sum(calls), 0) AS calls, coalesce(sum(tokens_in), 0) AS tokens_in, coalesce(sum(tokens_out), 0) AS tokens_out,
  coalesce(sum(tokens_cached), 0) AS tokens_cached, coalesce(sum(tokens_reasoning), 0) AS tokens_reasoning, total(cost_usd) AS cost_usd,
  coalesce(sum(unpriced_calls), 0) AS unpriced_calls, coalesce(sum(CASE WHEN status != 'ok' THEN calls ELSE 0 END), 0) AS errors,
  coalesce(sum(latency_count), 0) AS latency_count, total(latency_sum) AS latency_sum, min(latency_min) AS latency_min, max(latency_max) AS latency_max,
  CAST(group_concat(latency_hist, '') AS BLOB) AS hist`;

/** `AND host = '...'` for the report's host filter (checked by checkOptions), or nothing. */
const hostCondition = (host: string | undefined) => (host === undefined ? '' : ` AND host = ${literal(host)}`);

async function rawGroups(
  db: UsageSource,
  since: string,
  until: string,
  by: UsageDimension[] | [],
  host?: string,
): Promise<SummedRow[]> {
  const dims = by.map((d) => `${DIMENSION_SQL[d]} AS ${d}`);
  const query = `SELECT ${[...dims, rawSums(sourceDialect(db))].join(', ')} FROM llm_usage WHERE ts >= ? AND ts < ?${hostCondition(host)}${by.length ? ` GROUP BY ${by.map((_, i) => i + 1).join(', ')}` : ''}`;
  return run<SummedRow>(db, query.replace('?', `'${since}'`).replace('?', `'${until}'`));
}

type Range = ['llm_usage_hourly' | 'llm_usage_daily' | 'llm_usage_weekly', number, number];

/**
 * Where the rollups of [since, until) (hour-aligned) are: whole UTC days before the daily
 * watermark (`until.daily`, see rollups.ts) in the daily table — the watermark's own day too, when
 * the window runs past the watermark, as that day's row holds exactly its hours before it — and the
 * edges hourly; of those days, the whole ISO weeks before the weekly watermark (`until.weekly`) in
 * the weekly table, its own week too in the same way, when the days run past it.
 * `kissmon usage --since 90d` so reads ~12 weekly rows a key, at most 6 days at each edge and a day
 * of hours. `weeks: false` (a day dimension) reads the days whole.
 */
function rollupRanges(sinceMs: number, untilMs: number, until: Watermarks, weeks: boolean): Range[] {
  const firstDay = Math.ceil(sinceMs / DAY_MS) * DAY_MS;
  let dayEnd = Math.floor(Math.min(untilMs, until.daily) / DAY_MS) * DAY_MS;
  let hoursFrom = dayEnd;
  if (untilMs >= until.daily && until.daily > dayEnd) {
    dayEnd += DAY_MS;
    hoursFrom = until.daily;
  }
  if (firstDay >= dayEnd) return [['llm_usage_hourly', sinceMs, untilMs]];
  const firstWeek = weekStartMs(firstDay + WEEK_MS - DAY_MS); // the first Monday at or after firstDay
  let weekEnd = weekStartMs(Math.min(dayEnd, until.weekly));
  let daysFrom = weekEnd;
  if (dayEnd >= until.weekly && until.weekly > weekEnd) {
    weekEnd += WEEK_MS;
    daysFrom = until.weekly;
  }
  const ranges: Range[] =
    weeks && firstWeek < weekEnd
      ? [
          ['llm_usage_weekly', firstWeek, weekEnd],
          ['llm_usage_daily', firstDay, firstWeek],
          ['llm_usage_daily', daysFrom, dayEnd],
        ]
      : [['llm_usage_daily', firstDay, dayEnd]];
  ranges.push(['llm_usage_hourly', sinceMs, firstDay], ['llm_usage_hourly', hoursFrom, untilMs]);
  return ranges.filter(([, a, b]) => a < b);
}

/** The fold watermarks in ms: llm_usage_daily holds the hours before `daily`, llm_usage_weekly the days before `weekly`. */
interface Watermarks {
  daily: number;
  weekly: number;
}

/**
 * Each host's watermarks (each host's writer folds its own rows, and sets its watermarks in its
 * first transaction). Read per host, not as one earliest over all: a host whose watermarks are
 * ahead of another's has days in its weeks that the other's ranges would read again from the days.
 * None (no rows folded anywhere): one set of zeros, everything read hourly.
 */
async function watermarks(db: UsageSource, host: string | undefined): Promise<[string | undefined, Watermarks][]> {
  const rows = await run<{ host: string; key: string; value: string }>(
    db,
    `SELECT host, key, value FROM monitor_state WHERE key IN ('${DAILY_UNTIL_KEY}', '${WEEKLY_UNTIL_KEY}')${hostCondition(host)}`,
  );
  const ms = (key: string, h: string) => {
    const value = rows.find((r) => r.key === key && r.host === h)?.value;
    return value ? Date.parse(value) : 0;
  };
  // Every host that ever wrote here (its `hosts` row), with or without watermarks (none: read hourly).
  const named = await run<{ host: string }>(db, `SELECT host FROM hosts WHERE true${hostCondition(host)}`);
  const hosts = [...new Set([...rows.map((r) => r.host), ...named.map((r) => r.host)])];
  if (hosts.length === 0) return [[host, { daily: 0, weekly: 0 }]];
  return hosts.map((h) => [h, { daily: ms(DAILY_UNTIL_KEY, h), weekly: ms(WEEKLY_UNTIL_KEY, h) }]);
}

async function rollupGroups(
  db: UsageSource,
  sinceMs: number,
  untilMs: number,
  by: UsageDimension[] | [],
  host: string | undefined,
): Promise<SummedRow[]> {
  // An hour dimension cannot be read from whole days (hourly only then), a day one not from whole weeks.
  const ranges: [Range, string | undefined][] = by.includes('hour' as never)
    ? [[['llm_usage_hourly', sinceMs, untilMs], host]]
    : (await watermarks(db, host)).flatMap(([h, marks]) =>
        rollupRanges(sinceMs, untilMs, marks, !by.includes('day' as never)).map(
          (range): [Range, string | undefined] => [range, h],
        ),
      );
  const dims = by.map((d) => `${DIMENSION_SQL[d]} AS ${d}`);
  const groupBy = by.length ? ` GROUP BY ${by.map((_, i) => i + 1).join(', ')}` : '';
  // One GROUP BY per table range, the groups merged here: a UNION ALL of the ranges under one
  // GROUP BY copied every row through a subquery first (bench: ~12 % of the query).
  const parts = await Promise.all(
    ranges.map(([[table, a, b], rangeHost]) =>
      run<SummedRow>(
        db,
        `SELECT ${[...dims, ROLLUP_SUMS].join(', ')} FROM ${table} WHERE ts >= '${isoTime(a)}' AND ts < '${isoTime(b)}'${hostCondition(rangeHost)}${groupBy}`,
      ),
    ),
  );
  if (parts.length === 1) return parts[0];
  const byKey = new Map<string, SummedRow[]>();
  for (const part of parts)
    for (const g of part) {
      if (g.calls === 0) continue; // an empty range's one row with no dimensions
      const key = by.map((d) => String(g[d])).join('\0');
      const same = byKey.get(key);
      if (same) same.push(g);
      else byKey.set(key, [g]);
    }
  return [...byKey.values()].map((same) => (same.length === 1 ? same[0] : { ...same[0], ...sumGroups(same) }));
}

/** The groups of a rollup query added up (sums, min/max, histograms merged). */
function sumGroups(groups: SummedRow[]): SummedRow {
  const total: SummedRow = {
    calls: 0,
    tokens_in: 0,
    tokens_out: 0,
    tokens_cached: 0,
    tokens_reasoning: 0,
    cost_usd: 0,
    unpriced_calls: 0,
    errors: 0,
    latency_count: 0,
    latency_sum: 0,
    latency_min: null,
    latency_max: null,
  };
  const dense = emptyHistogram();
  for (const g of groups) {
    for (const k of [
      'calls',
      'tokens_in',
      'tokens_out',
      'tokens_cached',
      'tokens_reasoning',
      'cost_usd',
      'unpriced_calls',
      'errors',
      'latency_count',
      'latency_sum',
    ] as const)
      total[k] += g[k];
    if (g.latency_min !== null && (total.latency_min === null || g.latency_min < total.latency_min))
      total.latency_min = g.latency_min;
    if (g.latency_max !== null && (total.latency_max === null || g.latency_max > total.latency_max))
      total.latency_max = g.latency_max;
    addTo(dense, g.hist ?? null);
  }
  total.hist = encode(dense);
  return total;
}

export async function usageReport(db: UsageSource, options: UsageReportOptions): Promise<UsageReport> {
  checkOptions(options);
  const by = options.by;
  const source = options.source ?? 'rollups';
  let sinceMs = options.sinceMs;
  let untilMs = options.untilMs ?? Date.now() + 1;
  let groups: SummedRow[];
  let total: SummedRow;
  let exact: Map<string, SummedRow> | null = null;
  const keyOf = (r: SummedRow) => by.map((d) => String(r[d])).join('/');
  if (source === 'raw') {
    [groups, [total]] = await Promise.all([
      rawGroups(db, isoTime(sinceMs), isoTime(untilMs), by, options.host),
      rawGroups(db, isoTime(sinceMs), isoTime(untilMs), [], options.host),
    ]);
  } else {
    sinceMs = Math.floor(sinceMs / HOUR_MS) * HOUR_MS;
    untilMs = Math.ceil(untilMs / HOUR_MS) * HOUR_MS;
    groups = await rollupGroups(db, sinceMs, untilMs, by, options.host);
    total = sumGroups(groups); // the totals from the groups: the window's rows are read once
    if (total.calls === 0) exact = new Map();
    else if (total.calls <= (options.exactMaxCalls ?? 200_000)) {
      const [rawTotal] = await rawGroups(db, isoTime(sinceMs), isoTime(untilMs), [], options.host);
      // Every call still raw (retention has not removed any): exact percentiles from them.
      if (rawTotal.calls === total.calls) {
        exact = new Map(
          (await rawGroups(db, isoTime(sinceMs), isoTime(untilMs), by, options.host)).map((r) => [keyOf(r), r]),
        );
        exact.set('\0total', rawTotal);
      }
    }
  }
  const exactOr = (r: SummedRow, key: string): [number | null, number | null, number | null] => {
    if (source === 'raw') return [r.p50 ?? null, r.p95 ?? null, r.p99 ?? null];
    const e = exact?.get(key);
    return e ? [e.p50 ?? null, e.p95 ?? null, e.p99 ?? null] : estimated(r);
  };
  const timeOrdered = by[0] === 'day' || by[0] === 'hour';
  groups.sort((a, b) =>
    timeOrdered
      ? keyOf(a) < keyOf(b)
        ? -1
        : 1
      : b.cost_usd - a.cost_usd || (keyOf(a) < keyOf(b) ? -1 : keyOf(a) > keyOf(b) ? 1 : 0),
  );
  const shown = options.top === undefined ? groups : groups.slice(0, options.top);
  return {
    since: isoTime(sinceMs),
    until: isoTime(untilMs),
    by,
    source,
    percentiles: source === 'raw' || exact !== null ? 'exact' : 'estimated',
    rows: shown.map((r) => {
      const key = keyOf(r);
      return { key, ...Object.fromEntries(by.map((d) => [d, String(r[d])])), ...figures(r, exactOr(r, key)) };
    }),
    totals: figures(total, exactOr(total, '\0total')),
  };
}

/** `--since 7d` / `--until 2026-12-01T00:00:00Z`: a duration before `now`, or an ISO time. */
export function parseWindowTime(text: string, what: string, now = Date.now()): number {
  if (new RegExp(DURATION_PATTERN).test(text.trim())) return now - parseDuration(text, what);
  const ms = /^\d{4}-\d{2}-\d{2}/.test(text) ? Date.parse(text) : Number.NaN;
  if (Number.isNaN(ms))
    throw new TypeError(
      `${what} must be a duration before now (7d, 12h, 30m) or an ISO time (2026-12-01T00:00:00Z); got ${JSON.stringify(text)}`,
    );
  return ms;
}

/** `channel,model` → the dimensions; TypeError naming a bad one. */
export function parseDimensions(text: string, what = 'by'): UsageDimension[] {
  const by = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const bad = by.find((d) => !(USAGE_DIMENSIONS as readonly string[]).includes(d));
  if (bad !== undefined || by.length === 0 || new Set(by).size !== by.length) {
    throw new TypeError(
      `${what} must be distinct dimensions from ${USAGE_DIMENSIONS.join(', ')}, comma-separated${bad ? `; got ${JSON.stringify(bad)}` : ''}`,
    );
  }
  return by as UsageDimension[];
}

/** GET /usage query → report options (shared with the CLI's flags). */
export function usageOptions(
  config: Pick<MonitorConfig, 'dbPath'> & { llm: Pick<MonitorConfig['llm'], 'rollups' | 'exactPercentileRows'> },
  q: { since?: string; until?: string; by?: string; top?: string; host?: string },
): UsageReportOptions {
  const now = Date.now();
  return {
    sinceMs: parseWindowTime(q.since ?? '7d', 'since', now),
    ...(q.until !== undefined && { untilMs: parseWindowTime(q.until, 'until', now) }),
    by: parseDimensions(q.by ?? 'channel'),
    ...(q.host !== undefined && { host: q.host }),
    ...(q.top !== undefined && { top: Number(q.top) }),
    // PostgreSQL's rollups carry no latency histograms (src/db/postgres-store.ts), and SQLite's
    // kissmon_hist_agg is not there: its reports read the raw rows (exact percentiles).
    source: config.llm.rollups && !isPostgresUrl(config.dbPath) ? 'rollups' : 'raw',
    exactMaxCalls: config.llm.exactPercentileRows,
  };
}
