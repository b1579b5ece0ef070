// MonitorClient: one persistent connection to the monitor that can never hurt the bot using it.
//
//              first message / register()
//   idle ───────────────────────────────▶ connecting ──'connect'──▶ connected ◀─┐
//                                          ▲     │ error / timeout      │        │ 'drain'
//                                          │     ▼                      │ write() returned false
//                                          └── backoff ◀── 'close' ─────┤        │
//                                  (100 ms doubling to 5 s, jittered)   ▼        │
//                                                               connected, needDrain ─┘
//   any state ── close() ──▶ (flush for at most closeTimeoutMs) ──▶ closed
//
// Rules that keep the bot safe:
// - A public call never waits on the monitor and never rejects because of it: it writes to the
//   socket only while the socket accepts (write() returned true, or after 'drain'); otherwise the
//   message goes to a small bounded buffer — heartbeats coalesce to one, llm_usage up to
//   maxBufferedUsage, beyond that dropped and counted — and the call resolves false at once.
// - Every (re)connection sends `register` first (the monitor may have restarted and forgotten us),
//   then the buffer.
// - Lines Node still held when a connection died (never reached the kernel) are re-queued, not
//   lost; what was already in the kernel buffer of a dead monitor is gone and cannot be counted.
// - A write that stays pending keeps Node's event loop alive even on an unref'd socket, so a stall
//   watchdog resets a connection that has not drained for stallTimeoutMs: a bot that is done can
//   exit even while the monitor is frozen.
import net from 'node:net';
import type { Features } from './protocol.js';
import {
  defaultSocketPath,
  defaultToken,
  featuresProblem,
  heartbeatLine,
  isChannel,
  isPid,
  isToken,
  llmUsageLine,
  registerLine,
  unregisterLine,
  usageProblem,
  type Identity,
  type LlmUsage,
} from './wire.js';

export interface MonitorClientOptions {
  /** The bot's key: 1-64 characters of [A-Za-z0-9_]. */
  channel: string;
  /** Default: process.pid. */
  pid?: number;
  /** Default: env KISSBOT_MONITOR_SOCKET, else /tmp/kissbot_monitor.sock. */
  socketPath?: string;
  /** Period of startHeartbeat(). Default 30 000. */
  heartbeatIntervalMs?: number;
  /** Auth token (monitor started with --auth-tokens). Default: env KISSBOT_MONITOR_TOKEN, else none. */
  token?: string;
  /** llm_usage lines held while the monitor cannot take them; more are dropped and counted. Default 1000. */
  maxBufferedUsage?: number;
  /** register() waits at most this long for a connection attempt to settle. Default 1000. */
  connectTimeoutMs?: number;
  /** close() flushes for at most this long, then drops what is left. Default 1000. */
  closeTimeoutMs?: number;
  /** A connection that has not drained for this long is reset (see the header). Default 10 000. */
  stallTimeoutMs?: number;
  /** Reconnect backoff: first delay, doubling up to the max, with jitter. Defaults 100 and 5000. */
  backoffInitialMs?: number;
  backoffMaxMs?: number;
}

export type ClientState = 'idle' | 'connecting' | 'connected' | 'backoff' | 'closed';

export interface MonitorClientStats {
  state: ClientState;
  /** Lines handed to the socket (a re-queued line counts again when re-sent). */
  sent: number;
  /** Messages waiting in the client's own buffer: at most maxBufferedUsage + 2. */
  buffered: number;
  bufferedUsage: number;
  heartbeatPending: boolean;
  /** Bytes Node holds for the socket that the kernel has not taken: bounded by the socket's high-water mark plus one line. */
  socketBufferedBytes: number;
  /** Heartbeats folded into one already waiting. */
  coalesced: number;
  /** Messages given up: droppedUsage + invalid + droppedClosed. */
  dropped: number;
  /** llm_usage that found the buffer full. */
  droppedUsage: number;
  /** Refused locally because the monitor would refuse them (bad llm_usage fields); never sent. */
  invalid: number;
  /** Sent after close(), or still buffered when close() gave up. */
  droppedClosed: number;
  /** Lines taken back from a connection that died before the kernel had them, to send again. */
  requeued: number;
  /** Successful connections after the first. */
  reconnects: number;
  connectFailures: number;
  /** Connections reset because they had not drained for stallTimeoutMs. */
  stalls: number;
  lastError: string | null;
}

interface ResolvedOptions {
  heartbeatIntervalMs: number;
  maxBufferedUsage: number;
  connectTimeoutMs: number;
  closeTimeoutMs: number;
  stallTimeoutMs: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
}

