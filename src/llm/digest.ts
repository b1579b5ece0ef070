// The daily LLM digest: at `digest.hour` (local to `digest.timeZone`) the writer sums yesterday
// from the rollups and bot_events and sends one `digest` input to the alerter, which delivers it
// through its receivers. Once per day, also across restarts (monitor_state `digest_day`); a
// monitor that was down at the hour sends it when it starts, if that day's digest is still due.
import type BetterSqlite3 from 'better-sqlite3';
import { isoTime } from '../db/schema.js';
import type { BudgetStatus } from './budgets.js';
import { nextLocalHour, periodStart } from './periods.js';

/** AlerterInput `digest` (contract in the brief). */
export interface DigestInput {
  type: 'digest';
  at: number;
  title: string;
  text: string;
  data: DigestData;
}

export interface DigestData {
  day: string;
  time_zone: string;
  spent_usd: number;
  previous_day_usd: number;
  /** Change against the day before in %, null when that day cost nothing. */
  change_pct: number | null;
  calls: number;
  top_channels: { channel: string; cost_usd: number; calls: number }[];
  top_models: { model: string; cost_usd: number; calls: number }[];
  slowest_models: { model: string; mean_latency_ms: number; max_latency_ms: number; calls: number }[];
  failing_models: { model: string; failed: number; calls: number; error_rate_pct: number }[];
  budgets_near_limit: BudgetStatus[];
  bots_restarted_or_flapping: { channel: string; registers: number; dead: number; stale: number }[];
}

const round = (n: number, d = 6) => Math.round(n * 10 ** d) / 10 ** d;

/** Runs one query with `?` placeholders: better-sqlite3 on SQLite, the pg pool on PostgreSQL. */
export type DigestQuery = (sql: string, params: unknown[]) => unknown[] | Promise<unknown[]>;

/** An SQLite connection as a DigestQuery. */
export const sqliteDigestQuery =
  (sqlite: BetterSqlite3.Database): DigestQuery =>
  (sql, params) =>
    sqlite.prepare(sql).all(...params);

/**
 * Yesterday (the local day before `now`'s) in figures, from this host's rollups and bot_events
 * (SQLite: also rows of host '', written before 0006_hosts). The SQL runs on both backends as it
 * is (no total(), no aliases inside expressions); rounding is done here.
 */
export async function buildDigest(
  query: DigestQuery | BetterSqlite3.Database,
  now: number,
  timeZone: string,
  budgets: BudgetStatus[],
  host = '',
): Promise<DigestInput> {
  const run = typeof query === 'function' ? query : sqliteDigestQuery(query);
  const all = async <T>(sql: string, params: unknown[]) => (await run(sql, params)) as T[];
  const today = periodStart('day', now, timeZone);
  const yesterday = periodStart('day', today - 1, timeZone);
  const before = periodStart('day', yesterday - 1, timeZone);
  const [t, y, b] = [isoTime(today), isoTime(yesterday), isoTime(before)];
  const mine = "host IN (?, '') AND ts >= ? AND ts < ?";
  const total = (from: string, to: string) =>
    all<{ cost: number | null; calls: number | null }>(
      `SELECT sum(cost_usd) AS cost, sum(calls) AS calls FROM llm_usage_hourly WHERE ${mine}`,
      [host, from, to],
    ).then(([r]) => ({ cost: r?.cost ?? 0, calls: r?.calls ?? 0 }));
  const day = await total(y, t);
  const prev = await total(b, y);
  const top = async (column: 'channel' | 'model') =>
    (
      await all<Record<string, string | number>>(
        `SELECT ${column}, coalesce(sum(cost_usd), 0) AS cost_usd, sum(calls) AS calls FROM llm_usage_hourly
    WHERE ${mine} GROUP BY ${column} ORDER BY cost_usd DESC, ${column} LIMIT 5`,
        [host, y, t],
      )
    ).map((r) => ({ ...r, cost_usd: round(Number(r.cost_usd)) }));
  const slowest = (
    await all<{ model: string; latency_sum: number; latency_count: number; max_latency_ms: number; calls: number }>(
      `SELECT model, sum(latency_sum) AS latency_sum, sum(latency_count) AS latency_count, max(latency_max) AS max_latency_ms, sum(calls) AS calls
    FROM llm_usage_hourly WHERE ${mine} GROUP BY model HAVING sum(latency_count) > 0
    ORDER BY sum(latency_sum) / sum(latency_count) DESC LIMIT 3`,
      [host, y, t],
    )
  ).map((r) => ({
    model: r.model,
    mean_latency_ms: round(r.latency_sum / r.latency_count, 1),
    max_latency_ms: r.max_latency_ms,
    calls: r.calls,
  }));
  const failedCalls = "sum(CASE WHEN status != 'ok' THEN calls ELSE 0 END)";
  const failing = (
    await all<{ model: string; failed: number; calls: number }>(
      `SELECT model, ${failedCalls} AS failed, sum(calls) AS calls
    FROM llm_usage_hourly WHERE ${mine} GROUP BY model HAVING ${failedCalls} > 0
    ORDER BY 1.0 * ${failedCalls} / sum(calls) DESC, ${failedCalls} DESC LIMIT 3`,
      [host, y, t],
    )
  ).map((r) => ({ ...r, error_rate_pct: round((100 * r.failed) / r.calls, 2) }));
  // A bot that registered more than once, died, or went stale three times or more in the day.
  const registers = "sum(CASE WHEN reason IN ('registered', 'implicit_register') THEN 1 ELSE 0 END)";
  const dead = "sum(CASE WHEN to_status = 'dead' THEN 1 ELSE 0 END)";
  const stale = "sum(CASE WHEN to_status = 'stale' THEN 1 ELSE 0 END)";
  const bots = await all<DigestData['bots_restarted_or_flapping'][number]>(
    `SELECT channel, ${registers} AS registers, ${dead} AS dead, ${stale} AS stale
    FROM bot_events WHERE ${mine} GROUP BY channel HAVING ${registers} > 1 OR ${dead} > 0 OR ${stale} >= 3
    ORDER BY ${dead} + ${stale} + ${registers} DESC LIMIT 10`,
    [host, y, t],
  );
  const data: DigestData = {
    day: new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(
      yesterday,
    ),
    time_zone: timeZone,
    spent_usd: round(day.cost),
    previous_day_usd: round(prev.cost),
    change_pct: prev.cost > 0 ? round(((day.cost - prev.cost) / prev.cost) * 100, 1) : null,
    calls: day.calls,
    top_channels: (await top('channel')) as DigestData['top_channels'],
    top_models: (await top('model')) as DigestData['top_models'],
    slowest_models: slowest,
    failing_models: failing,
    budgets_near_limit: budgets.filter((s) => s.level !== 'ok'),
    bots_restarted_or_flapping: bots,
  };
  return {
    type: 'digest',
    at: now,
    title: `LLM digest ${data.day}: ${data.spent_usd.toFixed(2)} USD`,
    text: digestText(data),
    data,
  };
}

