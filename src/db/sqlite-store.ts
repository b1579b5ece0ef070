// The writer's store on SQLite (src/db/store.ts): one better-sqlite3 connection, statements
// prepared once (kysely compiles their SQL: per-row insertInto re-prepares, ~8-10x slower), each
// plan one `BEGIN IMMEDIATE` transaction. SQLITE_BUSY/LOCKED is a refused attempt the writer
// retries; a row SQLite refuses on its own (a value it cannot bind, a constraint) is dropped and
// counted while the rest of the transaction goes on (SQLite has undone only that statement).
import { setImmediate as nextTurn, setTimeout as delay } from 'node:timers/promises';
import type BetterSqlite3 from 'better-sqlite3';
import type { Compilable } from 'kysely';
import type { PruneResult, RowItem } from '../actors/db-writer-messages.js';
import type { MonitorConfig } from '../config.js';
import { emptyRecompute, RECOMPUTE_STOPPED, UsageAccounting, type RecomputeResult } from '../llm/accounting.js';
import type { BudgetSignal, BudgetStatus } from '../llm/budgets.js';
import { buildDigest, type DigestInput } from '../llm/digest.js';
import { DAILY_UNTIL_KEY, foldSql, ROLLUP_TABLES, WEEKLY_UNTIL_KEY } from '../llm/rollups.js';
import { isoTime, OpenDatabaseError, openWriteDatabase, type DatabaseHandle } from './schema.js';
import {
  PRUNE_CHUNK_ROWS,
  type RetentionLimits,
  type RowCounts,
  type StoreFailure,
  type WritePlan,
  type WriteStore,
} from './store.js';
import type { HostBeat } from '../actors/host-messages.js';
import { upsertHost } from '../hosts/hosts.js';

export function sqliteCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_') ? code : undefined;
}

const isBusy = (err: unknown) => /^SQLITE_(BUSY|LOCKED)/.test(sqliteCode(err) ?? '');

/** An error that belongs to one row rather than to the database: retrying would fail forever. */
function isRowError(err: unknown): boolean {
  const code = sqliteCode(err);
  return code === undefined || /^SQLITE_(CONSTRAINT|MISMATCH|TOOBIG|RANGE)/.test(code);
}

/**
 * Stands for one bound value in an INSERT written with the typed builder (`Kysely<Database>`):
 * the compiler checks the table, every column name and that no NOT NULL column is missing; kysely
 * compiles each value to a `?`, and only the SQL is kept. The hot path binds a row's values in
 * the order the columns are written here.
 */
const BOUND = null as never;

/** Tables whose rows carry `host` and a key starting with it: rows of host '' (written before 0006_hosts) are this monitor's. */
const CLAIMED_TABLES = ['bot_status', 'delivery_cursor', 'monitor_state', 'llm_budget_state'] as const;

/** Opens (creates, migrates) the file and prepares the writer's statements. Throws OpenDatabaseError. */
export async function openSqliteStore(
  path: string,
  config: MonitorConfig,
  options: { busyTimeoutMs: number; migrationBusyTimeoutMs: number },
): Promise<SqliteStore> {
  const handle = await openWriteDatabase(path, options);
  try {
    return new SqliteStore(handle, config);
  } catch (err) {
    await handle.db.destroy();
    throw new OpenDatabaseError(isBusy(err) ? 'locked' : 'cannot_open', err);
  }
}

export class SqliteStore implements WriteStore {
  readonly kind = 'sqlite' as const;
  readonly handle: DatabaseHandle;
  readonly #host: string;
  readonly #accounting: UsageAccounting;
  readonly #insertUsage: BetterSqlite3.Statement;
  readonly #upsertStatus: BetterSqlite3.Statement;
  readonly #insertEvent: BetterSqlite3.Statement;
  readonly #insertMetric: BetterSqlite3.Statement;
  readonly #insertHealth: BetterSqlite3.Statement;
  readonly #upsertCursor: BetterSqlite3.Statement;
  readonly #pruneRows: Record<string, BetterSqlite3.Statement>;
  readonly #pruneCursors: BetterSqlite3.Statement;
  /** better-sqlite3's wrapper: BEGIN (IMMEDIATE via `.immediate`), the body, COMMIT, or ROLLBACK if it throws. */
  readonly #transaction: BetterSqlite3.Transaction<
    (plan: WritePlan, counts: RowCounts, onRejected: (err: unknown, type: string) => void) => void
  >;

