// The writer's LLM accounting, one object per open database: prices each llm_usage row, keeps the
// rollups and budgets of the rows a transaction stores, and re-prices stored rows (recompute).
// Everything here runs on the writer's thread inside its transactions (workers/db-writer.ts):
//
//   begin() · per stored row: cost() then stored() · finish() ── COMMIT ──▶ commit() → budget signals
//                                                              └ ROLLBACK ─▶ rollback()
import type BetterSqlite3 from 'better-sqlite3';
import type { LlmUsageRow, RecomputeResult } from '../actors/db-writer-messages.js';
import type { MonitorConfig } from '../config.js';
import { isoTime } from '../db/schema.js';
import { BudgetTracker, type BudgetSignal, type BudgetStatus } from './budgets.js';
import { PriceTable } from './prices.js';
import { RollupBatch, type RollupInput } from './rollups.js';

export type { RecomputeResult };

/** A recompute of a big table takes a while; the admin call (route and CLI) waits for it this long. */
export const RECOMPUTE_TIMEOUT_MS = 10 * 60_000;

/** Rows re-priced per transaction: each chunk is short, commits and control calls go between. */
export const RECOMPUTE_CHUNK_ROWS = 5_000;

/** The llm_usage columns a recompute reads (both stores select them, in this order). */
export const STORED_USAGE_COLUMNS =
  'ts, channel, model, feature, tokens_in, tokens_out, tokens_cached, tokens_reasoning, latency_ms, provider, status, cost_usd';

/** An llm_usage row as stored: the columns of STORED_USAGE_COLUMNS. */
export interface StoredUsageRow {
  ts: string;
  channel: string;
  model: string | null;
  feature: string | null;
  tokens_in: number | null;
  tokens_out: number | null;
  tokens_cached: number | null;
  tokens_reasoning: number | null;
  latency_ms: number | null;
  provider: string | null;
  status: string | null;
  cost_usd: number | null;
}

/** The store was closed or reopened between two chunks: recompute() throws this. */
export const RECOMPUTE_STOPPED =
  'writer closed or reopened during the recompute; what was committed stays re-priced, run it again';

export const emptyRecompute = (sinceMs: number): RecomputeResult => ({
  since: isoTime(sinceMs),
  rows_checked: 0,
  rows_changed: 0,
  rows_priced_now: 0,
  rows_unpriced_now: 0,
});

const sameCost = (a: number | null, b: number | null) =>
  a === null || b === null ? a === b : Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(a));

/**
 * One stored row against `prices` (the ones in force now), counted in `result`. Null when its cost
 * stays; else its new cost and what its rollups sum, to move their cost from `r.cost_usd` to it.
 */
export function repriceStored(
  prices: PriceTable,
  r: StoredUsageRow,
  result: RecomputeResult,
): { cost: number | null; input: RollupInput } | null {
  result.rows_checked++;
  const at = Date.parse(r.ts);
  const tokens = {
    tokens_in: r.tokens_in ?? 0,
    tokens_out: r.tokens_out ?? 0,
    tokens_cached: r.tokens_cached,
    tokens_reasoning: r.tokens_reasoning,
  };
  const cost = r.model === null || Number.isNaN(at) ? null : prices.cost(r.model, at, tokens);
  if (sameCost(r.cost_usd, cost)) return null;
  result.rows_changed++;
  if (r.cost_usd === null) result.rows_priced_now++;
  if (cost === null) result.rows_unpriced_now++;
  const input = {
    at,
    channel: r.channel,
    model: r.model ?? '',
    feature: r.feature ?? '',
    latency_ms: r.latency_ms,
    provider: r.provider ?? undefined,
    status: (r.status ?? undefined) as RollupInput['status'],
    ...tokens,
  } as RollupInput;
  return { cost, input };
}

export class UsageAccounting {
  readonly prices: PriceTable;
  #rollups: RollupBatch | null;
  #budgets: BudgetTracker;
  #rollupsOn: boolean;
  #unpriced = 0;
  #pendingUnpriced = 0;
  #signals = 0;
  #selectChunk: BetterSqlite3.Statement;
  #firstRowid: BetterSqlite3.Statement;
  #setCost: BetterSqlite3.Statement;