export function digestText(d: DigestData): string {
  const usd = (n: number) => `${n.toFixed(2)} USD`;
  const lines = [
    `LLM spend ${d.day} (${d.time_zone}): ${usd(d.spent_usd)} over ${d.calls} calls; day before ${usd(d.previous_day_usd)}${d.change_pct === null ? '' : ` (${d.change_pct >= 0 ? '+' : ''}${d.change_pct} %)`}`,
    `Top channels: ${d.top_channels.map((c) => `${c.channel} ${usd(c.cost_usd)}`).join(', ') || '-'}`,
    `Top models: ${d.top_models.map((m) => `${m.model} ${usd(m.cost_usd)}`).join(', ') || '-'}`,
    `Slowest models: ${d.slowest_models.map((m) => `${m.model} mean ${m.mean_latency_ms} ms (max ${m.max_latency_ms})`).join(', ') || '-'}`,
    `Most failing models: ${d.failing_models.map((m) => `${m.model} ${m.error_rate_pct} % (${m.failed}/${m.calls})`).join(', ') || 'none'}`,
    `Budgets near their limit: ${d.budgets_near_limit.map((s) => `${s.name} ${s.pct} % of ${usd(s.limit_usd)} (${s.level})`).join(', ') || 'none'}`,
    `Bots that restarted or flapped: ${d.bots_restarted_or_flapping.map((s) => `${s.channel} (registers ${s.registers}, dead ${s.dead}, stale ${s.stale})`).join(', ') || 'none'}`,
  ];
  return lines.join('\n');
}

/** Fires the digest at the configured hour each day; the writer hands it its connection and sender. */
export class DigestSchedule {
  #timer: NodeJS.Timeout | null = null;
  #hour: number;
  #timeZone: string;
  #run: () => void;

  constructor(options: { hour: number; timeZone: string }, run: () => void) {
    this.#hour = options.hour;
    this.#timeZone = options.timeZone;
    this.#run = run;
  }

  /** The local day whose digest is due at `now` (its start), or null before today's hour. */
  dueDay(now: number): number | null {
    const today = periodStart('day', now, this.#timeZone);
    if (nextLocalHour(this.#hour, today, this.#timeZone) > now) return null;
    return periodStart('day', today - 1, this.#timeZone);
  }

  start(now = Date.now()): void {
    this.stop();
    const next = nextLocalHour(this.#hour, now + 1, this.#timeZone);
    // setTimeout caps at 2^31-1 ms; a day is well under it.
    this.#timer = setTimeout(
      () => {
        this.#run();
        this.start();
      },
      Math.min(next - now, 2 ** 31 - 1),
    );
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }
}
