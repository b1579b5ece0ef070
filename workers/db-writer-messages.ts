// Message types of the database writer actor (workers/db-writer.ts). Times are ms since the epoch;
// the writer stores them as ISO-8601 UTC text.
import type { ActorHealth } from '../src/actors/health.js';
import type { BotStatus, TransitionReason } from '../src/protocol/states.js';

export type WriteItem =
  | {
      t: 'llm_usage';
      at: number;
      channel: string;
      model: string;
      feature: string;
      tokens_in: number;
      tokens_out: number;
      latency_ms: number | null;
      /** The client's id for the call: stored once, a repeat is counted as a duplicate. */
      id?: string;
    }
  | {
      /** Upsert of the bot's bot_status row. */
      t: 'status';
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
      t: 'event';
      at: number;
      channel: string;
      pid: number;
      from: BotStatus | null;
      to: BotStatus;
      reason: TransitionReason;
    }
  | {
      t: 'metric';
      at: number;
      channel: string;
      pid: number;
      rss_mb: number;
      cpu_pct: number;
      cpu_pct_machine: number;
    }
  | { t: 'health'; at: number; health: ActorHealth & { restarts: number } }
  | {
      /**
       * The registry's progress through its ingest link, committed with the rows that batch caused:
       * a restarted registry skips re-sent batches up to here instead of applying them twice.
       */
      t: 'cursor';
      sender: string;
      seq: number;
    };

/** Rows deleted per table by one retention pass (tables that kept everything are absent). */
export type PruneResult = Partial<Record<'bot_metrics' | 'llm_usage' | 'bot_events' | 'worker_health' | 'delivery_cursor', number>>;

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
}