  constructor(handle: DatabaseHandle, config: MonitorConfig) {
    this.handle = handle;
    this.#host = config.hostName;
    const { db, sqlite } = handle;
    this.#claimRows();
    const prepare = (query: Compilable) => sqlite.prepare(query.compile().sql);
    this.#insertUsage = prepare(
      db
        .insertInto('llm_usage')
        .values({
          host: BOUND,
          ts: BOUND,
          channel: BOUND,
          model: BOUND,
          feature: BOUND,
          tokens_in: BOUND,
          tokens_out: BOUND,
          latency_ms: BOUND,
          cost_usd: BOUND,
          id: BOUND,
          tokens_cached: BOUND,
          tokens_reasoning: BOUND,
          provider: BOUND,
          status: BOUND,
          error_type: BOUND,
          request_id: BOUND,
        })
        .onConflict((oc) => oc.columns(['host', 'id']).doNothing()), // a re-sent call (same id) is stored once
    );
    this.#upsertStatus = prepare(
      db
        .insertInto('bot_status')
        .values({
          host: BOUND,
          channel: BOUND,
          pid: BOUND,
          status: BOUND,
          features_json: BOUND,
          registered_at: BOUND,
          last_seen: BOUND,
          last_heartbeat: BOUND,
          start_time: BOUND,
        })
        .onConflict((oc) =>
          oc.columns(['host', 'channel']).doUpdateSet((eb) => ({
            pid: eb.ref('excluded.pid'),
            status: eb.ref('excluded.status'),
            features_json: eb.ref('excluded.features_json'),
            registered_at: eb.ref('excluded.registered_at'),
            last_seen: eb.ref('excluded.last_seen'),
            last_heartbeat: eb.ref('excluded.last_heartbeat'),
            start_time: eb.ref('excluded.start_time'),
          })),
        ),
    );
    this.#insertEvent = prepare(
      db.insertInto('bot_events').values({
        host: BOUND,
        ts: BOUND,
        channel: BOUND,
        pid: BOUND,
        from_status: BOUND,
        to_status: BOUND,
        reason: BOUND,
      }),
    );
    this.#insertMetric = prepare(
      db.insertInto('bot_metrics').values({
        host: BOUND,
        ts: BOUND,
        channel: BOUND,
        pid: BOUND,
        rss_mb: BOUND,
        cpu_pct: BOUND,
        cpu_pct_machine: BOUND,
      }),
    );
    this.#insertHealth = prepare(
      db.insertInto('worker_health').values({
        host: BOUND,
        ts: BOUND,
        actor: BOUND,
        processed: BOUND,
        queue_depth: BOUND,
        dropped: BOUND,
        loop_lag_p99_ms: BOUND,
        loop_lag_max_ms: BOUND,
        heap_used_mb: BOUND,
        uptime_s: BOUND,
        restarts: BOUND,
        detail_json: BOUND,
      }),
    );
    this.#upsertCursor = prepare(
      db
        .insertInto('delivery_cursor')
        .values({ host: BOUND, sender: BOUND, seq: BOUND, updated_at: BOUND })
        .onConflict((oc) =>
          oc
            .columns(['host', 'sender'])
            .doUpdateSet((eb) => ({ seq: eb.ref('excluded.seq'), updated_at: eb.ref('excluded.updated_at') })),
        ),
    );
    // Deleting through a rowid sub-select (not DELETE … LIMIT, a compile-time option) bounds each chunk.
    // The rollup tables are WITHOUT ROWID: their chunk is chosen by primary key instead.
    const key = (table: string) =>
      (ROLLUP_TABLES as readonly string[]).includes(table)
        ? 'ts, channel, model, feature, provider, status, host'
        : 'rowid';
    this.#pruneRows = Object.fromEntries(
      ['bot_metrics', 'llm_usage', 'bot_events', 'worker_health', ...ROLLUP_TABLES].map((table) => [
        table,
        sqlite.prepare(
          `DELETE FROM ${table} WHERE (${key(table)}) IN (SELECT ${key(table)} FROM ${table} WHERE ts < ? LIMIT ${PRUNE_CHUNK_ROWS})`,
        ),
      ]),
    );
    this.#pruneCursors = sqlite.prepare('DELETE FROM delivery_cursor WHERE host = ? AND updated_at < ?');
    this.#accounting = new UsageAccounting(sqlite, config);
    this.#transaction = sqlite.transaction((plan, counts, onRejected) => this.#writePlan(plan, counts, onRejected));
  }

  /**
   * A file from before 0006_hosts (or one whose monitor had another name with an empty one) has
   * keyed rows of host '': they are this monitor's. Moved to its name unless it has that key
   * already — but for the rollups: their rows stay host '' with the raw rows they sum, and so do
   * their fold watermarks (reports read each host's rollups by its own). Rows of '' left without a
   * watermark (an earlier build's claim moved it, or the file is from before it) are folded whole
   * here and given one, so that reports find them.
   */
  #claimRows(): void {
    const { sqlite } = this.handle;
    const rollupKeys = `'${DAILY_UNTIL_KEY}', '${WEEKLY_UNTIL_KEY}'`;
    const kept = (table: string) => (table === 'monitor_state' ? ` AND key NOT IN (${rollupKeys})` : '');
    const unwatermarked = () =>
      sqlite.prepare(`SELECT 1 FROM llm_usage WHERE host = '' LIMIT 1`).get() !== undefined &&
      sqlite.prepare(`SELECT 1 FROM monitor_state WHERE host = '' AND key = '${DAILY_UNTIL_KEY}'`).get() === undefined;
    const claim = sqlite.transaction(() => {
      for (const table of CLAIMED_TABLES) {
        sqlite.prepare(`UPDATE OR IGNORE ${table} SET host = ? WHERE host = ''${kept(table)}`).run(this.#host);
        sqlite.prepare(`DELETE FROM ${table} WHERE host = ''${kept(table)}`).run();
      }
      if (!unwatermarked()) return;
      const last = sqlite
        .prepare<[], { value: string | null }>(
          `SELECT strftime('%Y-%m-%dT%H:00:00.000Z', max(ts), '+1 hour') AS value FROM llm_usage_hourly WHERE host = ''`,
        )
        .get()!.value;
      if (!last) return;
      const days = `${last.slice(0, 10)}T00:00:00.000Z`;
      for (const table of ['llm_usage_daily', 'llm_usage_weekly'])
        sqlite.prepare(`DELETE FROM ${table} WHERE host = ''`).run();
      sqlite.prepare(foldSql('llm_usage_hourly', 'llm_usage_daily')).run('', '', last);
      sqlite.prepare(foldSql('llm_usage_daily', 'llm_usage_weekly')).run('', '', days);
      // 0007 may have given '' a weekly watermark (from its last hour) already.
      const setState = sqlite.prepare(`INSERT INTO monitor_state (host, key, value, updated_at) VALUES ('', ?, ?, ?)
        ON CONFLICT (host, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`);
      setState.run(DAILY_UNTIL_KEY, last, isoTime(Date.now()));
      setState.run(WEEKLY_UNTIL_KEY, days, isoTime(Date.now()));
    });
    const unclaimed =
      CLAIMED_TABLES.some((t) => sqlite.prepare(`SELECT 1 FROM ${t} WHERE host = ''${kept(t)} LIMIT 1`).get()) ||
      unwatermarked();
    if (unclaimed) claim.immediate();
  }

  async loadCursors(): Promise<[string, number][]> {
    const rows = await this.handle.db
      .selectFrom('delivery_cursor')
      .select(['sender', 'seq'])
      .where('host', '=', this.#host)
      .execute();
    return rows.map((r) => [r.sender, r.seq]);
  }

  async write(plan: WritePlan, counts: RowCounts, onRejected: (err: unknown, type: string) => void): Promise<void> {
    this.#transaction.immediate(plan, counts, onRejected);
  }

  committed(): BudgetSignal[] {
    return this.#accounting.commit();
  }

  rolledBack(): void {
    this.#accounting.rollback();
  }

  classify(err: unknown): StoreFailure {
    const code = sqliteCode(err);
    return { kind: isBusy(err) ? 'busy' : 'other', code };
  }

  cost(row: Extract<RowItem, { type: 'llm_usage' }>): number | null {
    return this.#accounting.cost(row);
  }

  /** The transaction body (between BEGIN IMMEDIATE and COMMIT). */
  #writePlan(plan: WritePlan, counts: RowCounts, onRejected: (err: unknown, type: string) => void): void {
    const accounting = this.#accounting;
    accounting.begin();
    for (const item of plan.rows) {
      try {
        this.#writeRow(item, counts);
      } catch (err) {
        if (!isRowError(err)) throw err;
        counts.rejected++;
        onRejected(err, item.type);
      }
    }
    accounting.finish();
    const now = isoTime(Date.now());
    for (const [sender, seq] of plan.cursors) this.#upsertCursor.run(this.#host, sender, seq, now);
  }

  #writeRow(item: RowItem, counts: RowCounts): void {
    const host = this.#host;
    switch (item.type) {
      case 'llm_usage': {
        const cost = this.#accounting.cost(item);
        const { changes } = this.#insertUsage.run(
          host,
          isoTime(item.at),
          item.channel,
          item.model,
          item.feature,
          item.tokens_in,
          item.tokens_out,
          item.latency_ms ?? null,
          cost,
          item.id ?? null,
          item.tokens_cached ?? null,
          item.tokens_reasoning ?? null,
          item.provider ?? null,
          item.status ?? null,
          item.error_type ?? null,
          item.request_id ?? null,
        );
        if (changes === 0) counts.duplicate++;
        else {
          counts.llm_usage++;
          this.#accounting.stored(item, cost);
        }
        return;
      }
      case 'status':
        this.#upsertStatus.run(
          host,
          item.channel,
          item.pid,
          item.status,
          item.features_json ?? null,
          isoTime(item.registered_at),
          isoTime(item.last_seen),
          item.last_heartbeat === null ? null : isoTime(item.last_heartbeat),
          item.start_time ?? null,
        );
        counts.status++;
        return;
      case 'event':
        this.#insertEvent.run(host, isoTime(item.at), item.channel, item.pid, item.from ?? null, item.to, item.reason);
        counts.event++;
        return;
      case 'metric':
        this.#insertMetric.run(
          host,
          isoTime(item.at),
          item.channel,
          item.pid,
          item.rss_mb,
          item.cpu_pct,
          item.cpu_pct_machine,
        );
        counts.metric++;
        return;
      case 'health': {
        const h = item.health;
        this.#insertHealth.run(
          host,
          isoTime(item.at),
          h.actor,
          h.processed,
          h.queue_depth,
          h.dropped,
          h.loop_lag_p99_ms,
          h.loop_lag_max_ms,
          h.heap_used_mb,
          h.uptime_s,
          h.restarts,
          JSON.stringify(h.detail),
        );
        counts.health++;
        return;
      }
      default: {
        const unknown: never = item;
        throw new TypeError(`unknown write item type ${JSON.stringify((unknown as { type?: unknown }).type)}`);
      }
    }
  }

  async prune(retention: RetentionLimits, now: number, stop: () => boolean): Promise<PruneResult> {
    const result: PruneResult = {};
    for (const [table, ageMs] of Object.entries(retention)) {
      if (table === 'delivery_cursor' || ageMs === undefined) continue;
      const cutoff = isoTime(now - ageMs);
      let deleted = 0;
      let changes: number;
      do {
        if (stop()) return result;
        changes = this.#pruneRows[table].run(cutoff).changes;
        deleted += changes;
        await nextTurn(); // commits and control calls go between chunks
      } while (changes === PRUNE_CHUNK_ROWS);
      result[table as keyof PruneResult] = deleted;
    }
    if (stop()) return result;
    result.delivery_cursor = this.#pruneCursors.run(this.#host, isoTime(now - retention.delivery_cursor)).changes;
    return result;
  }

  async maintain(): Promise<void> {}

  budgets(now?: number): BudgetStatus[] {
    return this.#accounting.budgets(now);
  }

  unpricedRows(): number {
    return this.#accounting.stats().unpriced;
  }

  budgetSignals(): number {
    return this.#accounting.stats().budget_signals;
  }

  async digest(day: number, now: number, timeZone: string): Promise<DigestInput | null> {
    const { sqlite } = this.handle;
    const sent = sqlite
      .prepare("SELECT value FROM monitor_state WHERE host = ? AND key = 'digest_day'")
      .get(this.#host) as { value: string } | undefined;
    if (sent?.value === isoTime(day)) return null;
    const digest = await buildDigest(sqlite, now, timeZone, this.#accounting.budgets(now), this.#host);
    sqlite
      .prepare(
        "INSERT INTO monitor_state (host, key, value, updated_at) VALUES (?, 'digest_day', ?, ?) ON CONFLICT (host, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
      )
      .run(this.#host, isoTime(day), isoTime(now));
    return digest;
  }

  async recompute(sinceMs: number, stop: () => boolean, retryDelayMs: number): Promise<RecomputeResult> {
    const result = emptyRecompute(sinceMs);
    const accounting = this.#accounting;
    let next = accounting.recomputeStart(sinceMs);
    while (next !== null) {
      if (stop()) throw new Error(RECOMPUTE_STOPPED);
      const from = next;
      const chunk = this.handle.sqlite.transaction(() => accounting.recomputeChunk(sinceMs, from, result));
      try {
        next = chunk.immediate();
      } catch (err) {
        accounting.rollback(); // the chunk's rollup changes are not in the table
        if (!isBusy(err)) throw err;
        await delay(retryDelayMs); // locked: the same chunk again
        continue;
      }
      await nextTurn();
    }
    accounting.reloadBudgets();
    return result;
  }

  /** Budgets are re-checked by the next write (an empty plan does it at once). */
  get hasBudgets(): boolean {
    return this.#accounting.hasBudgets;
  }

  heartbeat(beat: HostBeat): Promise<void> {
    return upsertHost(this.handle.db, beat);
  }

  async close(): Promise<void> {
    await this.handle.db.destroy();
  }
}
