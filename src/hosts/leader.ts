// Leader election among the monitors sharing one PostgreSQL store, for what exactly one of them
// must do (raise MonitorHostDown). A session-level advisory lock on a dedicated connection:
//
//   no connection ──connect──▶ follower ──pg_try_advisory_lock = true──▶ leader
//        ▲                        │  (tried again every round)            │
//        └──── error / end / a query past its time limit: connection closed ┘
//
// The lock lives exactly as long as the session that took it: a monitor that is killed, or whose
// connection drops, loses it, and the server gives it to the next monitor that asks. It is never
// re-taken silently on a new connection (that is why this is one pg.Client, not a pool: a pool
// would reconnect and "hold" nothing). Advisory locks are per database, so every fleet (database)
// elects its own leader. The same session holds this monitor's host lock (HOST_LOCK_NAMESPACE):
// taken on each new session, and another holder is fatal (onHostTaken).
import pg from 'pg';
import { Kysely, PostgresDialect, type PostgresPool } from 'kysely';
import type { Database } from '../db/schema.js';

/** The advisory lock key of the leader (any fixed bigint; this one spells "kmon"). */
export const LEADER_LOCK_KEY = 0x6b6d6f6e;
/**
 * The first key of each host's lock, (HOST_LOCK_NAMESPACE, hashtext(host)): taken on every new
 * session of this connection, so two live monitors never write as one host (its delivery cursors
 * and bot_status rows). Two-int keys never collide with the one-bigint leader key.
 */
export const HOST_LOCK_NAMESPACE = 0x6b6d6f68;

/** Who holds this monitor's host, from its `hosts` row (null fields: no row yet). */
export interface HostHolder {
  host: string;
  pid: number | null;
  started_at: string | null;
}
/** A query on the dedicated connection that takes longer than this ends the connection (and leadership). */
const QUERY_TIMEOUT_MS = 5_000;
/** Server-side settings of the leader's session: see #connect. */
export const LEADER_SESSION_OPTIONS =
  '-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2 -c tcp_keepalives_count=3 -c tcp_user_timeout=10000';

export interface LeaderOptions {
  url: string;
  /** This monitor's host name: the session's application_name, so operators can see who leads. */
  host: string;
  /** Another session holds this host's lock: the monitor must not write as this host. */
  onHostTaken?: (holder: HostHolder) => void;
}

export class LeaderConnection {
  readonly #options: LeaderOptions;
  #client: pg.Client | null = null;
  #db: Kysely<Database> | null = null;
  #connecting: Promise<void> | null = null;
  #leader = false;
  /** When this monitor last became leader (ms since the epoch), or null while it is not. */
  #leaderSince: number | null = null;
  #lastError: string | null = null;
  #closed = false;
  #hostTaken: HostHolder | null = null;

  constructor(options: LeaderOptions) {
    this.#options = options;
  }

  get leader(): boolean {
    return this.#leader;
  }

  get leaderSince(): number | null {
    return this.#leaderSince;
  }

  get connected(): boolean {
    return this.#client !== null && this.#db !== null;
  }

  get lastError(): string | null {
    return this.#lastError;
  }

  /** Set when another session held this host's lock: no more rounds. */
  get hostTaken(): HostHolder | null {
    return this.#hostTaken;
  }

  /**
   * One round: connect if needed, try the lock while a follower. Returns the kysely instance over
   * the dedicated connection for this round's reads, or null when there is no connection.
   */
  async round(): Promise<Kysely<Database> | null> {
    if (this.#closed) return null;
    if (!this.#client) {
      this.#connecting ??= this.#connect().finally(() => (this.#connecting = null));
      await this.#connecting;
    }
    const client = this.#client;
    if (!client) return null;
    try {
      if (!this.#leader) {
        const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [
          LEADER_LOCK_KEY,
        ]);
        if (rows[0]?.locked === true && this.#client === client) {
          this.#leader = true;
          this.#leaderSince = Date.now();
        }
      } else {
        // A leader asks every round whether its session still holds the lock: a session that
        // stopped answering fails this within QUERY_TIMEOUT_MS, and then leads no more.
        const { rows } = await client.query<{ held: boolean }>(
          `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND objsubid = 1
             AND pid = pg_backend_pid() AND granted) AS held`,
          [LEADER_LOCK_KEY],
        );
        if (rows[0]?.held !== true) throw new Error('the leader lock is not held by this session any more');
      }
    } catch (err) {
      this.#lost(client, err);
      return null;
    }
    return this.#db;
  }

