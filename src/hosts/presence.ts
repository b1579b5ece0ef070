// A monitor's presence among the hosts sharing a store, run on the main thread every heartbeat:
//
//   every heartbeatIntervalMs(hostStaleAfterMs):
//     registry health (bots by status) ─▶ writer control call: upsert this host's `hosts` row
//     PostgreSQL only, on the dedicated leader connection (src/hosts/leader.ts):
//       leader, for hostStaleAfterMs since it became one ─▶ every other host older than its own
//           stale_after_ms: MonitorHostDown{host} firing; fresh again (or row gone): resolved
//       follower ─▶ only resolves the MonitorHostDown alerts it raised while it led
//
// The grace after becoming leader matters after a store outage: nobody could heartbeat while it
// lasted, so every row is old at first; one stale window later the living hosts have written again.
// With SQLite there is one host and nothing to elect: the heartbeat only (kissmon hosts shows it).
import { readFileSync } from 'node:fs';
import type { Logger } from '../log.js';
import type { MonitorAlerts, MonitorCondition } from '../alerts/monitor-alerts.js';
import { heartbeatIntervalMs, hostViews, type HostBeat, type HostView } from './hosts.js';
import { HostInUseError } from '../errors.js';
import { LeaderConnection, type HostHolder } from './leader.js';

