// Report and status queries over a read-only connection (they run in the read pool, never on the
// writer's connection). Rows come back with times as ms since the epoch, like the live registry.
import { sql, type Kysely } from 'kysely';
import type { BotSnapshot } from '../actors/registry-messages.js';
import type { BotStatus } from '../protocol/states.js';
import { hostViews } from '../hosts/hosts.js';
import { dialectOf, dialectSql } from './dialect.js';
import { isoTime, type Database } from './schema.js';

export interface UsageTotals {
  calls: number;
  tokens_in: number;
  tokens_out: number;
  cost_usd: number;
  /** Latency percentiles over the calls that reported one; null when none did. */
  latency_p50_ms: number | null;
  latency_p95_ms: number | null;
  latency_p99_ms: number | null;
}

/**
 * A latency percentile by linear interpolation between the two nearest ranks (the "inclusive"
 * definition: numpy's default, Excel PERCENTILE.INC), per group, ignoring calls with no latency.
 * SQLite: percentile_cont is built into the SQLite bundled with better-sqlite3
 * (SQLITE_ENABLE_PERCENTILE); PostgreSQL: the ordered-set aggregate of the same name.
 */
const latencyPercentile = (db: Kysely<Database>, fraction: number) =>
  sql<number | null>`${sql.raw(dialectSql(db).percentile('latency_ms', fraction))}`;
const total = (db: Kysely<Database>, column: string) => sql<number>`${sql.raw(dialectSql(db).total(column))}`;

/** Which bots to read: one host's (a monitor's own, by default), or every host's (`undefined`). */
export interface HostFilter {
  /** Only this host's rows; undefined: every host. */
  host?: string;
}

type StatusRecord = {
  host: string;
  channel: string;
  pid: number;
  status: string;
  features_json: string | null;
  registered_at: string | null;
  last_seen: string | null;
  last_heartbeat: string | null;
  start_time: number | null;
  cpu_pct: number | null;
  cpu_pct_machine: number | null;
  rss_mb: number | null;
  sampled_at: string | null;
};

/** bot_status rows with each bot's latest resource sample (for the same pid), sorted by host and channel. */
async function statusRecords(db: Kysely<Database>, filter: HostFilter): Promise<StatusRecord[]> {
  const where = filter.host === undefined ? sql`` : sql`WHERE s.host = ${filter.host}`;
  const columns = sql`s.host, s.channel, s.pid, s.status, s.features_json, s.registered_at, s.last_seen, s.last_heartbeat,
           s.start_time, m.cpu_pct, m.cpu_pct_machine, m.rss_mb, m.ts AS sampled_at`;
  // The same latest-sample lookup twice: PostgreSQL has LATERAL (and no rowid), SQLite the reverse.
  const query =
    dialectOf(db) === 'postgres'
      ? sql<StatusRecord>`
    SELECT ${columns}
    FROM bot_status s
    LEFT JOIN LATERAL (
      SELECT cpu_pct, cpu_pct_machine, rss_mb, ts FROM bot_metrics
      WHERE host = s.host AND channel = s.channel AND pid = s.pid ORDER BY ts DESC LIMIT 1
    ) m ON true
    ${where}
    ORDER BY s.host, s.channel`
      : sql<StatusRecord>`
    SELECT ${columns}
    FROM bot_status s
    LEFT JOIN bot_metrics m ON m.rowid = (
      SELECT rowid FROM bot_metrics WHERE host = s.host AND channel = s.channel AND pid = s.pid ORDER BY ts DESC LIMIT 1
    )
    ${where}
    ORDER BY s.host, s.channel`;
  return (await query.execute(db)).rows;
}

function snapshotOf(r: StatusRecord): BotSnapshot {
  return {
    channel: r.channel,
    pid: r.pid,
    status: r.status as BotStatus,
    features: parseFeatures(r.features_json),
    registered_at: parseTime(r.registered_at) ?? 0,
    last_seen: parseTime(r.last_seen) ?? 0,
    last_heartbeat: parseTime(r.last_heartbeat),
    heartbeat_age_s: null, // "monitor-alive" age is only known to the live registry
    start_time: r.start_time,
    cpu_pct: r.cpu_pct,
    cpu_pct_machine: r.cpu_pct_machine,
    rss_mb: r.rss_mb,
    sampled_at: parseTime(r.sampled_at),
  };
}

/** Every bot in bot_status (of `filter.host`, or of every host) with its latest resource sample, sorted by channel. */
export async function statusRows(db: Kysely<Database>, filter: HostFilter = {}): Promise<BotSnapshot[]> {
  return (await statusRecords(db, filter)).map(snapshotOf);
}

/** One bot of the cross-host view: where it runs, and `unknown` while its host's monitor is down. */
export type FleetBot = Omit<BotSnapshot, 'status'> & {
  host: string;
  /** `unknown` when its monitor is down: the stored status is only what that monitor last wrote. */
  status: BotStatus | 'unknown';
  /** Why the status is unknown. */
  reason?: 'host_down';
  /** With `unknown`: the status its monitor last stored. */
  stored_status?: BotStatus;
};

/**
 * `kissmon status --all-hosts`: the bots of every host (or of `filter.host`) as their monitors
 * last stored them, sorted by host and channel; a host whose `hosts` row is older than
 * its own stale_after_ms (or `staleAfterMs`, an override) is down and its bots are `unknown`
 * (reason host_down). A host with no `hosts`
 * row (rows from before 0006) is shown as stored.
 */
