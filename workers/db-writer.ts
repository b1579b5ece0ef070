// The database writer actor: the only thread that writes SQLite.
//
//   ingest / registry / sampler ──batches──▶ held (rows + their acks)
//        every flushIntervalMs, or at once when maxRowsPerTransaction rows are held
//   held ──▶ BEGIN IMMEDIATE · rows · delivery_cursor · COMMIT ──▶ acks (cumulative per sender)
//                  │ SQLITE_BUSY/LOCKED or any other database error
//                  └──▶ ROLLBACK, keep every row, retry after retryDelayMs
//
// Exactly-once across writer restarts: the transaction that inserts a batch also stores its
// sender's sequence number in delivery_cursor. A restarted writer loads the cursors into its Links,
// so a batch that was committed but whose ack never reached the sender is, when re-sent,
// acknowledged without being inserted again.
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { MessagePort } from 'node:worker_threads';
import type BetterSqlite3 from 'better-sqlite3';
import type { Kysely } from 'kysely';
import { runActor, type ActorContext, type ActorInstance, type ActorStats, type PeerName } from '../src/actors/actor-host.js';
import { round2 } from '../src/actors/health.js';
import { Link } from '../src/actors/link.js';
import type { MonitorConfig } from '../src/config.js';
import { isoTime, openWriteDatabase, type Database, type DatabaseHandle } from '../src/db/schema.js';
import { RateLimitedLog, type Logger } from '../src/log.js';
import { costUsd, priceLookup, type ModelPrice } from '../src/pricing.js';
import type { DbWriterControlExtra, PruneResult, WriteItem } from './db-writer-messages.js';

const DAY_MS = 86_400_000;
const FIRST_PRUNE_DELAY_MS = 5_000;
const PRUNE_INTERVAL_MS = 3_600_000;
/** Rows per retention DELETE: each chunk is its own short transaction. */
const PRUNE_CHUNK_ROWS = 5_000;
/** Cursors only have to outlive a batch that was committed but not yet acknowledged (seconds). */
const CURSOR_KEEP_MS = DAY_MS;

/** Tables trimmed by retention, with the setting giving their age limit in days. */
const RETENTION = [
  ['bot_metrics', 'metricsDays'],
  ['llm_usage', 'usageDays'],
  ['bot_events', 'eventsDays'],
  ['worker_health', 'healthDays'],
] as const satisfies readonly (readonly [keyof Database, keyof MonitorConfig['retention']])[];
type RetainedTable = (typeof RETENTION)[number][0];

/** One incoming batch, held until the transaction containing it commits. */
interface HeldBatch {
  items: WriteItem[];
  ack: () => void;
  from: string;
  seq: number;
  /** Arrival order, for flush(): everything up to a serial is committed. */
  serial: number;
}

/** Rows written by one transaction attempt; added to the totals only if it commits. */
interface RowCounts {
  llm_usage: number;
  status: number;
  event: number;
  metric: number;
  health: number;
  rejected: number;
}

const noRows = (): RowCounts => ({ llm_usage: 0, status: 0, event: 0, metric: 0, health: 0, rejected: 0 });

function sqliteCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_') ? code : undefined;
}

/**
 * An error that belongs to one row (a value SQLite cannot bind, a constraint) rather than to the
 * database: retrying would fail forever, and SQLite has undone only that statement, so the row is
 * dropped and counted while the rest of the transaction goes on.
 */
function isRowError(err: unknown): boolean {
  const code = sqliteCode(err);
  return code === undefined || /^SQLITE_(CONSTRAINT|MISMATCH|TOOBIG|RANGE)/.test(code);
}