const PACKAGE_VERSION = (
  JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

/** Shutdown waits at most this long for a round under way and the leader connection's end. */
const STOP_WAIT_MS = 1_000;

export interface HostPresenceOptions {
  host: string;
  staleAfterMs: number;
  /** The store's URL when it is PostgreSQL (leader election and MonitorHostDown); null for SQLite. */
  postgresUrl: string | null;
  /** This monitor's live bots by status; null when the registry does not answer. */
  botCounts: () => Promise<HostBeat['bots'] | null>;
  /** Upserts the row through the writer; false/null when the store is not writable now. */
  write: (beat: HostBeat) => Promise<boolean | null>;
  /** Where MonitorHostDown goes (its own MonitorAlerts: the other monitor alerts resolve what they do not list). */
  alerts: MonitorAlerts;
  /** PostgreSQL: another live monitor holds this host (found after start, e.g. when the store came back). */
  onHostTaken?: (err: HostInUseError) => void;
  log: Logger;
}

/** The error of a host held by another monitor, naming it from its `hosts` row. */
export function hostInUse(holder: HostHolder): HostInUseError {
  const who =
    holder.pid !== null ? `pid ${holder.pid}, started ${holder.started_at}` : 'no hosts row yet: just starting';
  return new HostInUseError(
    `another live monitor writes as host "${holder.host}" on this store (${who}): ` +
      'give this one another --host-name, or stop that one first (two monitors as one host would share its delivery cursors and bot rows)',
  );
}

export class HostPresence {
  readonly #o: HostPresenceOptions;
  readonly #leader: LeaderConnection | null;
  readonly #startedAt = Date.now();
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | null = null;
  #round: Promise<void> | null = null;
  #stopped = false;
  #stopping: Promise<void> | null = null;
  /** Hosts this monitor has MonitorHostDown firing for. */
  readonly #firing = new Set<string>();
  readonly #counters = { beats: 0, beat_failures: 0, judged: 0, watch_failures: 0 };
  #lastBots: HostBeat['bots'] = {};

  constructor(options: HostPresenceOptions) {
    this.#o = options;
    this.#intervalMs = heartbeatIntervalMs(options.staleAfterMs);
    this.#leader = options.postgresUrl
      ? new LeaderConnection({
          url: options.postgresUrl,
          host: options.host,
          onHostTaken: (holder) => {
            if (this.#claiming) return; // claim() throws it
            this.#o.onHostTaken?.(hostInUse(holder));
          },
        })
      : null;
  }

  #claiming = false;

  /**
   * PostgreSQL, at start: takes this host's lock, waiting at most `waitMs` for the store.
   * Throws HostInUseError while another live monitor holds it. An unreachable store does not
   * stop the start (the monitor spools); the lock is taken when the store is back, and a holder
   * found then is onHostTaken.
   */
  async claim(waitMs: number): Promise<void> {
    const leader = this.#leader;
    if (!leader) return;
    this.#claiming = true;
    let timer: NodeJS.Timeout | undefined;
    try {
      const bound = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), waitMs)));
      await Promise.race([leader.round(), bound]);
    } finally {
      clearTimeout(timer);
      this.#claiming = false;
    }
    if (leader.hostTaken) throw hostInUse(leader.hostTaken);
    if (!leader.connected)
      this.#o.log.warn(
        { host: this.#o.host, err: leader.lastError },
        'store unreachable at start: the host lock is taken when it is back (another monitor holding it then is fatal)',
      );
  }

  start(): void {
    if (this.#timer || this.#stopped) return;
    const next = () => {
      if (this.#stopped) return;
      this.#round = this.#once().finally(() => {
        this.#round = null;
        if (!this.#stopped) this.#timer = setTimeout(next, this.#intervalMs);
      });
    };
    this.#timer = setTimeout(next, 0);
  }

  /** Stops the rounds and ends the leader connection (the lock goes with it); bounded, idempotent. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#stopped = true;
      if (this.#timer) clearTimeout(this.#timer);
      // A round waits at most for its control call (2 s) or query time limit; shutdown does not.
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<void>((resolve) => (timer = setTimeout(resolve, STOP_WAIT_MS)));
      await Promise.race([Promise.all([this.#round, this.#leader?.close()]), bound]);
      clearTimeout(timer);
    })();
    return this.#stopping;
  }

  /** For the ingest health detail: whether this monitor leads, and its heartbeat counters. */
  stats(): Record<string, string | number | boolean | null> {
    return {
      host: this.#o.host,
      leader: this.#leader ? this.#leader.leader : null,
      leader_connection: this.#leader ? (this.#leader.connected ? 'open' : (this.#leader.lastError ?? 'none')) : null,
      hosts_down: this.#firing.size,
      ...this.#counters,
    };
  }

  async #once(): Promise<void> {
    await Promise.all([this.#beat(), this.#judge()]);
  }

  async #beat(): Promise<void> {
    const bots = await this.#o.botCounts().catch(() => null);
    if (bots) this.#lastBots = bots; // a registry restarting: the last counts, not none
    const ok = await this.#o
      .write({
        host: this.#o.host,
        version: PACKAGE_VERSION,
        pid: process.pid,
        startedAt: this.#startedAt,
        bots: this.#lastBots,
        staleAfterMs: this.#o.staleAfterMs,
      })
      .catch(() => false);
    if (ok === true) this.#counters.beats++;
    else this.#counters.beat_failures++;
  }

  async #judge(): Promise<void> {
    const leader = this.#leader;
    if (!leader) return;
    const db = await leader.round();
    if (!db) return; // no connection: what fires stays as it is until we can see again
    let views: HostView[];
    try {
      views = await hostViews(db); // each host by its own window, as every view judges it
    } catch (err) {
      this.#counters.watch_failures++;
      leader.failed(err);
      return;
    }
    this.#counters.judged++;
    const now = Date.now();
    const down = views.filter((v) => v.host !== this.#o.host && v.state === 'down');
    const judging = leader.leader && now - (leader.leaderSince ?? now) >= this.#o.staleAfterMs;
    const holding = judging ? down : down.filter((v) => this.#firing.has(v.host));
    const conditions: MonitorCondition[] = holding.map((v) => ({
      alertname: 'MonitorHostDown',
      labels: { host: v.host },
      summary: `monitor on host ${v.host} last seen ${v.age_s} s ago (down after ${v.stale_after_s} s): its bots are not watched; reported by ${this.#o.host}`,
    }));
    for (const v of holding)
      if (!this.#firing.has(v.host))
        this.#o.log.warn({ host: v.host, age_s: v.age_s, last_seen: v.last_seen }, 'host down');
    for (const host of this.#firing)
      if (!holding.some((v) => v.host === host)) this.#o.log.info({ host }, 'host back (or forgotten)');
    this.#firing.clear();
    for (const v of holding) this.#firing.add(v.host);
    this.#o.alerts.update(conditions, now);
  }
}