  constructor(sqlite: BetterSqlite3.Database, config: MonitorConfig) {
    this.prices = new PriceTable(config.prices);
    this.#rollupsOn = config.llm.rollups;
    this.#rollups = config.llm.rollups ? new RollupBatch(sqlite, Date.now, config.hostName) : null;
    this.#budgets = new BudgetTracker(sqlite, config);
    this.#selectChunk = sqlite.prepare(`SELECT rowid, ${STORED_USAGE_COLUMNS}
      FROM llm_usage WHERE rowid >= ? AND +ts >= ? ORDER BY rowid LIMIT ${RECOMPUTE_CHUNK_ROWS}`);
    // Rowid order is not ts order (spool replay inserts old rows late, a clock step dates rows back):
    // the walk starts at the lowest rowid of any row in the window and filters ts in each chunk
    // (`+ts`: walk the rowid range, not the ts index).
    this.#firstRowid = sqlite.prepare('SELECT min(rowid) AS rowid FROM llm_usage WHERE ts >= ?');
    this.#setCost = sqlite.prepare('UPDATE llm_usage SET cost_usd = ? WHERE rowid = ?');
  }

  /** A transaction attempt starts: nothing of an earlier, rolled-back one is kept. */
  begin(): void {
    this.#rollups?.begin();
    this.#budgets.rollback();
    this.#pendingUnpriced = 0;
  }

  /** USD for the row at its time, or null (no price: counted once the row is stored). */
  cost(row: LlmUsageRow): number | null {
    return this.prices.cost(row.model, row.at, row);
  }

  /** The row was inserted (not a duplicate) at `cost`. */
  stored(row: LlmUsageRow, cost: number | null): void {
    if (cost === null) this.#pendingUnpriced++;
    this.#rollups?.add(row, cost);
    this.#budgets.add(row.at, row.channel, row.model, row.feature, cost);
  }

  /** Last step inside the transaction: rollups upserted, budget levels decided and stored. */
  finish(now = Date.now()): void {
    this.#rollups?.write();
    this.#budgets.stage(now);
  }

  /** After COMMIT: the budget signals the transaction decided, to send to the alerter. */
  commit(): BudgetSignal[] {
    this.#unpriced += this.#pendingUnpriced;
    this.#pendingUnpriced = 0;
    const signals = this.#budgets.commit();
    this.#signals += signals.length;
    return signals;
  }

  /** The transaction (an ingest or a recompute chunk) did not commit: nothing it summed is kept. */
  rollback(): void {
    this.#rollups?.rollback();
    this.begin();
  }

  budgets(now = Date.now()): BudgetStatus[] {
    return this.#budgets.status(now);
  }

  get hasBudgets(): boolean {
    return this.#budgets.size > 0;
  }

  stats(): { unpriced: number; budget_signals: number } {
    return { unpriced: this.#unpriced, budget_signals: this.#signals };
  }

  /** Where a recompute starts: the lowest rowid of a row dated at or after `sinceMs` (null: no such row). */
  recomputeStart(sinceMs: number): number | null {
    return (this.#firstRowid.get(isoTime(sinceMs)) as { rowid: number | null }).rowid;
  }

  /**
   * Re-prices one chunk of rows from `fromRowid` on (inside a transaction the caller runs) and moves
   * their rollups' cost with them. Returns the next rowid to start from (null: done).
   */
  recomputeChunk(sinceMs: number, fromRowid: number, result: RecomputeResult): number | null {
    const rows = this.#selectChunk.all(fromRowid, isoTime(sinceMs)) as (StoredUsageRow & { rowid: number })[];
    for (const r of rows) {
      const changed = repriceStored(this.prices, r, result);
      if (changed === null) continue;
      this.#setCost.run(changed.cost, r.rowid);
      this.#rollups?.reprice(changed.input, r.cost_usd, changed.cost);
    }
    this.#rollups?.write();
    return rows.length < RECOMPUTE_CHUNK_ROWS ? null : rows[rows.length - 1].rowid + 1;
  }

  /** After a recompute: budgets' spend from the database again (the next transaction signals changes). */
  reloadBudgets(): void {
    this.#budgets.reload(this.#rollupsOn ? 'llm_usage_hourly' : 'llm_usage');
  }
}
