import { monitorEventLoopDelay } from 'node:perf_hooks';

/** What every actor reports every health interval (one log line + one worker_health row). */
export interface ActorHealth {
  actor: string;
  /** Messages/rows the actor has handled since it started. */
  processed: number;
  /** Items waiting inside the actor (not yet handled / committed). */
  queue_depth: number;
  /** Items the actor had to drop (bounded queues full); should stay 0. */
  dropped: number;
  /** Event-loop delay over the last interval, ms. */
  loop_lag_p99_ms: number;
  loop_lag_max_ms: number;
  heap_used_mb: number;
  uptime_s: number;
  /** Actor-specific numbers (bots by status, rounds abandoned, commits retried, …). */
  detail: Record<string, number | string | null>;
}

/** Event-loop delay sampler for the calling thread; `read()` returns and resets the window. */
export function loopLagMeter(): { read(): { p99: number; max: number } } {
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  histogram.enable();
  return {
    read() {
      const p99 = histogram.percentile(99) / 1e6;
      const max = histogram.max / 1e6;
      histogram.reset();
      return { p99: round2(Number.isFinite(p99) ? p99 : 0), max: round2(Number.isFinite(max) ? max : 0) };
    },
  };
}

export function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

export function heapUsedMb(): number {
  return round2(process.memoryUsage().heapUsed / 1048576);
}