/** Prepares `INSERT INTO table (columns…) VALUES (?…)` compiled by kysely; bind values in `columns` order. */
function prepareInsert<T extends keyof Database>(
  { db, sqlite }: DatabaseHandle,
  table: T,
  columns: readonly (keyof Database[T] & string)[],
  conflictKey?: keyof Database[T] & string,
): BetterSqlite3.Statement {
  const untyped = db as unknown as Kysely<any>;
  let query = untyped.insertInto(table as string).values(Object.fromEntries(columns.map((c) => [c, null])));
  if (conflictKey) {
    const updated = columns.filter((c) => c !== conflictKey);
    query = query.onConflict((oc) => oc.column(conflictKey).doUpdateSet((eb) => Object.fromEntries(updated.map((c) => [c, eb.ref(`excluded.${c}`)]))));
  }
  return sqlite.prepare(query.compile().sql);
}

class DatabaseWriter implements ActorInstance<DbWriterControlExtra> {
  readonly control: DbWriterControlExtra = { prune: () => this.prune() };
  #log: Logger;
  #warn: RateLimitedLog;
  #handle: DatabaseHandle;
  #writer: MonitorConfig['writer'];
  #retention: MonitorConfig['retention'];
  #price: (model: string) => ModelPrice;
  #dropRatio: number;
  #insertUsage: BetterSqlite3.Statement;
  #upsertStatus: BetterSqlite3.Statement;
  #insertEvent: BetterSqlite3.Statement;
  #insertMetric: BetterSqlite3.Statement;
  #insertHealth: BetterSqlite3.Statement;
  #upsertCursor: BetterSqlite3.Statement;
  #pruneRows: Record<RetainedTable, BetterSqlite3.Statement>;
  #pruneCursors: BetterSqlite3.Statement;
  #transaction: BetterSqlite3.Transaction<(batches: HeldBatch[], last: Map<string, HeldBatch>, counts: RowCounts) => void>;

  #links = new Map<PeerName, Link<never, WriteItem>>();
  /** Cursors found at start-up; sender ids are globally unique, so every Link gets all of them. */
  #cursors: Map<string, number>;
  /** Highest seq received per sender, to spot a batch re-sent while its first copy is still held. */
  #receivedSeq = new Map<string, number>();
  #held: HeldBatch[] = [];
  #heldRows = 0;
  #receivedSerial = 0;
  #committedSerial = 0;
  #flushWaiters: { serial: number; resolve: () => void }[] = [];
  #timer: NodeJS.Timeout | null = null;
  #timerDelay = 0;
  #backingOff = false;
  #blockedSince: number | null = null;
  #closed = false;
  #shutdown: Promise<void> | null = null;
  #pruning: Promise<PruneResult> | null = null;
  #pruneTimers: NodeJS.Timeout[];

  #rows = noRows();
  #commits = 0;
  #busyRetries = 0;
  #otherErrors = 0;
  #lastCommitMs = 0;

