// The `hosts` table (0006_hosts): one row per monitor sharing the store, its heartbeat.
//
//   each monitor, every heartbeatMs ─▶ its writer upserts (host, version, pid, started_at, bots_json,
//                                      last_seen = the database's clock)
//   readers (kissmon hosts, status --all-hosts, /hosts, /fleet, the leader)
//                                  ─▶ age = database clock − last_seen
//                                     age > the row's own stale_after_ms (the writing monitor's
//                                     hostStaleAfterMs; a CLI --host-stale-after overrides) ─▶ `down`
//
// Both ends use the database's clock, never their own: hosts whose clocks disagree by more than
// the stale window would otherwise see each other down (or never down).
import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { Database } from '../db/schema.js';
import { dialectSql } from '../db/dialect.js';
import type { HostBeat, HostView } from '../actors/host-messages.js';

export type { HostBeat, HostState, HostView } from '../actors/host-messages.js';

/** The database's clock as stored text: one clock for every host sharing the store (no skew between them). */
function dbNow(db: Kysely<Database>): RawBuilder<string> {
  return sql<string>`${sql.raw(dialectSql(db).now)}`;
}

/** How often a monitor heartbeats: a few times per stale window, at most every 5 s. */
export function heartbeatIntervalMs(hostStaleAfterMs: number): number {
  return Math.max(250, Math.min(5_000, Math.floor(hostStaleAfterMs / 4)));
}

/** Upserts this monitor's row (the writer's connection: the one writer of the store). */
export async function upsertHost(db: Kysely<Database>, beat: HostBeat): Promise<void> {
  const row = {
    version: beat.version,
    pid: beat.pid,
    started_at: new Date(beat.startedAt).toISOString(),
    last_seen: dbNow(db),
    bots_json: JSON.stringify(beat.bots),
    stale_after_ms: Math.round(beat.staleAfterMs),
  };
  await db
    .insertInto('hosts')
    .values({ host: beat.host, ...row })
    .onConflict((oc) => oc.column('host').doUpdateSet(row))
    .execute();
}

/** How a reader judges `hosts` rows: by each row's own stale_after_ms unless it overrides them all. */
export interface HostJudging {
  /** Overrides every row's own window (`kissmon hosts --host-stale-after`); absent: each row's. */
  staleAfterMs?: number;
}

/** Every known host with its age and state (by its own monitor's window unless overridden), sorted by name. */
export async function hostViews(db: Kysely<Database>, options: HostJudging = {}): Promise<HostView[]> {
  const rows = await db
    .selectFrom('hosts')
    .select(['host', 'version', 'pid', 'started_at', 'last_seen', 'bots_json', 'stale_after_ms', dbNow(db).as('now')])
    .orderBy('host')
    .execute();
  return rows.map((r) => {
    const ageMs = Math.max(0, Date.parse(r.now) - Date.parse(r.last_seen));
    const staleAfterMs = options.staleAfterMs ?? Number(r.stale_after_ms);
    return {
      host: r.host,
      version: r.version,
      pid: Number(r.pid),
      started_at: r.started_at,
      last_seen: r.last_seen,
      age_s: Math.round(ageMs / 100) / 10,
      stale_after_s: staleAfterMs / 1000,
      state: ageMs > staleAfterMs ? 'down' : 'up',
      bots: parseBots(r.bots_json),
    };
  });
}

function parseBots(json: string | null): HostView['bots'] {
  try {
    const value = JSON.parse(json ?? '{}') as unknown;
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? value : {};
  } catch {
    return {}; // a hand-edited row must not break `kissmon hosts`
  }
}
