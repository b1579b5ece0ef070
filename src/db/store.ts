// What the db-writer actor (workers/db-writer.ts) needs of a store, one implementation per backend
// (src/db/sqlite-store.ts, src/db/postgres-store.ts). The writer keeps everything that makes
// writes safe — rows held until committed, retry, spool past writer.maxHeldRows, exactly-once by
// delivery_cursor — and decides which rows one transaction stores (a WritePlan: batches already
// committed are left out). The store only runs that plan as one transaction:
//
//   writer: held batches ──plan (cursors checked)──▶ store.write(plan) ── resolves: committed ──▶ acks
//                                                                    └─ rejects: nothing of it committed
//                                                                       (or, PostgreSQL, not known: the
//                                                                       writer reloads the cursors first)
import type { HostBeat } from '../actors/host-messages.js';
import type { LlmUsageRow, PruneResult, RetainedTable, RowItem } from '../actors/db-writer-messages.js';
import type { BudgetSignal, BudgetStatus } from '../llm/budgets.js';
import type { RecomputeResult } from '../llm/accounting.js';
import type { DigestInput } from '../llm/digest.js';

/** Rows written by one transaction attempt; added to the totals only if it commits. */
export interface RowCounts {
  llm_usage: number;
  status: number;
  event: number;
  metric: number;
  health: number;
  rejected: number;
  /** llm_usage rows whose id was already stored. */
  duplicate: number;
  /** Rows of batches already committed (re-sent, or spooled twice): acknowledged, not inserted. */
  redelivered: number;
  /** Rows of ingest batches a restarted registry applied again ('caused' items at or below their cursor): not inserted. */
  reapplied: number;
}

export const noRows = (): RowCounts => ({
  llm_usage: 0,
  status: 0,
  event: 0,
  metric: 0,
  health: 0,
  rejected: 0,
  duplicate: 0,
  redelivered: 0,
  reapplied: 0,
});

/** One transaction's worth: the rows to store (in arrival order) and the cursors to store with them. */
export interface WritePlan {
  rows: RowItem[];
  /** Highest seq per sender this transaction commits. */
  cursors: Map<string, number>;
}

/** How a failed attempt is reported: `busy` (SQLite locked), `down` (the server or connection), `other`. */
export interface StoreFailure {
  kind: 'busy' | 'down' | 'other';
  code: string | undefined;
}

export interface WriteStore {
  readonly kind: 'sqlite' | 'postgres';
  /** Committed cursors of this host (delivery_cursor), loaded at open and after a failure whose outcome is unknown. */
  loadCursors(): Promise<[sender: string, seq: number][]>;
  /**
   * One transaction: the plan's rows and cursors, with their prices, rollups and budgets. Counts
   * go into `counts`; a row the database refuses on its own (a value it cannot store) is dropped
   * and counted as rejected, `onRejected` is told. Rejects when the database refused the
   * transaction: then nothing of it is committed — except on PostgreSQL when the connection
   * broke during COMMIT, where the outcome is unknown (the writer reloads the cursors).
   */
  write(plan: WritePlan, counts: RowCounts, onRejected: (err: unknown, type: string) => void): Promise<void>;
  /** After a committed write: the budget levels it decided, to signal. */
  committed(): BudgetSignal[];
  /** After a refused write: forget what it staged. */
  rolledBack(): void;
  /** Why an attempt failed, for the writer's counters and logs. */
  classify(err: unknown): StoreFailure;
  /** USD of one row at its time (null: no price). */
  cost(row: LlmUsageRow): number | null;
  /** One retention pass (chunked; `stop()` true makes it return early). */
  prune(retention: RetentionLimits, now: number, stop: () => boolean): Promise<PruneResult>;
  /** Work done once in a while beside the writes (PostgreSQL: partitions created ahead). */
  maintain(now: number): Promise<void>;
  budgets(now?: number): BudgetStatus[];
  /** Budgets are configured (and tracked by this store). */
  readonly hasBudgets: boolean;
  unpricedRows(): number;
  budgetSignals(): number;
  /**
   * The digest of the day before `day` unless monitor_state says it went out (stored in the same
   * step); null: already sent. Throws when the store cannot do it now (tried again later).
   */
  digest(day: number, now: number, timeZone: string): Promise<DigestInput | null>;
  /** Re-prices stored rows since `sinceMs`, chunk by chunk; `stop()` true aborts between chunks. */
  recompute(sinceMs: number, stop: () => boolean, retryDelayMs: number): Promise<RecomputeResult>;
  /** Upserts this monitor's `hosts` row (src/hosts/hosts.ts), outside the row transactions. */
  heartbeat(beat: HostBeat): Promise<void>;
  close(): Promise<void>;
}

/** Age limits in ms per retained table (absent: kept forever). */
export type RetentionLimits = Partial<Record<RetainedTable, number>> & { delivery_cursor: number };

/** Rows per retention DELETE: each chunk is its own short transaction. */
export const PRUNE_CHUNK_ROWS = 5_000;
