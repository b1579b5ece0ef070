// Message types of the process sampler actor (workers/sampler.ts).

/** registry → sampler (reliable link). After a (re)attach the registry re-sends a watch for every live bot. */
export type WatchItem =
  | {
      type: 'watch';
      channel: string;
      pid: number;
      /** Process start time (clock ticks since boot, /proc/<pid>/stat field 22) if already known. */
      start_time: number | null;
    }
  | { type: 'unwatch'; channel: string; pid: number };

/** What one round found for one watched bot. A failed read is simply absent: "no data", never 0. */
export type SampleResult =
  | { channel: string; pid: number; cpu_pct: number; rss_mb: number; start_time: number }
  | { channel: string; pid: number; gone: 'process_exited' | 'pid_reused' };

/** sampler → registry, unacknowledged signal once per round. */
export interface SampleRound {
  round: { at: number; duration_ms: number; watched: number };
  samples: SampleResult[];
}
