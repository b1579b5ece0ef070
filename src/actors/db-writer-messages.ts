// Message types of the database writer actor (workers/db-writer.ts). Times are ms since the epoch;
// the writer stores them as ISO-8601 UTC text.
import type { ActorHealth } from './health.js';
import type { HostBeat } from './host-messages.js';
import type { LlmCallStatus } from '../protocol/messages.js';
import type { BotStatus, TransitionReason } from '../protocol/states.js';

/** One row for one table. */
export type RowItem =
  | {
      type: 'llm_usage';
      at: number;
      channel: string;
      model: string;
      feature: string;
      tokens_in: number;
      tokens_out: number;
      latency_ms: number | null;
      /** The client's id for the call: stored once, a repeat is counted as a duplicate. */
      id?: string;
      /** Optional accounting details (protocol fields of the same names; docs/LLM_USAGE.md). */
      tokens_cached?: number;
      tokens_reasoning?: number;
      provider?: string;
      status?: LlmCallStatus;
      error_type?: string;
      request_id?: string;
    }
  | {
      /** Upsert of the bot's bot_status row. */
      type: 'status';
      channel: string;
      pid: number;
      status: BotStatus;
      features_json: string | null;
      registered_at: number;
      last_seen: number;
      last_heartbeat: number | null;
      start_time: number | null;
    }
  | {
      type: 'event';
      at: number;
      channel: string;
      pid: number;
      from: BotStatus | null;
      to: BotStatus;
      reason: TransitionReason;
    }
  | {
      type: 'metric';
      at: number;
      channel: string;
      pid: number;
      rss_mb: number;
      cpu_pct: number;
      cpu_pct_machine: number;
    }
  | { type: 'health'; at: number; health: ActorHealth & { restarts: number } };

export type LlmUsageRow = Extract<RowItem, { type: 'llm_usage' }>;

export type WriteItem =
  | RowItem
  | {
      /**
       * The rows one ingest batch caused in the registry, stored only if `seq` is above the cursor
       * for `sender` (delivery_cursor, or an earlier item of the same transaction), and that cursor
       * is stored with them: a restarted registry that applies a re-sent ingest batch again stores
       * nothing twice, whether the first copy is committed, still held by the writer, or spooled.
       */
      type: 'caused';
      /** The ingest Link's sender and the batch's seq on it. */
      sender: string;
      seq: number;
      items: RowItem[];
    };

/** The tables retention trims by age. */
export type RetainedTable =
  | 'bot_metrics'
  | 'llm_usage'
  | 'bot_events'
  | 'worker_health'
  | 'llm_usage_hourly'
  | 'llm_usage_daily'
  | 'llm_usage_weekly';

/** Rows deleted per table by one retention pass (tables that kept everything are absent). */
export type PruneResult = Partial<Record<RetainedTable | 'delivery_cursor', number>>;

/** Actor-specific control calls of the db-writer (beyond ActorControl). */
export interface DbWriterControlExtra {
  /** Runs a retention pass now (it also runs shortly after start and hourly). */
  prune(): Promise<PruneResult>;
  /**
   * Shutdown: whatever is not committed by `at` (ms since the epoch) is spooled, and from then on
   * every row that meets a locked database is spooled at once. Earlier calls win.
   */
  spoolAfter(at: number): void;
  /**
   * True once no spool waits for replay (at once if none does), false if one still does after
   * `waitMs`. The supervisor awaits it before it starts the registry, which rebuilds from bot_status.
   */
  spoolReplayed(waitMs: number): Promise<boolean>;
  /** Re-prices llm_usage rows at or after `sinceMs` with today's price table (kissmon usage recompute). */
  recompute(sinceMs: number): Promise<RecomputeResult>;
  /** Budgets' spend and level now; null while the database is not open. */
  budgets(): Promise<BudgetStatus[] | null>;
  /** Upserts this monitor's `hosts` row (src/hosts/hosts.ts); false while the store is not writable. */
  hostBeat(beat: HostBeat): Promise<boolean>;
}

/** One line of `kissmon budgets` / GET /budgets (the writer's `budgets` control call). */
export interface BudgetStatus {
  name: string;
  period: 'day' | 'week' | 'month';
  period_start: string;
  spent_usd: number;
  limit_usd: number;
  pct: number;
  /** Spend by the period's end if it goes on at the rate so far. */
  projected_usd: number;
  level: 'ok' | 'warning' | 'critical';
}

/** Result of `kissmon usage recompute`. */
export interface RecomputeResult {
  since: string;
  rows_checked: number;
  rows_changed: number;
  /** Rows that had a price and now have none, or the other way round. */
  rows_priced_now: number;
  rows_unpriced_now: number;
}
