// What a monitor says about itself in the shared `hosts` table (0006_hosts), and how the cross-host
// views show a host. The main thread sends a HostBeat to the writer (its `hostBeat` control call);
// src/hosts/ reads and writes the table. Times in a beat are ms since the epoch; in a view ISO text.
import type { BotStatus } from '../protocol/states.js';

export interface HostBeat {
  host: string;
  version: string;
  pid: number;
  /** When this monitor process started. */
  startedAt: number;
  /** Its live bots by status. */
  bots: Partial<Record<BotStatus, number>>;
  /** Its hostStaleAfterMs: stored with the row, so every reader judges it by the monitor's own window. */
  staleAfterMs: number;
}

/** `up` while its row is younger than its monitor's hostStaleAfterMs (by the database's clock), else `down`. */
export type HostState = 'up' | 'down';

/** One row of `kissmon hosts` / GET /hosts. */
export interface HostView {
  host: string;
  version: string;
  pid: number;
  started_at: string;
  last_seen: string;
  /** Seconds since last_seen, by the database's clock. */
  age_s: number;
  /** The window this row was judged by: its monitor's hostStaleAfterMs, or the reader's override. */
  stale_after_s: number;
  state: HostState;
  bots: Partial<Record<BotStatus, number>>;
}
