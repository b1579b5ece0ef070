// The database writer actor: the only thread that writes the store (SQLite or PostgreSQL,
// src/db/store.ts: what is backend-specific lives in src/db/sqlite-store.ts and src/db/postgres-store.ts).
//
//   ingest / registry / sampler ──batches──▶ held (rows + their acks)
//        every flushIntervalMs, or at once when maxRowsPerTransaction rows are held
//   held ──▶ plan (cursors) ──▶ store: BEGIN · rows · delivery_cursor · COMMIT ──▶ acks (cumulative per sender)
//                  │ SQLITE_BUSY/LOCKED, a lost PostgreSQL connection or any other database error
//                  └──▶ ROLLBACK, keep every row, retry after retryDelayMs (one attempt in flight at a time)
//
//   database locked or missing for long (held > maxHeldRows), or past the shutdown deadline
//   held ──▶ spool file (append, fsync) ──▶ acks          replayed first once the database is writable
//
// Exactly-once: the transaction that inserts a batch also stores its sender's sequence number in
// delivery_cursor, and a batch whose seq is not above its sender's cursor is acknowledged without
// being inserted. That covers a batch committed but whose ack never reached the sender (re-sent
// after a writer restart, or while its first copy was still held) and spool replay: spooled
// batches keep their (sender, seq), so a replay interrupted after its commit inserts nothing twice.
// One level down the same holds for the registry's 'caused' items (the rows one ingest batch
// caused, keyed by that batch's sender and seq): a restarted registry applies the ingest batches
// it is re-sent again, and their rows are skipped when the first copy is committed, or comes
// earlier in the same transaction or spool replay.
// llm_usage rows with a client id are also stored once per id (a repeat counts as a duplicate).
//
// Out: 'alerter' Link<AlerterInput> ('db-to-alerter'): budget levels and digests; its acks gate nothing.
//
// Start-up never fails on the database: the actor is ready at once, and a locked, missing,
// unreachable or unmigrated database is retried every retryDelayMs while rows are held (health says why).
import { setImmediate as nextTurn, setTimeout as delay } from 'node:timers/promises';
import type { MessagePort } from 'node:worker_threads';
import {
  runActor,
  type ActorContext,
  type ActorInstance,
  type ActorStats,
  type PeerName,
} from '../src/actors/actor-host.js';
import { round2 } from '../src/actors/health.js';
import { Link } from '../src/actors/link.js';
import type { MonitorConfig } from '../src/config.js';
import { describeBackend, parseBackend, type Backend } from '../src/db/backend.js';
import { openPostgresStore } from '../src/db/postgres-store.js';
import { OpenDatabaseError, type OpenFailure } from '../src/db/schema.js';
import { openSqliteStore } from '../src/db/sqlite-store.js';
import { Spool, spoolPathFor, type SpoolBatch, type SpoolReader } from '../src/db/spool.js';
import { noRows, type RetentionLimits, type RowCounts, type WritePlan, type WriteStore } from '../src/db/store.js';
import { RateLimitedLog, type Logger } from '../src/log.js';
import type { RecomputeResult } from '../src/llm/accounting.js';
import type { BudgetSignal } from '../src/llm/budgets.js';
import { DigestSchedule } from '../src/llm/digest.js';
import type { AlerterInput } from '../src/actors/alerter-messages.js';
import type { DbWriterControlExtra, PruneResult, RowItem, WriteItem } from '../src/actors/db-writer-messages.js';

const DAY_MS = 86_400_000;
const FIRST_PRUNE_DELAY_MS = 5_000;
const PRUNE_INTERVAL_MS = 3_600_000;
/** Cursors only have to outlive a batch that was committed but not yet acknowledged (seconds). */
const CURSOR_KEEP_MS = DAY_MS;
/** One attempt to open/migrate a locked database waits at most this long, so the thread stays responsive. */
const OPEN_BUSY_TIMEOUT_MS = 250;

/** Tables trimmed by retention, with the setting giving their age limit in days. */
const RETENTION = [
  ['bot_metrics', 'metricsDays'],
  ['llm_usage', 'usageDays'],
  ['bot_events', 'eventsDays'],
  ['worker_health', 'healthDays'],
  ['llm_usage_hourly', 'usageRollupDays'],
  ['llm_usage_daily', 'usageRollupDays'],
  ['llm_usage_weekly', 'usageRollupDays'],
] as const satisfies readonly (readonly [string, keyof MonitorConfig['retention']])[];

