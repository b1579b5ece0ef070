// What the loadtest parent (src/loadtest/fleet.ts) and its bot processes (fleet-child.ts) say to
// each other: JSON lines, parent → child on the child's stdin, child → parent on its stdout.
// stdin doubles as the child's lifeline: when it closes (parent gone, even by SIGKILL) the child exits.
//
//   child:  spawned ──config──▶ ready ──bots connected, registers written──▶ connected
//             │ llm {rate} / burst {rows}        (heartbeats run from each bot's register on)
//             ▼
//           sending ──stop_llm──▶ llm_stopped (final llm counts; heartbeats go on)
//             │ end
//             ▼
//           unregister every bot, close every connection ──▶ ended ──▶ exit 0

/** The first line on the child's stdin. */
export interface ChildConfig {
  socket: string;
  /** Channels are `${prefix}_${index}`, index global over the whole fleet. */
  prefix: string;
  firstIndex: number;
  /** Persistent bots (one connection each, kept open) come first, then one-shot bots. */
  persistent: number;
  oneshot: number;
  heartbeatMs: number;
  /** Pid each bot registers with (index - firstIndex); absent: every bot uses the child's own pid. */
  pids?: number[];
  /** Auth token sent on every message (monitor started with --auth-tokens). */
  token?: string;
  /** Most one-shot connections in flight at once; the rest queue (bounded, see fleet-child.ts). */
  oneshotConcurrency: number;
}

export type ParentCommand =
  /** Send llm_usage at this many lines per second (this child's share of the total rate). */
  | { cmd: 'llm'; rate: number }
  /** Send this many llm_usage lines as fast as the sockets take them (benchmarks), then report burst_done. */
  | { cmd: 'burst'; rows: number }
  /** Stop llm_usage; once every line in flight is written or failed, report llm_stopped. */
  | { cmd: 'stop_llm' }
  /** Unregister every bot, close, report ended, exit. */
  | { cmd: 'end' };

/** Cumulative counts of one child. A line counts as written once its write callback fired without error. */
export interface ChildCounters {
  /** Persistent connections open now. */
  connected: number;
  /** Bots whose register line has been written at least once. */
  registered: number;
  lines_written: number;
  llm_written: number;
  /** llm_usage lines that were attempted but never written (connection error, queue full). */
  llm_failed: number;
  heartbeats_written: number;
  /** Heartbeats not written: connection down at beat time, write or connect error. */
  heartbeats_failed: number;
  connect_failures: number;
  reconnects: number;
  oneshot_connections: number;
  /** CPU time of this child process so far (user + system), ms. */
  cpu_ms: number;
}

export type ChildReport =
  | { type: 'ready'; pid: number; open_files_limit: number | null }
  | { type: 'progress'; counters: ChildCounters }
  | { type: 'connected'; counters: ChildCounters }
  | { type: 'llm_stopped'; counters: ChildCounters }
  | { type: 'burst_done'; counters: ChildCounters }
  /** `failed_bots`: global indices of bots with a failed register/heartbeat (they were not reliably heartbeating). */
  | { type: 'ended'; counters: ChildCounters; failed_bots: number[] };

export const emptyCounters = (): ChildCounters => ({
  connected: 0,
  registered: 0,
  lines_written: 0,
  llm_written: 0,
  llm_failed: 0,
  heartbeats_written: 0,
  heartbeats_failed: 0,
  connect_failures: 0,
  reconnects: 0,
  oneshot_connections: 0,
  cpu_ms: 0,
});