  constructor(ctx: ActorContext, handle: DatabaseHandle, cursors: Map<string, number>) {
    this.#log = ctx.log;
    this.#warn = new RateLimitedLog(ctx.log);
    this.#handle = handle;
    this.#writer = ctx.config.writer;
    this.#retention = ctx.config.retention;
    this.#price = priceLookup(ctx.config.prices);
    this.#dropRatio = ctx.config.faults.writerDropRatio;
    this.#cursors = cursors;
    this.#insertUsage = prepareInsert(handle, 'llm_usage', ['ts', 'channel', 'model', 'feature', 'tokens_in', 'tokens_out', 'latency_ms', 'cost_usd']);
    this.#upsertStatus = prepareInsert(handle, 'bot_status', ['channel', 'pid', 'status', 'features_json', 'registered_at', 'last_seen', 'last_heartbeat', 'start_time'], 'channel');
    this.#insertEvent = prepareInsert(handle, 'bot_events', ['ts', 'channel', 'pid', 'from_status', 'to_status', 'reason']);
    this.#insertMetric = prepareInsert(handle, 'bot_metrics', ['ts', 'channel', 'pid', 'rss_mb', 'cpu_pct', 'cpu_pct_machine']);
    this.#insertHealth = prepareInsert(handle, 'worker_health', [
      'ts', 'actor', 'processed', 'queue_depth', 'dropped', 'loop_lag_p99_ms', 'loop_lag_max_ms', 'heap_used_mb', 'uptime_s', 'restarts', 'detail_json',
    ]);
    this.#upsertCursor = prepareInsert(handle, 'delivery_cursor', ['sender', 'seq', 'updated_at'], 'sender');
    // Deleting through a rowid sub-select (not DELETE … LIMIT, a compile-time option) bounds each chunk.
    const pruneSql = (table: string) => `DELETE FROM ${table} WHERE rowid IN (SELECT rowid FROM ${table} WHERE ts < ? LIMIT ${PRUNE_CHUNK_ROWS})`;
    this.#pruneRows = Object.fromEntries(RETENTION.map(([table]) => [table, handle.sqlite.prepare(pruneSql(table))])) as Record<RetainedTable, BetterSqlite3.Statement>;
    this.#pruneCursors = handle.sqlite.prepare('DELETE FROM delivery_cursor WHERE updated_at < ?');
    // better-sqlite3's wrapper: BEGIN IMMEDIATE (take the write lock up front, so a lock conflict
    // shows at BEGIN rather than halfway through), COMMIT, or ROLLBACK if the body throws.
    this.#transaction = handle.sqlite.transaction((batches, last, counts) => this.#writeBatches(batches, last, counts));
    this.#pruneTimers = [
      setTimeout(() => void this.prune(), FIRST_PRUNE_DELAY_MS),
      setInterval(() => void this.prune(), PRUNE_INTERVAL_MS),
    ];
    if (this.#dropRatio > 0) this.#log.warn({ writer_drop_ratio: this.#dropRatio }, 'fault injection: the writer silently loses this fraction of llm_usage rows');
  }

  attach(peer: PeerName, port: MessagePort): void {
    let link = this.#links.get(peer);
    if (!link) {
      link = new Link<never, WriteItem>(`db<-${peer}`, { onBatch: this.#receive });
      for (const [sender, seq] of this.#cursors) link.markDelivered(sender, seq);
      this.#links.set(peer, link);
    }
    link.attach(port);
  }

  stats(): ActorStats {
    const rows = this.#rows;
    return {
      processed: rows.llm_usage + rows.status + rows.event + rows.metric + rows.health,
      queue_depth: this.#heldRows,
      dropped: rows.rejected,
      detail: {
        commits: this.#commits,
        busy_retries: this.#busyRetries,
        other_errors: this.#otherErrors,
        last_commit_ms: this.#lastCommitMs,
        rows_llm_usage: rows.llm_usage,
        rows_status: rows.status,
        rows_events: rows.event,
        rows_metrics: rows.metric,
        rows_health: rows.health,
      },
    };
  }

  /** Resolves once every row held now is committed (waiting out a locked database if need be). */
  flush(): Promise<void> {
    const serial = this.#receivedSerial;
    if (this.#committedSerial >= serial) return Promise.resolve();
    return new Promise((resolve) => {
      this.#flushWaiters.push({ serial, resolve });
      this.#schedule();
    });
  }

  shutdown(): Promise<void> {
    this.#shutdown ??= (async () => {
      await this.flush();
      this.#closed = true;
      if (this.#timer) clearTimeout(this.#timer);
      for (const timer of this.#pruneTimers) clearTimeout(timer);
      await this.#pruning; // it stops at its next chunk; never close under it
      await this.#handle.db.destroy();
    })();
    return this.#shutdown;
  }

  /** One retention pass; concurrent callers share it. */
  prune(): Promise<PruneResult> {
    this.#pruning ??= this.#prunePass().finally(() => {
      this.#pruning = null;
    });
    return this.#pruning;
  }

  #receive = (items: WriteItem[], ack: () => void, from: string, seq: number): void => {
    // Re-sent over a new port while the first copy is still held (Link only drops what was
    // acknowledged): insert nothing, but keep the ack so the sender hears back on its new port.
    if (seq <= (this.#receivedSeq.get(from) ?? 0)) items = [];
    else this.#receivedSeq.set(from, seq);
    this.#held.push({ items, ack, from, seq, serial: ++this.#receivedSerial });
    this.#heldRows += items.length;
    this.#schedule();
  };

  /** Commits at once when a transaction's worth is held (or someone waits), else within flushIntervalMs. */
  #schedule(): void {
    if (this.#closed || this.#backingOff || this.#held.length === 0) return;
    const urgent = this.#heldRows >= this.#writer.maxRowsPerTransaction || this.#flushWaiters.length > 0;
    const delay = urgent ? 0 : this.#writer.flushIntervalMs;
    if (this.#timer) {
      if (this.#timerDelay <= delay) return;
      clearTimeout(this.#timer);
    }
    this.#timerDelay = delay;
    this.#timer = setTimeout(this.#commit, delay);
  }

  #commit = (): void => {
    this.#timer = null;
    this.#backingOff = false;
    if (this.#closed || this.#held.length === 0) return;
    // Whole batches only: a batch split over two transactions could be half-inserted when its
    // cursor says nothing, and re-sent in full after a crash. One oversized batch goes alone.
    const max = this.#writer.maxRowsPerTransaction;
    let n = 0;
    let rows = 0;
    do rows += this.#held[n++].items.length;
    while (n < this.#held.length && rows + this.#held[n].items.length <= max);
    const batches = this.#held.splice(0, n);
    const last = new Map<string, HeldBatch>();
    for (const batch of batches) last.set(batch.from, batch);
    const counts = noRows();
    const started = performance.now();
    try {
      this.#transaction.immediate(batches, last, counts);
    } catch (err) {
      this.#held = batches.concat(this.#held);
      this.#retryLater(err);
      return;
    }
    this.#lastCommitMs = round2(performance.now() - started);
    this.#commits++;
    this.#heldRows -= rows;
    for (const key of Object.keys(counts) as (keyof RowCounts)[]) this.#rows[key] += counts[key];
    // Acks are cumulative per sender: the last batch of each acknowledges the earlier ones.
    for (const batch of last.values()) batch.ack();
    this.#committedSerial = batches[batches.length - 1].serial;
    if (this.#flushWaiters.length > 0) {
      const waiting = [];
      for (const waiter of this.#flushWaiters) {
        if (waiter.serial > this.#committedSerial) waiting.push(waiter);
        else waiter.resolve();
      }
      this.#flushWaiters = waiting;
    }
    if (this.#blockedSince !== null) {
      this.#log.info({ blocked_ms: Date.now() - this.#blockedSince, busy_retries: this.#busyRetries, other_errors: this.#otherErrors }, 'database writable again; held rows committed');
      this.#blockedSince = null;
    }
    this.#schedule();
  };

  #retryLater(err: unknown): void {
    const code = sqliteCode(err);
    const fields = { code, queued_rows: this.#heldRows, retry_in_ms: this.#writer.retryDelayMs };
    if (code?.startsWith('SQLITE_BUSY') || code?.startsWith('SQLITE_LOCKED')) {
      this.#busyRetries++;
      this.#warn.warn('db_busy', { ...fields, busy_retries: this.#busyRetries }, 'database locked by another connection; rows kept, retrying');
    } else {
      this.#otherErrors++;
      this.#warn.warn(`db_error:${code ?? 'unknown'}`, { ...fields, err, other_errors: this.#otherErrors }, 'commit failed; rows kept, retrying');
    }
    this.#blockedSince ??= Date.now();
    this.#backingOff = true;
    this.#timerDelay = this.#writer.retryDelayMs;
    this.#timer = setTimeout(this.#commit, this.#writer.retryDelayMs);
  }

  /** The transaction body (runs between BEGIN IMMEDIATE and COMMIT). */
  #writeBatches(batches: HeldBatch[], last: Map<string, HeldBatch>, counts: RowCounts): void {
    for (const batch of batches) {
      for (const item of batch.items) {
        try {
          this.#writeRow(item, counts);
        } catch (err) {
          if (!isRowError(err)) throw err;
          counts.rejected++;
          this.#warn.warn('row_rejected', { err, item_type: item.t }, 'row rejected by the database; dropped');
        }
      }
    }
    const now = isoTime(Date.now());
    for (const [sender, batch] of last) this.#upsertCursor.run(sender, batch.seq, now);
  }

  #writeRow(item: WriteItem, counts: RowCounts): void {
    switch (item.t) {
      case 'llm_usage':
        if (this.#dropRatio > 0 && Math.random() < this.#dropRatio) return; // fault injection, see config.faults
        this.#insertUsage.run(
          isoTime(item.at), item.channel, item.model, item.feature, item.tokens_in, item.tokens_out, item.latency_ms ?? null,
          costUsd(this.#price(item.model), item.tokens_in, item.tokens_out),
        );
        counts.llm_usage++;
        return;
      case 'status':
        this.#upsertStatus.run(
          item.channel, item.pid, item.status, item.features_json ?? null, isoTime(item.registered_at), isoTime(item.last_seen),
          item.last_heartbeat === null ? null : isoTime(item.last_heartbeat), item.start_time ?? null,
        );
        counts.status++;
        return;
      case 'event':
        this.#insertEvent.run(isoTime(item.at), item.channel, item.pid, item.from ?? null, item.to, item.reason);
        counts.event++;
        return;
      case 'metric':
        this.#insertMetric.run(isoTime(item.at), item.channel, item.pid, item.rss_mb, item.cpu_pct, item.cpu_pct_machine);
        counts.metric++;
        return;
      case 'health': {
        const h = item.health;
        this.#insertHealth.run(
          isoTime(item.at), h.actor, h.processed, h.queue_depth, h.dropped, h.loop_lag_p99_ms, h.loop_lag_max_ms, h.heap_used_mb, h.uptime_s, h.restarts,
          JSON.stringify(h.detail),
        );
        counts.health++;
        return;
      }
      default: {
        const unknown: never = item;
        throw new TypeError(`unknown write item type ${JSON.stringify((unknown as { t?: unknown }).t)}`);
      }
    }
  }

  async #prunePass(): Promise<PruneResult> {
    const result: PruneResult = {};
    const now = Date.now();
    try {
      for (const [table, setting] of RETENTION) {
        const days = this.#retention[setting];
        if (days <= 0) continue; // 0 keeps forever
        const cutoff = isoTime(now - days * DAY_MS);
        let deleted = 0;
        let changes: number;
        do {
          if (this.#closed) return result;
          changes = this.#pruneRows[table].run(cutoff).changes;
          deleted += changes;
          await nextTurn(); // commits and control calls go between chunks
        } while (changes === PRUNE_CHUNK_ROWS);
        result[table] = deleted;
      }
      if (this.#closed) return result;
      result.delivery_cursor = this.#pruneCursors.run(isoTime(now - CURSOR_KEEP_MS)).changes;
    } catch (err) {
      // Nothing is lost by deleting later: the next pass picks up where this one stopped.
      this.#warn.warn('prune_failed', { err, code: sqliteCode(err) }, 'retention pass stopped early');
    }
    if (Object.values(result).some((n) => n > 0)) this.#log.info({ deleted: result }, 'retention pass');
    return result;
  }
}

runActor<DbWriterControlExtra>(async (ctx) => {
  const handle = await openWriteDatabase(ctx.config.dbPath, { busyTimeoutMs: ctx.config.writer.busyTimeoutMs });
  const rows = await handle.db.selectFrom('delivery_cursor').select(['sender', 'seq']).execute();
  ctx.log.info({ db: ctx.config.dbPath, cursors: rows.length, incarnation: ctx.incarnation }, 'database writer started');
  return new DatabaseWriter(ctx, handle, new Map(rows.map((r) => [r.sender, r.seq])));
});
