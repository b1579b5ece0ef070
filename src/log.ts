import { pino, type Logger } from 'pino';

export type { Logger };

/** One pino logger per thread, JSON lines on stdout; `thread` names the thread that wrote the line (`actor` in a line is what it is about). */
export function createLogger(level: string, bindings: Record<string, unknown> = {}): Logger {
  return pino({ level, base: { pid: process.pid, ...bindings }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ fd: 1, sync: true }));
}

/**
 * Logs the first occurrence of each key at once, then at most one summary line per key per
 * interval with how many were suppressed — so a flood of bad lines costs a counter bump, not I/O.
 */
export class RateLimitedLog {
  #log: Logger;
  #intervalMs: number;
  #keys = new Map<string, { lastAt: number; suppressed: number }>();

  constructor(log: Logger, intervalMs = 10_000) {
    this.#log = log;
    this.#intervalMs = intervalMs;
  }

  warn(key: string, fields: Record<string, unknown>, msg: string): void {
    const now = Date.now();
    const entry = this.#keys.get(key);
    if (entry && now - entry.lastAt < this.#intervalMs) {
      entry.suppressed++;
      return;
    }
    const suppressed = entry?.suppressed ?? 0;
    if (this.#keys.size > 1000) this.#keys.clear(); // keys are reasons, not ids; this is only a guard
    this.#keys.set(key, { lastAt: now, suppressed: 0 });
    this.#log.warn({ ...fields, kind: key, suppressed_since_last: suppressed }, msg);
  }
}
