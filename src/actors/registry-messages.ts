// Message types of the registry actor (workers/registry.ts).
import type { Features } from '../protocol/messages.js';
import type { BotStatus } from '../protocol/states.js';

/** A bot message after decoding and auth, as the main thread hands it over (ingest link). */
export interface BotSignal {
  type: 'register' | 'heartbeat' | 'unregister';
  channel: string;
  pid: number;
  features?: Features;
  /** unregister only: the bot's own reason (e.g. "deploy"); a planned stop raises no alert. */
  reason?: string;
  /** When the main thread read the line, ms since the epoch. */
  at: number;
  /** The client's own send time (`ts`), when it sent one. */
  sent_at?: number;
  /** The connection's id while it is not yet known: the registry answers with a KnownConnections signal if it accepts the bot. */
  conn?: number;
}

/**
 * registry → ingest (unacknowledged signal): connections whose register or heartbeat made their bot
 * live. Only those are exempt from the idle timeout; a refused one is reaped like any idle connection.
 */
export interface KnownConnections {
  known: number[];
}

/**
 * Unacknowledged side message from the main thread every pulse interval: proof that ingest is
 * running. While pulses are late, the registry does not let time count against the bots.
 */
export interface IngestPulse {
  pulse: number;
}

/** One live bot as `kissmon status` shows it. Times are ms since the epoch. */
export interface BotSnapshot {
  channel: string;
  pid: number;
  status: BotStatus;
  features: Features | null;
  registered_at: number;
  last_seen: number;
  last_heartbeat: number | null;
  /** Seconds since the last heartbeat, in monitor-alive time (pauses of the monitor do not count). */
  heartbeat_age_s: number | null;
  /** Start time of the process `pid` (see bot_status.start_time); null until read. */
  start_time: number | null;
  /** pidusage's cpu: % of one core, may exceed 100 on several cores. */
  cpu_pct: number | null;
  /** cpu_pct divided by the machine's core count: % of the whole machine. */
  cpu_pct_machine: number | null;
  rss_mb: number | null;
  sampled_at: number | null;
}

export interface LatencySummary {
  count: number;
  p50_ms: number;
  p95_ms: number;
  p99_ms: number;
  max_ms: number;
}

/** Heartbeat latency as the registry sees it: client send (`ts`) → applied, and socket read → applied. */
export interface RegistryLatency {
  sent_to_visible: LatencySummary;
  read_to_visible: LatencySummary;
}

export interface RegistryControlExtra {
  snapshot(): BotSnapshot[];
  latency(): RegistryLatency;
  resetLatency(): void;
}