  /** A read on the dedicated connection failed: the session (and its lock) can no longer be trusted. */
  failed(err: unknown): void {
    if (this.#client) this.#lost(this.#client, err);
  }

  async #connect(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.#options.url,
      application_name: `kissmon:${this.#options.host}`,
      query_timeout: QUERY_TIMEOUT_MS,
      connectionTimeoutMillis: QUERY_TIMEOUT_MS,
      keepAlive: true,
      // The lock lives as long as the server's session. A leader whose machine vanishes (power,
      // network) sends no FIN: with the OS defaults the server keeps that session (and the lock,
      // so the vanished host's MonitorHostDown never comes) for ~2 h. These end it within ~11 s of
      // silence (idle 5 s + 3 probes 2 s apart; unacknowledged data after 10 s). Over a Unix
      // socket the server ignores them (nothing can vanish there).
      options: LEADER_SESSION_OPTIONS,
    });
    client.on('error', (err) => this.#lost(client, err));
    client.on('end', () => this.#lost(client, new Error('connection ended')));
    try {
      await client.connect();
    } catch (err) {
      this.#lastError = (err as Error).message;
      client.removeAllListeners('end');
      void client.end().catch(() => {});
      return;
    }
    if (this.#closed) {
      void client.end().catch(() => {});
      return;
    }
    // Every new session takes the host's lock first (again after a lost one): held elsewhere,
    // another live monitor writes as this host, and this one must stop.
    try {
      const { host } = this.#options;
      const { rows } = await client.query<{ locked: boolean }>(
        'SELECT pg_try_advisory_lock($1, hashtext($2)) AS locked',
        [HOST_LOCK_NAMESPACE, host],
      );
      if (rows[0]?.locked !== true) {
        const row = await client
          .query<{ pid: number; started_at: string }>('SELECT pid, started_at FROM hosts WHERE host = $1', [host])
          .then((r) => r.rows[0])
          .catch(() => undefined);
        this.#hostTaken = { host, pid: row ? Number(row.pid) : null, started_at: row?.started_at ?? null };
        this.#closed = true;
        client.removeAllListeners('end');
        void client.end().catch(() => {});
        this.#options.onHostTaken?.(this.#hostTaken);
        return;
      }
    } catch (err) {
      this.#lastError = (err as Error).message;
      client.removeAllListeners('end');
      void client.end().catch(() => {});
      return;
    }
    this.#client = client;
    this.#lastError = null;
    // kysely over this one client: every query of this Kysely runs on the session that holds the lock.
    const pool: PostgresPool = {
      connect: async () => Object.assign(client, { release: () => {} }),
      end: async () => {},
    };
    this.#db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  }

  #lost(client: pg.Client, err: unknown): void {
    if (this.#client !== client) return;
    this.#client = null;
    this.#db = null;
    this.#leader = false;
    this.#leaderSince = null;
    this.#lastError = (err as Error)?.message ?? String(err);
    client.removeAllListeners('end');
    client.on('error', () => {}); // late errors of a dropped client are not ours any more
    void client.end().catch(() => {});
  }

  /** Ends the connection (the server releases the lock with the session). Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#connecting;
    const client = this.#client;
    this.#client = null;
    this.#db = null;
    this.#leader = false;
    this.#leaderSince = null;
    if (!client) return;
    client.removeAllListeners('end');
    client.on('error', () => {});
    await client.end().catch(() => {});
  }
}