export async function fleetStatus(
  db: Kysely<Database>,
  options: HostFilter & { staleAfterMs?: number },
): Promise<FleetBot[]> {
  const [records, hosts] = await Promise.all([statusRecords(db, options), hostViews(db, options)]);
  const down = new Set(hosts.filter((h) => h.state === 'down').map((h) => h.host));
  return records.map((r) => {
    const bot = snapshotOf(r);
    if (!down.has(r.host)) return { host: r.host, ...bot };
    return { host: r.host, ...bot, status: 'unknown', reason: 'host_down', stored_status: bot.status };
  });
}

/** Calls, tokens, cost and latency percentiles of all raw rows since `sinceMs` (the load tester's count; zeros and nulls when none). */
export async function usageTotals(
  db: Kysely<Database>,
  options: { sinceMs: number } & HostFilter,
): Promise<UsageTotals> {
  return usageSince(db, options.sinceMs, options.host).executeTakeFirstOrThrow();
}

function usageSince(db: Kysely<Database>, sinceMs: number, host: string | undefined) {
  if (typeof sinceMs !== 'number' || !Number.isFinite(sinceMs) || sinceMs < 0)
    throw new TypeError('options.sinceMs must be a time in ms since the epoch');
  const { int } = dialectSql(db);
  return db
    .selectFrom('llm_usage')
    .where('ts', '>=', isoTime(sinceMs))
    .$if(host !== undefined, (q) => q.where('host', '=', host!))
    .select([
      sql<number>`${sql.raw(int('count(*)'))}`.as('calls'),
      sql<number>`${sql.raw(int('coalesce(sum(tokens_in), 0)'))}`.as('tokens_in'),
      sql<number>`${sql.raw(int('coalesce(sum(tokens_out), 0)'))}`.as('tokens_out'),
      total(db, 'cost_usd').as('cost_usd'),
      latencyPercentile(db, 0.5).as('latency_p50_ms'),
      latencyPercentile(db, 0.95).as('latency_p95_ms'),
      latencyPercentile(db, 0.99).as('latency_p99_ms'),
    ]);
}

/** Stored ISO text → ms. Text without a zone (written by the old Python monitor) is UTC. */
function parseTime(text: string | null): number | null {
  if (text === null) return null;
  const ms = Date.parse(/(Z|[+-]\d\d:?\d\d)$/i.test(text) ? text : `${text}Z`);
  return Number.isNaN(ms) ? null : ms;
}

function parseFeatures(json: string | null): BotSnapshot['features'] {
  if (json === null) return null;
  try {
    const value = JSON.parse(json) as unknown;
    return value !== null && typeof value === 'object' && !Array.isArray(value)
      ? (value as BotSnapshot['features'])
      : null;
  } catch {
    return null; // a hand-edited or legacy value must not break `kissmon status`
  }
}

/** One bot's history for the dashboard's detail view (GET /bot). Times are ms since the epoch. */
export interface BotDetail {
  channel: string;
  /** Resource samples since `sinceMs`, oldest first (at most BOT_DETAIL_MAX_POINTS, the latest). */
  metrics: { ts: number; pid: number; cpu_pct: number | null; rss_mb: number | null }[];
  /** Its latest status transitions, newest first. */
  events: { ts: number; pid: number; from: string | null; to: string; reason: string }[];
  /** Its LLM calls since `sinceMs`, by model. */
  usage: { model: string; calls: number; tokens_in: number; tokens_out: number; cost_usd: number }[];
}

export const BOT_DETAIL_MAX_POINTS = 5_000;
const BOT_DETAIL_MAX_EVENTS = 200;

export async function botDetail(
  db: Kysely<Database>,
  options: { channel: string; sinceMs: number } & HostFilter,
): Promise<BotDetail> {
  const since = isoTime(options.sinceMs);
  const { host } = options;
  const { int } = dialectSql(db);
  const metrics = await db
    .selectFrom('bot_metrics')
    .select(['ts', 'pid', 'cpu_pct', 'rss_mb'])
    .where('channel', '=', options.channel)
    .$if(host !== undefined, (q) => q.where('host', '=', host!))
    .where('ts', '>=', since)
    .orderBy('ts', 'desc')
    .limit(BOT_DETAIL_MAX_POINTS)
    .execute();
  const events = await db
    .selectFrom('bot_events')
    .select(['ts', 'pid', 'from_status', 'to_status', 'reason'])
    .where('channel', '=', options.channel)
    .$if(host !== undefined, (q) => q.where('host', '=', host!))
    .orderBy('ts', 'desc')
    .orderBy('id', 'desc')
    .limit(BOT_DETAIL_MAX_EVENTS)
    .execute();
  const usage = await db
    .selectFrom('llm_usage')
    .where('channel', '=', options.channel)
    .$if(host !== undefined, (q) => q.where('host', '=', host!))
    .where('ts', '>=', since)
    .select([
      sql<string>`coalesce(model, '')`.as('model'),
      sql<number>`${sql.raw(int('count(*)'))}`.as('calls'),
      sql<number>`${sql.raw(int('coalesce(sum(tokens_in), 0)'))}`.as('tokens_in'),
      sql<number>`${sql.raw(int('coalesce(sum(tokens_out), 0)'))}`.as('tokens_out'),
      total(db, 'cost_usd').as('cost_usd'),
    ])
    .groupBy(sql`coalesce(model, '')`)
    .orderBy(sql.ref('cost_usd'), 'desc')
    .execute();
  return {
    channel: options.channel,
    metrics: metrics
      .reverse()
      .map((m) => ({ ts: parseTime(m.ts) ?? 0, pid: m.pid, cpu_pct: m.cpu_pct, rss_mb: m.rss_mb })),
    events: events.map((e) => ({
      ts: parseTime(e.ts) ?? 0,
      pid: e.pid,
      from: e.from_status,
      to: e.to_status,
      reason: e.reason,
    })),
    usage,
  };
}