// Shared settled promises: the hot paths allocate nothing to say true/false.
const TRUE = Promise.resolve(true);
const FALSE = Promise.resolve(false);

type LineKind = 'register' | 'heartbeat' | 'usage' | 'unregister';

function positiveOption(options: MonitorClientOptions, key: keyof ResolvedOptions, fallback: number): number {
  const value = options[key] ?? fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0)
    throw new TypeError(`options.${key} must be a positive number`);
  return value;
}

export class MonitorClient {
  readonly channel: string;
  readonly pid: number;
  readonly socketPath: string;

  #id: Identity;
  #opts: ResolvedOptions;
  #state: ClientState = 'idle';
  #socket: net.Socket | null = null;
  #needDrain = false;
  /** Bumped by every completed write; the stall watchdog compares it over time. */
  #progress = 0;
  #connectedAt = 0;
  #everConnected = false;
  #backoffMs: number;

  // What goes out on the next connection / drain, in this order: register, usage, heartbeat, unregister.
  #registered = false; // register() called and no unregister() since: re-sent on every connection
  #features: Features | undefined;
  #registerPending = false;
  #usage: string[] = [];
  #heartbeatPending = false;
  #unregisterPending = false;

  #heartbeatTimer: NodeJS.Timeout | null = null;
  #reconnectTimer: NodeJS.Timeout | null = null;
  #connectTimer: NodeJS.Timeout | null = null;
  #stallTimer: NodeJS.Timeout | null = null;
  #connectWaiters: Array<() => void> = [];
  #closeRequested = false;
  #closed: Promise<void> | null = null;
  #onClosed: (() => void) | null = null;
  #closeTimer: NodeJS.Timeout | null = null;

  #sent = 0;
  #coalesced = 0;
  #droppedUsage = 0;
  #invalid = 0;
  #droppedClosed = 0;
  #requeued = 0;
  #reconnects = 0;
  #connectFailures = 0;
  #stalls = 0;
  #lastError: string | null = null;

  constructor(options: MonitorClientOptions) {
    if (options === null || typeof options !== 'object') throw new TypeError('options must be an object');
    if (!isChannel(options.channel)) throw new TypeError('options.channel must be 1-64 characters of [A-Za-z0-9_]');
    const pid = options.pid ?? process.pid;
    if (!isPid(pid)) throw new TypeError('options.pid must be an integer from 1 to 2147483647');
    const socketPath = options.socketPath ?? defaultSocketPath();
    if (typeof socketPath !== 'string' || socketPath.length === 0 || Buffer.byteLength(socketPath) >= 108) {
      throw new TypeError('options.socketPath must be a path shorter than 108 bytes');
    }
    const token = defaultToken(options.token);
    if (!isToken(token)) throw new TypeError('options.token must be a string of at most 256 characters');
    const maxBufferedUsage = options.maxBufferedUsage ?? 1000;
    if (!Number.isInteger(maxBufferedUsage) || maxBufferedUsage < 0)
      throw new TypeError('options.maxBufferedUsage must be an integer >= 0');
    this.#opts = {
      heartbeatIntervalMs: positiveOption(options, 'heartbeatIntervalMs', 30_000),
      maxBufferedUsage,
      connectTimeoutMs: positiveOption(options, 'connectTimeoutMs', 1000),
      closeTimeoutMs: positiveOption(options, 'closeTimeoutMs', 1000),
      stallTimeoutMs: positiveOption(options, 'stallTimeoutMs', 10_000),
      backoffInitialMs: positiveOption(options, 'backoffInitialMs', 100),
      backoffMaxMs: positiveOption(options, 'backoffMaxMs', 5000),
    };
    if (this.#opts.backoffMaxMs < this.#opts.backoffInitialMs)
      throw new TypeError('options.backoffMaxMs must be at least options.backoffInitialMs');
    this.channel = options.channel;
    this.pid = pid;
    this.socketPath = socketPath;
    this.#id = { channel: options.channel, pid, token };
    this.#backoffMs = this.#opts.backoffInitialMs;
  }