/** One incoming batch, held until the transaction containing it commits or it is spooled. */
interface HeldBatch extends SpoolBatch<WriteItem> {
  ack: () => void;
  /** Arrival order, for flush(): everything up to a serial is committed or spooled. */
  serial: number;
  receivedAt: number;
}

/** A spool replay under way: its file, and the chunk read but not committed yet (tried again first). */
interface SpoolReplay {
  reader: SpoolReader<WriteItem>;
  chunk: SpoolBatch<WriteItem>[];
  rows: number;
  batches: number;
  /** Batches skipped: their sender's cursor (or an earlier copy in this replay) says committed. */
  alreadyCommitted: number;
}

class DatabaseWriter implements ActorInstance<DbWriterControlExtra> {
  readonly control: DbWriterControlExtra = {
    prune: () => this.prune(),
    spoolAfter: (at) => this.#spoolAfter(at),
    spoolReplayed: (waitMs) => this.#spoolReplayed(waitMs),
    recompute: (sinceMs) => this.#recompute(sinceMs),
    budgets: async () => this.#st?.budgets() ?? null,
    // The heartbeat is not data to keep: a store that is not writable now just misses one.
    hostBeat: async (beat) =>
      this.#st
        ? this.#st.heartbeat(beat).then(
            () => true,
            () => false,
          )
        : false,
  };
  #log: Logger;
  #warn: RateLimitedLog;
  #config: MonitorConfig;
  #writer: MonitorConfig['writer'];
  #retention: MonitorConfig['retention'];
  #digest: DigestSchedule | null = null;
  #recomputing: Promise<RecomputeResult> | null = null;
  #dropRatio: number;
  #backend: Backend;
  /** The store once open; null while it is being opened (or cannot be). */
  #st: WriteStore | null = null;
  #opening: Promise<void> | null = null;
  /** The commit (or replay chunk) under way: one transaction at a time, nothing spooled from under it. */
  #inFlight: Promise<boolean> | null = null;
  /**
   * A PostgreSQL attempt failed, maybe during COMMIT (outcome unknown): reload the cursors before
   * the next plan, so a batch that did commit is skipped.
   */
  #cursorsStale = false;
  /** The store refuses every attempt (cannot be reached, or every commit fails): since when and why. */
  #down: { since: number; error: string; kind: string } | null = null;
  /** Why the database is not open (null once it is), since when, and the error text. */
  #waiting: { why: OpenFailure; since: number; error: string } | null = null;
  #spool: Spool<WriteItem>;
  /** The spool file may hold rows not yet in the database. */
  #spoolPending: boolean;
  /** Shutdown deadline: from then on rows that meet a locked database are spooled at once. */
  #spoolAt: number | null = null;
  #spoolTimer: NodeJS.Timeout | null = null;
  #replay: SpoolReplay | null = null;
  /** Set while a replay pass runs: nothing else is committed meanwhile (a sender's older batches may be in the spool). */
  #replaying: Promise<void> | null = null;
  #replayedWaiters: (() => void)[] = [];

  #links = new Map<PeerName, Link<never, WriteItem>>();
  /** Budget levels and digests for the alerter (fire-and-forget: a down alerter only makes it hold, bounded). */
  readonly #alerter = new Link<AlerterInput>('db-to-alerter', { maxPending: 10_000 });
  /** Highest committed seq per sender (delivery_cursor), loaded on open and kept current. */
  #committed = new Map<string, number>();
  #held: HeldBatch[] = [];
  #heldRows = 0;
  #receivedSerial = 0;
  /** Everything up to this arrival serial is committed or spooled. */
  #handledSerial = 0;
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
  #spooled = { rows: 0, replayed: 0, skippedLines: 0, full: 0, errors: 0, lost: 0 };

  constructor(ctx: ActorContext) {
    this.#log = ctx.log;
    this.#warn = new RateLimitedLog(ctx.log);
    this.#config = ctx.config;
    this.#writer = ctx.config.writer;
    this.#retention = ctx.config.retention;
    this.#dropRatio = ctx.config.faults.writerDropRatio;
    this.#backend = parseBackend(ctx.config.dbPath);
    this.#spool = new Spool(spoolPathFor(ctx.config), ctx.config.spool.maxBytes);
    this.#spoolPending = this.#spool.pending();
    this.#pruneTimers = [
      setTimeout(() => void this.prune(), FIRST_PRUNE_DELAY_MS),
      setInterval(() => void this.prune(), PRUNE_INTERVAL_MS),
    ];
    if (this.#dropRatio > 0)
      this.#log.warn(
        { writer_drop_ratio: this.#dropRatio },
        'fault injection: the writer silently loses this fraction of llm_usage rows',
      );
  }

  /**
   * One attempt to open (create, migrate) the database and load the cursors; on failure the
   * reason is kept for health and logged (rate-limited). Never throws.
   */
  open(): Promise<void> {
    this.#opening ??= (async () => {
      try {
        const store =
          this.#backend.kind === 'sqlite'
            ? await openSqliteStore(this.#backend.path, this.#config, {
                busyTimeoutMs: this.#writer.busyTimeoutMs,
                migrationBusyTimeoutMs: OPEN_BUSY_TIMEOUT_MS,
              })
            : await openPostgresStore(this.#backend.url, this.#config, {
                onIdleError: (err) =>
                  this.#warn.warn(
                    'pg_idle_error',
                    { err },
                    'an idle PostgreSQL connection failed (dropped from the pool)',
                  ),
              });
        if (this.#closed) {
          await store.close();
          return;
        }
        const cursors = await this.#loadCursors(store);
        this.#st = store;
        this.#startDigest();
        const waited = this.#waiting;
        this.#waiting = null;
        this.#log.info(
          {
            db: describeBackend(this.#backend),
            host: this.#config.hostName,
            cursors,
            spool_pending: this.#spoolPending,
            ...(waited && { waited_ms: Date.now() - waited.since, waited_for: waited.why }),
          },
          'database open for writing',
        );
      } catch (err) {
        const why: OpenFailure = err instanceof OpenDatabaseError ? err.failure : 'cannot_open';
        this.#waiting = {
          why,
          since: this.#waiting?.since ?? Date.now(),
          error: (err as Error)?.message ?? String(err),
        };
        this.#warn.warn(
          `db_open:${why}`,
          {
            db: describeBackend(this.#backend),
            why,
            err,
            held_rows: this.#heldRows,
            retry_in_ms: this.#writer.retryDelayMs,
          },
          'database not writable yet; rows are held (then spooled) and it is retried',
        );
      }
    })().finally(() => {
      this.#opening = null;
      this.#schedule(); // replay a spool, commit what is held, or keep trying to open
    });
    return this.#opening;
  }

  /** This host's committed cursors from the store (never moved back: a newer one in memory stays). */
  async #loadCursors(store: WriteStore): Promise<number> {
    const cursors = await store.loadCursors();
    for (const [sender, seq] of cursors) if ((this.#committed.get(sender) ?? 0) < seq) this.#committed.set(sender, seq);
    this.#cursorsStale = false;
    return cursors.length;
  }

  attach(peer: PeerName, port: MessagePort): void {
    if (peer === 'alerter') {
      this.#alerter.attach(port);
      return;
    }
    let link = this.#links.get(peer);
    if (!link) {
      link = new Link<never, WriteItem>(`db<-${peer}`, { onBatch: this.#receive });
      this.#links.set(peer, link);
    }
    link.attach(port);
  }

  stats(): ActorStats {
    const rows = this.#rows;
    const waiting = this.#waiting;
    return {
      processed: rows.llm_usage + rows.status + rows.event + rows.metric + rows.health,
      queue_depth: this.#heldRows,
      dropped: rows.rejected,
      detail: {
        store: this.#backend.kind,
        // 1 while the store cannot be opened or refuses every commit (PostgreSQL down, SQLite locked), with why.
        store_down: waiting || this.#down ? 1 : 0,
        store_down_s: waiting
          ? Math.round((Date.now() - waiting.since) / 1000)
          : this.#down
            ? Math.round((Date.now() - this.#down.since) / 1000)
            : null,
        store_error: waiting?.error ?? this.#down?.error ?? null,
        // null when the database is open; else locked | cannot_open | migration_pending.
        waiting: waiting?.why ?? null,
        waiting_s: waiting ? Math.round((Date.now() - waiting.since) / 1000) : null,
        waiting_error: waiting?.error ?? null,
        // Open, but every commit finds the database locked: since how long (MonitorIngestPaused).
        blocked_s: this.#blockedSince === null ? null : Math.round((Date.now() - this.#blockedSince) / 1000),
        commits: this.#commits,
        busy_retries: this.#busyRetries,
        other_errors: this.#otherErrors,
        last_commit_ms: this.#lastCommitMs,
        rows_llm_usage: rows.llm_usage,
        rows_status: rows.status,
        rows_events: rows.event,
        rows_metrics: rows.metric,
        rows_health: rows.health,
        duplicate: rows.duplicate,
        redelivered: rows.redelivered,
        reapplied: rows.reapplied,
        spool_pending: this.#spoolPending ? 1 : 0,
        rows_spooled: this.#spooled.rows,
        rows_replayed: this.#spooled.replayed,
        spool_skipped_lines: this.#spooled.skippedLines,
        spool_full: this.#spooled.full,
        spool_errors: this.#spooled.errors,
        // llm_usage rows stored with cost NULL (no price for the model at the row's time).
        llm_unpriced: this.#st?.unpricedRows() ?? 0,
        budget_signals: this.#st?.budgetSignals() ?? 0,
      },
    };
  }

  /** Resolves once every row held now is committed or spooled (waiting out a locked database if need be). */
  flush(): Promise<void> {
    const serial = this.#receivedSerial;
    if (this.#handledSerial >= serial) return Promise.resolve();
    return new Promise((resolve) => {
      this.#flushWaiters.push({ serial, resolve });
      this.#schedule();
    });
  }

  /**
   * Commits what it can until the spool deadline (spoolAfter, else half of shutdownMs from now),
   * spools the rest, then closes the database. The supervisor terminates the thread only after
   * this: a thread terminated inside a native SQLite call aborts the whole process (SIGABRT).
   */
  shutdown(): Promise<void> {
    this.#shutdown ??= (async () => {
      this.#spoolAfter(Date.now() + this.#config.supervisor.shutdownMs / 2);
      // flush() resolves once all is committed or spooled; a spool that cannot be written would
      // keep it waiting, so it is given until just after the deadline and the rest is counted lost.
      await Promise.race([
        this.flush(),
        delay(Math.max(0, this.#spoolAt! - Date.now()) + 2 * this.#writer.retryDelayMs + 100),
      ]);
      this.#spoolHeld(0);
      if (this.#heldRows > 0) {
        this.#spooled.lost += this.#heldRows;
        this.#log.error(
          { rows_lost: this.#heldRows, spool: this.#spool.path },
          'shutdown: rows could be neither committed nor spooled',
        );
      }
      this.#closed = true;
      if (this.#timer) clearTimeout(this.#timer);
      if (this.#spoolTimer) clearTimeout(this.#spoolTimer);
      for (const timer of this.#pruneTimers) clearTimeout(timer);
      this.#digest?.stop();
      await this.#opening;
      await this.#recomputing?.catch(() => {});
      await this.#pruning; // it stops at its next chunk; never close under it
      await this.#replaying; // likewise; an unfinished replay goes on at the next start
      await this.#inFlight; // a commit under way ends (or fails) before its connection closes
      await this.#st?.close();
      this.#st = null;
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
    // A batch re-sent while its first copy is still held is held again; the commit skips it by
    // its cursor and its ack goes out on the new port.
    this.#held.push({ items, ack, from, seq, serial: ++this.#receivedSerial, receivedAt: Date.now() });
    this.#heldRows += items.length;
    // The bound holds between retries too; down to half, so the next fsync is max/2 rows away.
    if (this.#heldRows > this.#writer.maxHeldRows && (this.#blockedSince !== null || !this.#st || this.#replaying))
      this.#spoolHeld(Math.floor(this.#writer.maxHeldRows / 2));
    this.#schedule();
  };

  #spoolAfter(at: number): void {
    if (this.#spoolAt !== null && this.#spoolAt <= at) return;
    this.#spoolAt = at;
    if (this.#spoolTimer) clearTimeout(this.#spoolTimer);
    this.#spoolTimer = setTimeout(
      () => {
        this.#spoolTimer = null;
        // Past the deadline a commit is tried once more (unless one is waiting to retry anyway).
        if (this.#st && !this.#backingOff && !this.#replaying && !this.#inFlight) this.#attempt();
        else if (!this.#inFlight) this.#spoolHeld(0); // else the commit under way decides: committed, or spooled on failure
      },
      Math.max(0, at - Date.now()),
    );
  }

  #pastDeadline(): boolean {
    return this.#spoolAt !== null && Date.now() >= this.#spoolAt;
  }

  /** Commits at once when a transaction's worth is held (or someone waits), else within flushIntervalMs. */
  #schedule(): void {
    if (this.#closed || this.#backingOff || this.#replaying || this.#inFlight) return; // a replay or commit schedules when it ends
    if (this.#held.length === 0 && !this.#spoolPending && this.#st) return;
    const urgent =
      this.#heldRows >= this.#writer.maxRowsPerTransaction ||
      this.#flushWaiters.length > 0 ||
      this.#pastDeadline() ||
      !this.#st;
    const delay = urgent ? 0 : this.#writer.flushIntervalMs;
    if (this.#timer) {
      if (this.#timerDelay <= delay) return;
      clearTimeout(this.#timer);
    }
    this.#timerDelay = delay;
    this.#timer = setTimeout(this.#attempt, delay);
  }

  #attempt = (): void => {
    this.#timer = null;
    this.#backingOff = false;
    if (this.#closed) return;
    if (!this.#st) {
      this.#backingOff = true; // nothing else starts an attempt while the open runs
      void this.open().then(() => {
        this.#backingOff = false;
        if (this.#st) this.#attempt();
        else this.#retryLater(null);
      });
      return;
    }
    if (this.#spoolPending) {
      // Past the shutdown deadline no replay starts (the next start does it, the spool stays as
      // it is); what is held joins the spool behind it, never committed ahead of it.
      if (this.#pastDeadline() && !this.#replaying) {
        this.#spoolHeld(0);
        return;
      }
      this.#replaying ??= this.#replaySpool().finally(() => {
        this.#replaying = null;
        this.#schedule();
      });
      return;
    }
    if (this.#held.length > 0) this.#commit();
  };

  #commit(): void {
    // Whole batches only: a batch split over two transactions could be half-inserted when its
    // cursor says nothing, and re-sent in full after a crash. One oversized batch goes alone.
    const max = this.#writer.maxRowsPerTransaction;
    let n = 0;
    let rows = 0;
    do rows += this.#held[n++].items.length;
    while (n < this.#held.length && rows + this.#held[n].items.length <= max);
    // Taken off #held only once committed: a failed attempt may spool what is held (maxHeldMs,
    // the deadline), and the spool must get these oldest batches first — replay goes in file
    // order, and a newer batch replayed first would make the cursor skip them.
    const batches = this.#held.slice(0, n);
    void this.#transact(batches).then((ok) => {
      if (!ok) return;
      // Spooled while the commit ran (the shutdown deadline, maxHeldRows)? Then they are acknowledged
      // already, and replay skips them by their cursor: only those still held are taken off here.
      const done = new Set<HeldBatch>(batches);
      let still = 0;
      while (still < this.#held.length && done.has(this.#held[still])) still++;
      const taken = this.#held.splice(0, still);
      this.#heldRows -= taken.reduce((sum, b) => sum + b.items.length, 0);
      this.#acknowledge(taken);
      if (this.#blockedSince !== null) {
        this.#log.info(
          {
            blocked_ms: Date.now() - this.#blockedSince,
            busy_retries: this.#busyRetries,
            other_errors: this.#otherErrors,
          },
          'database writable again; held rows committed',
        );
        this.#blockedSince = null;
      }
      this.#schedule();
    });
  }

  /**
   * One transaction over `batches`; false (rolled back, retry scheduled) when the database refused
   * it. One at a time (#inFlight): nothing else is attempted until it settles.
   */
  #transact(batches: SpoolBatch<WriteItem>[]): Promise<boolean> {
    const run = async (): Promise<boolean> => {
      const st = this.#st!;
      const counts = noRows();
      const started = performance.now();
      try {
        if (this.#cursorsStale) await this.#loadCursors(st);
        const plan = this.#plan(batches, counts);
        await st.write(plan, counts, (err, type) =>
          this.#warn.warn('row_rejected', { err, item_type: type }, 'row rejected by the database; dropped'),
        );
        for (const [sender, seq] of plan.cursors) this.#committed.set(sender, seq);
      } catch (err) {
        st.rolledBack();
        if (st.kind === 'postgres') this.#cursorsStale = true;
        this.#retryLater(err);
        return false;
      }
      this.#down = null;
      this.#signalBudgets(st.committed());
      this.#lastCommitMs = round2(performance.now() - started);
      this.#commits++;
      for (const key of Object.keys(counts) as (keyof RowCounts)[]) this.#rows[key] += counts[key];
      return true;
    };
    const attempt: Promise<boolean> = run().finally(() => {
      if (this.#inFlight === attempt) this.#inFlight = null;
    });
    this.#inFlight = attempt;
    return attempt;
  }

  /** `batches` (the oldest held ones, in order) are committed or spooled: ack them, wake flush(). */
  #acknowledge(batches: HeldBatch[]): void {
    if (batches.length === 0) return;
    // Acks are cumulative per sender: the last batch of each acknowledges the earlier ones.
    const last = new Map<string, HeldBatch>();
    for (const batch of batches) last.set(batch.from, batch);
    for (const batch of last.values()) batch.ack();
    this.#handledSerial = batches[batches.length - 1].serial;
    if (this.#flushWaiters.length === 0) return;
    const waiting = [];
    for (const waiter of this.#flushWaiters) {
      if (waiter.serial > this.#handledSerial) waiting.push(waiter);
      else waiter.resolve();
    }
    this.#flushWaiters = waiting;
  }

  /** True once no spool waits for replay (at once if none does); false after `waitMs`. */
  #spoolReplayed(waitMs: number): Promise<boolean> {
    if (!this.#spoolPending) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.#replayedWaiters = this.#replayedWaiters.filter((w) => w !== waiter);
        resolve(false);
      }, waitMs);
      this.#replayedWaiters.push(waiter);
    });
  }

  /**
   * Inserts the spool's batches not yet committed, maxRowsPerTransaction rows per transaction
   * (each with its cursors), yielding between them so pings and control calls are answered; then
   * removes the file, and replays a spool written meanwhile. Returns early when the database
   * refused (retry scheduled: what was committed stays committed, its cursors say so) or the
   * writer closes (the `.replaying` file is replayed at the next start).
   */
  async #replaySpool(): Promise<void> {
    const max = this.#writer.maxRowsPerTransaction;
    while (!this.#closed) {
      let replay = this.#replay;
      try {
        if (!replay) {
          const reader = this.#spool.openReplay();
          if (!reader) {
            this.#spoolPending = false;
            for (const resolve of this.#replayedWaiters.splice(0)) resolve();
            return;
          }
          replay = this.#replay = { reader, chunk: [], rows: 0, batches: 0, alreadyCommitted: 0 };
        }
        if (replay.chunk.length === 0) {
          const batches = replay.reader.next(max);
          if (batches.length === 0) {
            this.#finishReplay(replay);
            continue;
          }
          const newest = new Map<string, number>();
          for (const batch of batches) {
            if (batch.seq <= (newest.get(batch.from) ?? this.#committed.get(batch.from) ?? 0)) {
              replay.alreadyCommitted++;
              continue;
            }
            newest.set(batch.from, batch.seq);
            replay.chunk.push(batch);
          }
          if (replay.chunk.length === 0) {
            await nextTurn(); // a long run of committed batches (a replay cut short before) is skipped a chunk per turn too
            continue;
          }
        }
      } catch (err) {
        this.#spooled.errors++;
        this.#warn.warn(
          'spool_read',
          { err, spool: this.#spool.replayingPath },
          'spool cannot be read; retrying (rows held meanwhile)',
        );
        replay?.reader.close();
        this.#replay = null;
        this.#retryLater(null);
        return;
      }
      if (!(await this.#transact(replay.chunk))) return;
      const rows = replay.chunk.reduce((sum, b) => sum + b.items.length, 0);
      replay.rows += rows;
      replay.batches += replay.chunk.length;
      this.#spooled.replayed += rows;
      replay.chunk = [];
      await nextTurn(); // pings, control calls and incoming batches go between chunks
    }
    this.#replay?.reader.close();
    this.#replay = null;
  }

  #finishReplay(replay: SpoolReplay): void {
    replay.reader.close();
    this.#replay = null;
    this.#spool.removeReplayed();
    const skipped = replay.reader.skippedLines;
    this.#spooled.skippedLines += skipped;
    this.#log[skipped > 0 ? 'warn' : 'info'](
      {
        spool: replay.reader.path,
        rows_replayed: replay.rows,
        batches: replay.batches,
        already_committed: replay.alreadyCommitted,
        skipped_lines: skipped,
      },
      'spool replayed into the database and removed',
    );
  }

  /**
   * Spools the oldest held batches until at most `keepRows` rows are held, acknowledging them
   * once the file is fsync'd. Batches already committed are acknowledged without being written.
   */
  #spoolHeld(keepRows: number): void {
    let n = 0;
    let rows = 0;
    while (n < this.#held.length && this.#heldRows - rows > keepRows) rows += this.#held[n++].items.length;
    if (n === 0) return;
    const batches = this.#held.slice(0, n);
    const fresh = batches.filter((b) => b.seq > (this.#committed.get(b.from) ?? 0));
    const freshRows = fresh.reduce((sum, b) => sum + b.items.length, 0);
    let written: boolean;
    try {
      written = this.#spool.append(fresh);
    } catch (err) {
      this.#spooled.errors++;
      this.#warn.warn(
        'spool_write',
        { err, spool: this.#spool.path, held_rows: this.#heldRows },
        'spool cannot be written; rows stay held',
      );
      return;
    }
    if (!written) {
      this.#spooled.full++;
      this.#warn.warn(
        'spool_full',
        { spool: this.#spool.path, max_bytes: this.#config.spool.maxBytes, held_rows: this.#heldRows },
        'spool is full; rows stay held (and are lost if the monitor must exit)',
      );
      return;
    }
    this.#held.splice(0, n);
    this.#heldRows -= rows;
    if (freshRows > 0) this.#spoolPending = true;
    this.#spooled.rows += freshRows;
    this.#warn.warn(
      'spooled',
      {
        spool: this.#spool.path,
        rows_spooled: freshRows,
        held_rows: this.#heldRows,
        why: this.#pastDeadline() ? 'shutdown deadline' : 'database blocked past writer.maxHeldRows / maxHeldMs',
      },
      'rows spooled to disk; replayed once the database is writable',
    );
    this.#acknowledge(batches);
  }

  /** After a refused attempt (err null: the database could not be opened): spool if due, retry later. */
  #retryLater(err: unknown): void {
    if (err !== null && this.#st) {
      const { kind, code } = this.#st.classify(err);
      const message = err instanceof Error ? err.message : JSON.stringify(err);
      const fields = { code, queued_rows: this.#heldRows, retry_in_ms: this.#writer.retryDelayMs };
      if (kind === 'down') {
        this.#down = { since: this.#down?.since ?? Date.now(), error: message, kind };
        this.#otherErrors++;
        this.#warn.warn(
          'db_down',
          { ...fields, err: message, other_errors: this.#otherErrors },
          'database unreachable (connection lost or refused); rows kept, retrying',
        );
      } else if (kind === 'busy') {
        this.#busyRetries++;
        this.#warn.warn(
          'db_busy',
          { ...fields, busy_retries: this.#busyRetries },
          'database locked by another connection; rows kept, retrying',
        );
      } else {
        this.#otherErrors++;
        this.#warn.warn(
          `db_error:${code ?? 'unknown'}`,
          { ...fields, err, other_errors: this.#otherErrors },
          'commit failed; rows kept, retrying',
        );
      }
    }
    this.#blockedSince ??= Date.now();
    // Held too long also means spooled: senders wait for acks (the registry's ingest acks, and
    // with them ingest's backpressure, wait behind the oldest held row), so a long lock must not
    // keep them waiting for its whole length.
    const heldTooLong = this.#held.length > 0 && Date.now() - this.#held[0].receivedAt > this.#writer.maxHeldMs;
    if (this.#pastDeadline() || heldTooLong) this.#spoolHeld(0);
    else if (this.#heldRows > this.#writer.maxHeldRows) this.#spoolHeld(Math.floor(this.#writer.maxHeldRows / 2));
    if (this.#closed) return;
    this.#backingOff = true;
    this.#timerDelay = this.#writer.retryDelayMs;
    this.#timer = setTimeout(this.#attempt, this.#writer.retryDelayMs);
  }

  /**
   * What one transaction stores: the rows of every batch (and 'caused' item) above its sender's
   * cursor — committed, or earlier in this transaction — and the cursors it moves on to.
   */
  #plan(batches: SpoolBatch<WriteItem>[], counts: RowCounts): WritePlan {
    const plan: WritePlan = { rows: [], cursors: new Map() };
    for (const batch of batches) {
      if (this.#advance(plan.cursors, batch.from, batch.seq)) this.#planItems(plan, batch.items, counts);
      else counts.redelivered += batch.items.length;
    }
    return plan;
  }

  /** True, with `cursors` moved on, when `seq` is above what is committed or earlier in this transaction. */
  #advance(cursors: Map<string, number>, sender: string, seq: number): boolean {
    if (seq <= (cursors.get(sender) ?? this.#committed.get(sender) ?? 0)) return false;
    cursors.set(sender, seq);
    return true;
  }

  #planItems(plan: WritePlan, items: WriteItem[], counts: RowCounts): void {
    for (const item of items) {
      if (item.type === 'caused') {
        // An ingest batch a restarted registry applied again: its first copy's rows are stored (or held earlier).
        if (this.#advance(plan.cursors, item.sender, item.seq)) this.#planItems(plan, item.items, counts);
        else counts.reapplied += item.items.length;
        continue;
      }
      if (item.type === 'llm_usage' && this.#dropRatio > 0 && Math.random() < this.#dropRatio) continue; // fault injection, see config.faults
      plan.rows.push(item satisfies RowItem);
    }
  }

  /** The daily digest, when configured: scheduled, and sent now if the last one is overdue. */
  #startDigest(): void {
    const digest = this.#config.digest;
    if (digest === null || this.#digest) return;
    const timeZone = digest.timeZone ?? this.#config.llm.timeZone;
    this.#digest = new DigestSchedule({ hour: digest.hour, timeZone }, () => this.#sendDigest(timeZone));
    this.#digest.start();
    this.#sendDigest(timeZone);
  }

  /** Sends the due day's digest unless monitor_state says it went out (stored in the same step). */
  #sendDigest(timeZone: string): void {
    const st = this.#st;
    const now = Date.now();
    const day = this.#digest?.dueDay(now) ?? null;
    if (!st || day === null) return;
    st.digest(day, now, timeZone).then(
      (digest) => {
        if (digest === null) return;
        this.#log.info(
          { digest: (digest as { data?: unknown }).data },
          (digest as { title?: string }).title ?? 'digest',
        );
        this.#alerter.send(digest);
      },
      // Locked or failing now: the next start or the next day tries again; nothing is lost but a summary.
      (err) => this.#warn.warn('digest_failed', { err, code: st.classify(err).code }, 'daily digest not sent'),
    );
  }

  /** Committed budget level changes go to the alerter (and the log: an operator sees them without one). */
  #signalBudgets(signals: BudgetSignal[]): void {
    for (const signal of signals) {
      this.#log[signal.level === 'ok' ? 'info' : 'warn'](
        { budget_signal: signal },
        `budget ${signal.budget}: ${signal.level} (${signal.pct} % of ${signal.limitUsd} USD)`,
      );
      this.#alerter.send(signal);
    }
  }

  /**
   * Re-prices stored rows since `sinceMs` with the prices in force now, chunk by chunk, each chunk
   * one transaction with its rollup changes; commits of new rows go between chunks. One at a time.
   */
  #recompute(sinceMs: number): Promise<RecomputeResult> {
    this.#recomputing ??= (async () => {
      const st = this.#st;
      if (!st) throw new Error(`database not open for writing (${this.#waiting?.why ?? 'opening'}); try again`);
      const result = await st.recompute(sinceMs, () => this.#closed || this.#st !== st, this.#writer.retryDelayMs);
      if (st.hasBudgets && this.#st === st && !this.#inFlight && (await this.#transact([])))
        this.#log.debug('budgets re-checked after recompute');
      this.#log.info(result, 'llm_usage re-priced');
      return result;
    })().finally(() => {
      this.#recomputing = null;
    });
    return this.#recomputing;
  }

  async #prunePass(): Promise<PruneResult> {
    let result: PruneResult = {};
    const now = Date.now();
    const st = this.#st;
    if (!st) return result; // not open yet: the next pass will do it
    const limits: RetentionLimits = { delivery_cursor: CURSOR_KEEP_MS };
    for (const [table, setting] of RETENTION) {
      const days = this.#retention[setting];
      if (days > 0) limits[table] = days * DAY_MS; // 0 keeps forever
    }
    try {
      result = await st.prune(limits, now, () => this.#closed);
    } catch (err) {
      // Nothing is lost by deleting later: the next pass picks up where this one stopped.
      this.#warn.warn('prune_failed', { err, code: st.classify(err).code }, 'retention pass stopped early');
    }
    if (Object.values(result).some((n) => n > 0)) this.#log.info({ deleted: result }, 'retention pass');
    return result;
  }
}

runActor<DbWriterControlExtra>(async (ctx) => {
  const writer = new DatabaseWriter(ctx);
  // One attempt to open before ready; a locked or missing database is waited for after ready. The
  // spool is replayed after ready (it may be large, pings must be answered meanwhile): the
  // supervisor waits for spoolReplayed() before it starts the registry, which rebuilds from bot_status.
  await writer.open();
  ctx.log.info(
    { db: describeBackend(parseBackend(ctx.config.dbPath)), host: ctx.config.hostName, incarnation: ctx.incarnation },
    'database writer started',
  );
  return writer;
});
