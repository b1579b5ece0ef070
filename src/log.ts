// Logging that never blocks a thread that matters.
//
//   worker thread ──pino──▶ WorkerLines ──postMessage(whole line)──┐
//   main thread   ──pino──────────────────────────────────────────▶ StdoutSink ──process.stdout──▶ fd 1
//
// One writer for the process: only the main thread's StdoutSink touches stdout, and it is handed
// whole lines, so lines of different threads never interleave. For a pipe or socket (journald,
// `| less`) process.stdout is a non-blocking libuv stream: a write the reader does not take is
// queued, never waited for. The queue is bounded (MAX_BUFFERED_BYTES); beyond it, or once the
// reader is gone (EPIPE), a line is dropped and counted (log_lines_dropped in health and metrics).
//
// Not SonicBoom (pino.destination): with sync:false it writes with fs.write on a libuv pool thread,
// and on a blocking pipe nobody reads that thread never returns — process.exit then joins the pool
// and the process hangs until SIGKILL (measured on Node 20). Its maxLength/'drop' bound is what
// MAX_BUFFERED_BYTES does here.
import { once } from 'node:events';
import { isMainThread, MessageChannel, type MessagePort } from 'node:worker_threads';
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/** Log bytes queued for stdout while its reader is slow (~10k lines); beyond it lines are dropped. */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;
/** Lines a worker may have on their way to the main thread; beyond it the worker drops and counts. */
const MAX_LINES_IN_FLIGHT = 10_000;
/** Slots of the counters shared by every thread (Int32Array over a SharedArrayBuffer). */
const IN_FLIGHT = 0;
const DROPPED_IN_WORKERS = 1;

/** What a worker needs to log through the main thread: its own port and the shared counters. */
export interface LogChannel {
  port: MessagePort;
  counters: SharedArrayBuffer;
}

class StdoutSink implements DestinationStream {
  readonly counters = new Int32Array(new SharedArrayBuffer(8));
  readonly #out = process.stdout;
  #dropped = 0;
  #open = true;
  #corked = false;

  constructor() {
    // EPIPE (the reader went away) or any other write error: stop writing, keep counting.
    this.#out.on('error', () => {
      this.#open = false;
    });
  }

  write(line: string): void {
    if (!this.#open || this.#out.writableLength >= MAX_BUFFERED_BYTES) {
      this.#dropped++;
      return;
    }
    // Lines of one event-loop turn go out in one writev instead of one write(2) each.
    if (!this.#corked) {
      this.#corked = true;
      this.#out.cork();
      process.nextTick(this.#uncork);
    }
    this.#out.write(line);
  }

  readonly #uncork = () => {
    this.#corked = false;
    this.#out.uncork();
  };

  get dropped(): number {
    return this.#dropped + Atomics.load(this.counters, DROPPED_IN_WORKERS);
  }

  /** Waits until stdout took every queued line; false when it did not within `timeoutMs`. */
  async drain(timeoutMs: number): Promise<boolean> {
    if (this.#out.writableLength === 0) return true;
    if (!this.#open) return false;
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), timeoutMs);
    try {
      await once(this.#out, 'drain', { signal: ac.signal });
      return this.#out.writableLength === 0;
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** A worker's pino destination: hands each whole line to the main thread's sink. */
class WorkerLines implements DestinationStream {
  readonly #port: MessagePort;
  readonly #counters: Int32Array;

  constructor(channel: LogChannel) {
    this.#port = channel.port;
    this.#counters = new Int32Array(channel.counters);
  }

  write(line: string): void {
    if (Atomics.load(this.#counters, IN_FLIGHT) >= MAX_LINES_IN_FLIGHT) {
      Atomics.add(this.#counters, DROPPED_IN_WORKERS, 1);
      return;
    }
    Atomics.add(this.#counters, IN_FLIGHT, 1);
    this.#port.postMessage(line);
  }
}

let sink: StdoutSink | null = null;

function stdoutSink(): StdoutSink {
  if (!isMainThread) throw new Error('only the main thread writes to stdout; a worker logs through a LogChannel');
  sink ??= new StdoutSink();
  return sink;
}

/**
 * One pino logger; `thread` in `bindings` names the thread that wrote the line (`actor` in a line
 * is what it is about). On the main thread it writes to the process's stdout sink; a worker passes
 * the LogChannel its supervisor gave it.
 */
export function createLogger(level: string, bindings: Record<string, unknown> = {}, channel?: LogChannel): Logger {
  const destination = channel ? new WorkerLines(channel) : stdoutSink();
  return pino(
    { level, base: { pid: process.pid, ...bindings }, timestamp: pino.stdTimeFunctions.isoTime },
    destination,
  );
}

/** Main thread: a new channel into the stdout sink, for one worker (transfer `port` to it). */
export function openLogChannel(): LogChannel {
  const out = stdoutSink();
  const { port1, port2 } = new MessageChannel();
  port1.on('message', (line: string) => {
    Atomics.sub(out.counters, IN_FLIGHT, 1);
    out.write(line);
  });
  port1.unref(); // a worker's log port never keeps the process alive
  return { port: port2, counters: out.counters.buffer };
}

/** Log lines dropped so far by every thread (stdout wedged or gone). */
export function logLinesDropped(): number {
  return sink?.dropped ?? 0;
}

/**
 * At exit: write what stdout will take within `timeoutMs`, then give up (a wedged pipe must not
 * hold the process). Resolves false when lines were left behind.
 */
export function drainLogs(timeoutMs: number): Promise<boolean> {
  return sink ? sink.drain(timeoutMs) : Promise.resolve(true);
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
