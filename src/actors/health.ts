import { createHistogram, performance } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';

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
  /** V8's heap size limit of the thread: its old-generation limit + its young generation (3 semi-spaces; the launch settings, src/launch-settings.ts, set those). */
  heap_limit_mb: number;
  uptime_s: number;
  /** Actor-specific numbers (bots by status, rounds abandoned, commits retried, …). */
  detail: Record<string, number | string | boolean | null>;
}

/** Why the supervisor last restarted an actor. */
export type RestartReason = 'crashed' | 'out_of_memory' | 'hung' | 'start_timeout';

/** An actor's health as the supervisor reports it: plus its restarts, and whether it answered. */
export type SupervisedHealth = ActorHealth & {
  restarts: number;
  /** Running and answering; false while it is down, restarting, or not answering (hung or busy). */
  up: boolean;
  /** Since the actor's thread last answered a liveness ping, ms; null for the main thread and while no incarnation has answered yet. */
  last_answer_ms_ago: number | null;
  last_restart_reason: RestartReason | null;
};

/**
 * Event-loop delay of the calling thread; `read()` returns and resets the window. A 20 ms timer
 * records how late it fires. (perf_hooks.monitorEventLoopDelay reports the raw timer interval,
 * ~10 ms on an idle loop, which reads as lag to an operator; this reports only the lateness.)
 */
export function loopLagMeter(): { read(): { p99: number; max: number } } {
  const everyMs = 20;
  const histogram = createHistogram();
  let expected = performance.now() + everyMs;
  setInterval(() => {
    const now = performance.now();
    histogram.record(Math.max(1, Math.round((now - expected) * 1000)));
    expected = now + everyMs;
  }, everyMs).unref();
  return {
    read() {
      const result =
        histogram.count === 0
          ? { p99: 0, max: 0 }
          : { p99: round2(histogram.percentile(99) / 1000), max: round2(histogram.max / 1000) };
      histogram.reset();
      return result;
    },
  };
}

export function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

export function heapUsedMb(): number {
  return round2(process.memoryUsage().heapUsed / 1048576);
}

export function heapLimitMb(): number {
  return round2(getHeapStatistics().heap_size_limit / 1048576);
}