  /**
   * Registers the bot and remembers `features`, so every later reconnection registers again first.
   * Resolves true when the register line was handed to a connected socket; false when the monitor
   * is not reachable yet (the register goes out as soon as it is). Waits at most connectTimeoutMs
   * for a first connection attempt — on a Unix socket that attempt settles at once.
   * Rejects only with a TypeError for features the monitor would refuse.
   */
  register(features?: Features): Promise<boolean> {
    if (features !== undefined) {
      const problem = featuresProblem(features);
      if (problem) return Promise.reject(new TypeError(`features ${problem}`));
    }
    if (this.#closeRequested) return this.#droppedAfterClose();
    this.#features = features === undefined ? undefined : { ...features };
    this.#registered = true;
    this.#unregisterPending = false;
    if (this.#canWrite()) {
      this.#write(registerLine(this.#id, this.#features), 'register');
      return TRUE;
    }
    // Not writable: the register goes out first on the next connection, or first on 'drain'.
    this.#registerPending = true;
    this.#ensureConnection();
    if (this.#state !== 'connecting') return FALSE;
    return new Promise((resolve) => {
      this.#connectWaiters.push(() => resolve(this.#state === 'connected' && !this.#registerPending));
    });
  }

  /** Sends a heartbeat now, or marks one pending (coalesced). Resolves true when handed to the socket. */
  heartbeat(): Promise<boolean> {
    if (this.#canWrite()) {
      this.#write(heartbeatLine(this.#id), 'heartbeat');
      return TRUE;
    }
    if (this.#closeRequested) return this.#droppedAfterClose();
    if (this.#heartbeatPending) this.#coalesced++;
    else this.#heartbeatPending = true;
    this.#ensureConnection();
    return FALSE;
  }

  /**
   * Reports one LLM call. Resolves true when handed to the socket, false when buffered, dropped
   * (buffer full) or refused locally for fields the monitor would reject — see stats().
   */
  logLlmUsage(usage: LlmUsage): Promise<boolean> {
    if (usageProblem(usage) !== null) {
      this.#invalid++;
      return FALSE;
    }
    if (this.#canWrite()) {
      this.#write(llmUsageLine(this.#id, usage), 'usage');
      return TRUE;
    }
    if (this.#closeRequested) return this.#droppedAfterClose();
    // Full buffer: count it before building the line, so a long freeze allocates nothing per call.
    if (this.#usage.length >= this.#opts.maxBufferedUsage) this.#droppedUsage++;
    else this.#usage.push(llmUsageLine(this.#id, usage));
    this.#ensureConnection();
    return FALSE;
  }

  /** Starts the periodic heartbeat (first beat after one interval); the timer is unref'd. */
  startHeartbeat(intervalMs: number = this.#opts.heartbeatIntervalMs): void {
    if (typeof intervalMs !== 'number' || !Number.isFinite(intervalMs) || intervalMs <= 0)
      throw new TypeError('intervalMs must be a positive number');
    if (this.#closeRequested) return;
    this.#clearHeartbeatTimer();
    this.#heartbeatTimer = setInterval(() => void this.heartbeat(), intervalMs);
    this.#heartbeatTimer.unref();
  }

  stopHeartbeat(): Promise<void> {
    this.#clearHeartbeatTimer();
    return Promise.resolve();
  }

  /**
   * Says goodbye: stops the heartbeat timer (a later heartbeat would register the bot again),
   * stops re-registering on reconnect, and sends `unregister` after whatever is still buffered.
   */
  unregister(): Promise<boolean> {
    this.#clearHeartbeatTimer();
    if (this.#closeRequested) return this.#droppedAfterClose();
    this.#registered = false;
    this.#registerPending = false;
    this.#heartbeatPending = false;
    if (this.#canWrite()) {
      this.#write(unregisterLine(this.#id), 'unregister');
      return TRUE;
    }
    this.#unregisterPending = true;
    this.#ensureConnection();
    return FALSE;
  }

  /**
   * Stops timers, flushes the buffer for at most closeTimeoutMs, closes the connection. Idempotent;
   * never rejects. Messages still buffered when it gives up are counted in droppedClosed.
   */
  close(): Promise<void> {
    if (this.#closed) return this.#closed;
    this.#closeRequested = true;
    this.#clearHeartbeatTimer();
    if (this.#reconnectTimer) clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = null;
    this.#closed = new Promise((resolve) => {
      this.#onClosed = resolve;
    });
    if (this.#state === 'idle' || this.#state === 'backoff') {
      this.#finishClose();
    } else {
      this.#closeTimer = setTimeout(() => this.#socket?.destroy(), this.#opts.closeTimeoutMs);
      this.#closeTimer.unref();
      if (this.#state === 'connected') this.#endIfDrained();
      // connecting: 'connect' flushes and ends, a failure finishes the close.
    }
    return this.#closed;
  }

  stats(): MonitorClientStats {
    const bufferedUsage = this.#usage.length;
    const buffered =
      bufferedUsage +
      (this.#heartbeatPending ? 1 : 0) +
      (this.#unregisterPending ? 1 : 0) +
      (this.#registerPending ? 1 : 0);
    return {
      state: this.#state,
      sent: this.#sent,
      buffered,
      bufferedUsage,
      heartbeatPending: this.#heartbeatPending,
      socketBufferedBytes: this.#socket?.writableLength ?? 0,
      coalesced: this.#coalesced,
      dropped: this.#droppedUsage + this.#invalid + this.#droppedClosed,
      droppedUsage: this.#droppedUsage,
      invalid: this.#invalid,
      droppedClosed: this.#droppedClosed,
      requeued: this.#requeued,
      reconnects: this.#reconnects,
      connectFailures: this.#connectFailures,
      stalls: this.#stalls,
      lastError: this.#lastError,
    };
  }

  // ---- internals ----

  /**
   * True only while a live connection accepts writes. Invariant: whenever this is true the
   * buffer is empty (it is flushed on 'connect' and 'drain' until empty or write() says stop),
   * so a direct write never overtakes a buffered line.
   */
  #canWrite(): boolean {
    return this.#state === 'connected' && !this.#needDrain && !this.#closeRequested && !this.#socket!.destroyed;
  }

  #write(line: string, kind: LineKind): boolean {
    const socket = this.#socket!;
    this.#sent++;
    // The callback fires with an error only if the connection dies before the kernel took the
    // line; then it is re-queued for the next connection instead of being lost.
    const ok = socket.write(line, (err) => {
      if (err) this.#requeue(line, kind);
      else this.#progress++;
    });
    this.#needDrain = !ok;
    // Bytes Node could not hand to the kernel at once mean a pending write: watch it for a stall.
    if (socket.writableLength > 0) this.#startStallWatch();
    return ok;
  }

  #bufferUsage(line: string): void {
    if (this.#usage.length < this.#opts.maxBufferedUsage) this.#usage.push(line);
    else this.#droppedUsage++;
  }

  #requeue(line: string, kind: LineKind): void {
    if (this.#closeRequested) {
      if (kind !== 'register') this.#droppedClosed++;
      return;
    }
    switch (kind) {
      case 'register':
        return; // re-sent on every connection anyway
      case 'heartbeat':
        this.#heartbeatPending = true;
        break;
      case 'usage':
        this.#bufferUsage(line);
        break;
      case 'unregister':
        if (!this.#registered) this.#unregisterPending = true;
        break;
    }
    this.#requeued++;
  }

  #droppedAfterClose(): Promise<boolean> {
    this.#droppedClosed++;
    return FALSE;
  }

  #ensureConnection(): void {
    if (this.#state === 'idle') this.#connect();
  }

  #connect(): void {
    this.#state = 'connecting';
    this.#needDrain = false;
    const socket = net.createConnection({ path: this.socketPath });
    this.#socket = socket;
    // The connection must never be what keeps the bot's process alive.
    socket.unref();
    this.#connectTimer = setTimeout(() => {
      this.#lastError = 'connect timed out';
      socket.destroy();
    }, this.#opts.connectTimeoutMs);
    this.#connectTimer.unref();
    socket.on('connect', () => this.#onConnect(socket));
    socket.on('drain', () => this.#onDrain(socket));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.#lastError = err.code ?? err.message; // ENOENT, ECONNREFUSED, EAGAIN, EPIPE, ECONNRESET: all mean "retry later"
    });
    socket.on('close', () => this.#onClose(socket));
    // The monitor never replies; reading keeps us told promptly when it goes away (EOF), so we
    // reconnect and re-register before the next heartbeat is due rather than on it.
    socket.on('data', () => {});
  }

  #onConnect(socket: net.Socket): void {
    if (socket !== this.#socket) return;
    this.#clearConnectTimer();
    this.#state = 'connected';
    this.#connectedAt = Date.now();
    if (this.#everConnected) this.#reconnects++;
    this.#everConnected = true;
    this.#needDrain = false;
    // The monitor may have restarted and forgotten us: register goes first on every connection.
    if (this.#registered) this.#registerPending = true;
    this.#flush();
    this.#settleConnectWaiters();
    if (this.#closeRequested) this.#endIfDrained();
  }

  #onDrain(socket: net.Socket): void {
    if (socket !== this.#socket) return;
    this.#needDrain = false;
    this.#progress++;
    this.#flush();
    if (this.#closeRequested) this.#endIfDrained();
  }

  /** Writes the buffer in order until it is empty or the socket asks us to wait. */
  #flush(): void {
    if (this.#registerPending) {
      this.#registerPending = false;
      if (!this.#write(registerLine(this.#id, this.#features), 'register')) return;
    }
    if (this.#usage.length > 0) {
      const usage = this.#usage;
      let i = 0;
      while (i < usage.length) {
        if (!this.#write(usage[i++], 'usage')) break;
      }
      // A re-queue callback cannot run inside this loop (they are asynchronous), so the slice is exact.
      this.#usage = i === usage.length ? [] : usage.slice(i);
      if (this.#needDrain) return;
    }
    if (this.#heartbeatPending) {
      this.#heartbeatPending = false;
      if (!this.#write(heartbeatLine(this.#id), 'heartbeat')) return;
    }
    if (this.#unregisterPending) {
      this.#unregisterPending = false;
      this.#write(unregisterLine(this.#id), 'unregister');
    }
  }

  #onClose(socket: net.Socket): void {
    if (socket !== this.#socket) return;
    const wasConnected = this.#state === 'connected';
    this.#socket = null;
    this.#needDrain = false;
    this.#clearConnectTimer();
    this.#clearStallTimer();
    if (!wasConnected) this.#connectFailures++;
    if (this.#closeRequested) {
      this.#finishClose();
      return;
    }
    // A connection that stayed up a while means the monitor is healthy again: retry fast next time.
    if (wasConnected && Date.now() - this.#connectedAt >= this.#opts.backoffMaxMs)
      this.#backoffMs = this.#opts.backoffInitialMs;
    this.#scheduleReconnect();
    this.#settleConnectWaiters();
  }

  #scheduleReconnect(): void {
    this.#state = 'backoff';
    const base = this.#backoffMs;
    this.#backoffMs = Math.min(base * 2, this.#opts.backoffMaxMs);
    // Jitter: after a monitor restart, thousands of bots must not reconnect in the same millisecond.
    const delay = base / 2 + Math.random() * (base / 2);
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = null;
      if (this.#state === 'backoff' && !this.#closeRequested) this.#connect();
    }, delay);
    this.#reconnectTimer.unref();
  }

  /**
   * Resets the connection if Node has held unwritten bytes for stallTimeoutMs with no write
   * completing meanwhile. Needed because a pending write keeps the event loop alive even on an
   * unref'd socket: without this a finished bot would hang at exit while the monitor is frozen.
   */
  #startStallWatch(): void {
    if (this.#stallTimer) return;
    const socket = this.#socket!;
    let progressAtArm = this.#progress;
    const check = () => {
      this.#stallTimer = null;
      if (socket !== this.#socket || socket.writableLength === 0) return;
      if (this.#progress !== progressAtArm) {
        progressAtArm = this.#progress; // slow but moving: keep watching
        this.#stallTimer = setTimeout(check, this.#opts.stallTimeoutMs);
        this.#stallTimer.unref();
        return;
      }
      this.#stalls++;
      this.#lastError = 'connection stalled (monitor not reading)';
      socket.destroy(); // pending lines come back through the write callbacks (#requeue)
    };
    this.#stallTimer = setTimeout(check, this.#opts.stallTimeoutMs);
    this.#stallTimer.unref();
  }

  #endIfDrained(): void {
    const socket = this.#socket;
    if (!socket || this.#needDrain) return;
    if (this.#usage.length > 0 || this.#heartbeatPending || this.#unregisterPending || this.#registerPending) return;
    // 'finish' means every byte is in the kernel; nothing more to wait for.
    socket.end(() => socket.destroy());
  }

  #finishClose(): void {
    this.#state = 'closed';
    this.#socket = null;
    if (this.#closeTimer) clearTimeout(this.#closeTimer);
    this.#closeTimer = null;
    this.#droppedClosed += this.#usage.length + (this.#heartbeatPending ? 1 : 0) + (this.#unregisterPending ? 1 : 0);
    this.#usage = [];
    this.#heartbeatPending = false;
    this.#unregisterPending = false;
    this.#registerPending = false;
    this.#settleConnectWaiters();
    this.#onClosed?.();
    this.#onClosed = null;
  }

  #settleConnectWaiters(): void {
    const waiters = this.#connectWaiters;
    if (waiters.length === 0) return;
    this.#connectWaiters = [];
    for (const settle of waiters) settle();
  }

  #clearHeartbeatTimer(): void {
    if (this.#heartbeatTimer) clearInterval(this.#heartbeatTimer);
    this.#heartbeatTimer = null;
  }

  #clearConnectTimer(): void {
    if (this.#connectTimer) clearTimeout(this.#connectTimer);
    this.#connectTimer = null;
  }

  #clearStallTimer(): void {
    if (this.#stallTimer) clearTimeout(this.#stallTimer);
    this.#stallTimer = null;
  }
}
