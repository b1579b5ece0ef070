// The bots' Unix socket. This is all the main thread does on the data path: accept, frame lines,
// decode and validate, then hand each message to the actor that owns it through a batching Link
// (one postMessage per actor per tick). It never waits on an actor.
//
//   connection:  open ──register/heartbeat the registry accepted──▶ known (no idle timeout)
//                  │ idle for idleTimeoutMs                         │ client closes / error
//                  ▼                                                ▼
//               closed (counted idle_timeouts)                    closed
//
// Only the registry knows whether a register made a bot live (pid alive, room under maxBots), so
// a connection's first register/heartbeat carries its id and the registry answers with the ids it
// accepted (KnownConnections). A connection whose register was refused stays subject to the idle
// timeout. While we are the ones not reading (backpressure, throttle) a timeout is not idleness:
// it is ignored and re-armed, so the connection is still reaped once it is read again and stays silent.
import { unlinkSync } from 'node:fs';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Link } from '../actors/link.js';
import type { MonitorConfig } from '../config.js';
import { RateLimitedLog, type Logger } from '../log.js';
import { decodeLine, REJECT_REASONS, type RejectReason } from '../protocol/decode.js';
import type { BotMessage } from '../protocol/messages.js';
import type { BotSignal, KnownConnections } from '../actors/registry-messages.js';
import type { LlmUsageRow, WriteItem } from '../actors/db-writer-messages.js';
import type { TokenAuth } from './auth.js';
import { listenOnSocketPath } from './socket-path.js';

export interface IngestCounters {
  lines: number;
  accepted: Record<BotMessage['type'], number>;
  rejected: Record<RejectReason, number>;
  line_too_long: number;
  unterminated_closed: number;
  /** Times a connection's reads were paused for sending faster than its line rate. */
  throttled: number;
  /** Times reading paused because an actor was behind, and for how long in all (ms). */
  backpressure_pauses: number;
  backpressure_ms: number;
  auth_failed: number;
  auth_closed: number;
  dropped_overflow: number;
  connections_total: number;
  connections_open: number;
  connections_refused: number;
  idle_timeouts: number;
  socket_errors: number;
}

interface Connection {
  /** Named in BotSignal.conn, so the registry can tell us which connections it accepted. */
  id: number;
  socket: net.Socket;
  /**
   * Bytes of an unfinished line carried over from earlier chunks: `partial[0, partialLength)`.
   * Capacity grows by doubling (never past maxLineBytes) so a line that trickles in a byte per
   * read costs linear copying, not quadratic; released once the line is complete.
   */
  partial: Buffer | null;
  partialLength: number;
  /** Inside an over-long line: skip bytes up to the next newline. */
  discarding: boolean;
  discardedBytes: number;
  known: boolean;
  /** Token bucket for the per-connection line rate; negative = debt to sit out before reading on. */
  tokens: number;
  refilledAt: number;
  throttleTimer: NodeJS.Timeout | null;
  authFailures: number;
}

const MAX_AUTH_FAILURES = 5;

/**
 * Rows a link may hold (read, not yet committed) before reading pauses. The writer commits ~100k
 * rows/s in transactions of up to writer.maxRowsPerTransaction (20,000), so a few of those keep it
 * busy; holding up to 250,000 (half the default bound) only cost memory: the 1,000-bot 400k-row
 * burst peaked at 391 MB RSS with it (docs/PERFORMANCE.md, "Numbers behind code choices").
 */
const PAUSE_READING_AT = 65_536;

const CONNECTION = Symbol('kissmon.connection');
type ConnectedSocket = net.Socket & { [CONNECTION]: Connection };

export class IngestServer {
  readonly counters: IngestCounters = {
    lines: 0,
    accepted: { register: 0, heartbeat: 0, unregister: 0, llm_usage: 0 },
    rejected: Object.fromEntries(REJECT_REASONS.map((r) => [r, 0])) as Record<RejectReason, number>,
    line_too_long: 0,
    unterminated_closed: 0,
    throttled: 0,
    backpressure_pauses: 0,
    backpressure_ms: 0,
    auth_failed: 0,
    auth_closed: 0,
    dropped_overflow: 0,
    connections_total: 0,
    connections_open: 0,
    connections_refused: 0,
    idle_timeouts: 0,
    socket_errors: 0,
  };
  readonly #config: MonitorConfig;
  readonly #registry: Link<BotSignal>;
  readonly #writer: Link<WriteItem>;
  readonly #log: Logger;
  readonly #rateLog: RateLimitedLog;
  readonly #auth: TokenAuth | null;
  readonly #connections = new Map<number, Connection>();
  #lastConnectionId = 0;
  #server: net.Server | null = null;
  #lastAcceptAt = 0;
  #lastDataAt = 0;
  #draining = false;
  /** Reading from every connection is paused because an actor is behind (see #checkBackpressure). */
  #backpressured = false;
  #backpressureSince = 0;
  #backpressureTimer: NodeJS.Timeout | null = null;
  /** Rows held for one link at which reading pauses (resumes at half). */
  readonly #pauseAt: number;
  readonly #socketHandlers = (() => {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const server = this;
    return {
      timeout(this: ConnectedSocket) {
        server.#onTimeout(this[CONNECTION]);
      },
      data(this: ConnectedSocket, chunk: Buffer) {
        server.#onData(this[CONNECTION], chunk);
      },
      // A one-shot client's last line may lack its newline: the end of the stream ends the line.
      end(this: ConnectedSocket) {
        server.#finishPartial(this[CONNECTION]);
      },
      error(err: Error) {
        server.counters.socket_errors++;
        server.#rateLog.warn('socket_error', { code: (err as NodeJS.ErrnoException).code }, 'connection error');
      },
      close(this: ConnectedSocket) {
        server.#onClose(this[CONNECTION]);
      },
    };
  })();

  constructor(options: {
    config: MonitorConfig;
    registry: Link<BotSignal>;
    writer: Link<WriteItem>;
    log: Logger;
    auth: TokenAuth | null;
  }) {
    this.#config = options.config;
    this.#registry = options.registry;
    this.#writer = options.writer;
    this.#log = options.log.child({ component: 'ingest' });
    this.#rateLog = new RateLimitedLog(this.#log);
    this.#auth = options.auth;
    this.#pauseAt = Math.min(PAUSE_READING_AT, this.#config.limits.maxPendingPerLink / 2);
  }

  /** Binds the socket. A stale file from a crashed monitor is replaced; a live monitor's never is. */
  async listen(): Promise<void> {
    const path = this.#config.socketPath;
    const server = net.createServer((socket) => this.#accept(socket));
    server.maxConnections = this.#config.limits.maxConnections;
    server.on('drop', () => {
      this.counters.connections_refused++;
      this.#rateLog.warn(
        'max_connections',
        { max_connections: this.#config.limits.maxConnections },
        'connection refused: maxConnections reached',
      );
    });
    await listenOnSocketPath(server, path, { mode: this.#config.socketMode, group: this.#config.socketGroup }, 4096);
    server.on('error', (err) => this.#log.error({ err }, 'socket server error'));
    this.#server = server;
    this.#log.info(
      { socket: path, mode: this.#config.socketMode.toString(8), group: this.#config.socketGroup },
      'listening',
    );
  }

  /**
   * Shutdown, part one. Unlinks the socket path so no new client can find it, keeps accepting what
   * the kernel already queued in the listen backlog until accepts go quiet, then stops listening and
   * reads every open connection until it has been quiet for `quietMs` (or `maxMs` passed).
   */
  async drain(quietMs = 100, maxMs = 3_000): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = null;
    const deadline = performance.now() + maxMs;
    try {
      unlinkSync(this.#config.socketPath);
    } catch {
      // already gone
    }
    const quiet = async (lastActivity: () => number) => {
      while (performance.now() < deadline && performance.now() - lastActivity() < quietMs) {
        await new Promise((r) => setTimeout(r, quietMs / 4));
      }
    };
    // Shutdown reads everything already written: no connection stays throttled.
    this.#draining = true;
    this.#endBackpressure();
    for (const conn of this.#connections.values()) {
      if (conn.throttleTimer) clearTimeout(conn.throttleTimer);
      conn.throttleTimer = null;
      conn.socket.resume();
    }
    this.#lastAcceptAt = performance.now();
    await quiet(() => this.#lastAcceptAt);
    // close() stops accepting now but calls back only once every connection has ended, which a
    // persistent bot never does by itself: wait for that only after closing them below.
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    await quiet(() => this.#lastDataAt);
    for (const conn of this.#connections.values()) this.#finishPartial(conn);
    for (const conn of this.#connections.values()) conn.socket.destroy();
    await closed;
    this.#registry.flush();
    this.#writer.flush();
  }

  stats() {
    return { ...this.counters, accepted: { ...this.counters.accepted }, rejected: { ...this.counters.rejected } };
  }

  #accept(socket: net.Socket): void {
    this.#lastAcceptAt = performance.now();
    const conn: Connection = {
      id: ++this.#lastConnectionId,
      socket,
      partial: null,
      partialLength: 0,
      discarding: false,
      discardedBytes: 0,
      known: false,
      tokens: this.#config.limits.maxLinesPerSecondPerConnection,
      refilledAt: performance.now(),
      throttleTimer: null,
      authFailures: 0,
    };
    this.#connections.set(conn.id, conn);
    if (this.#backpressured) socket.pause();
    this.counters.connections_total++;
    this.counters.connections_open++;
    socket.setTimeout(this.#config.limits.idleTimeoutMs);
    // One set of handlers for every socket (the connection rides on the socket): no closures per
    // connection, which a one-shot client (a connection per line) would otherwise allocate five of.
    (socket as ConnectedSocket)[CONNECTION] = conn;
    /* eslint-disable @typescript-eslint/unbound-method -- they are meant to run with the socket as `this` */
    socket.on('timeout', this.#socketHandlers.timeout);
    socket.on('data', this.#socketHandlers.data);
    socket.on('end', this.#socketHandlers.end);
    socket.on('error', this.#socketHandlers.error);
    socket.on('close', this.#socketHandlers.close);
    /* eslint-enable @typescript-eslint/unbound-method */
  }

  #onTimeout(conn: Connection): void {
    if (conn.known) return;
    if (this.#backpressured || conn.throttleTimer) {
      // Not idle: we are the ones not reading, its lines may be waiting. A fired timer only
      // re-arms on activity, so re-arm it here or a silent connection would never be reaped.
      conn.socket.setTimeout(this.#config.limits.idleTimeoutMs);
      return;
    }
    this.counters.idle_timeouts++;
    conn.socket.destroy();
  }

  #onClose(conn: Connection): void {
    if (conn.throttleTimer) clearTimeout(conn.throttleTimer);
    this.#connections.delete(conn.id);
    this.counters.connections_open--;
  }

  #onData(conn: Connection, chunk: Buffer): void {
    this.#throttle(conn, this.#frame(conn, chunk));
    this.#checkBackpressure();
  }

  /** The registry's answer to connections' first register/heartbeat: these made their bot live. */
  markKnown(signal: KnownConnections): void {
    for (const id of signal.known) {
      const conn = this.#connections.get(id);
      if (!conn || conn.known) continue;
      conn.known = true;
      conn.socket.setTimeout(0);
    }
  }

  /** True while reading is paused because an actor is behind; the registry does not count that time against bots. */
  get backpressured(): boolean {
    return this.#backpressured;
  }

  /**
   * Backpressure instead of loss: once a link holds PAUSE_READING_AT rows (or half of
   * maxPendingPerLink, if less: the writer is locked or slower than the bots), stop reading every
   * connection until it is down to half of that. The excess waits in kernel and client buffers,
   * which both clients handle, rather than being held here or dropped at the bound. Checked per
   * chunk: two property reads.
   */
  #checkBackpressure(): void {
    if (this.#backpressured || this.#draining) return;
    const high = this.#pauseAt;
    if (this.#writer.pending < high && this.#registry.pending < high) return;
    this.#backpressured = true;
    this.#backpressureSince = performance.now();
    this.counters.backpressure_pauses++;
    this.#rateLog.warn(
      'backpressure',
      { writer_pending: this.#writer.pending, registry_pending: this.#registry.pending },
      'an actor is behind: reading paused until it catches up',
    );
    for (const conn of this.#connections.values()) conn.socket.pause();
    const low = high / 2;
    this.#backpressureTimer = setInterval(() => {
      if (this.#writer.pending < low && this.#registry.pending < low) this.#endBackpressure();
    }, 20);
  }

  #endBackpressure(): void {
    if (!this.#backpressured) return;
    this.#backpressured = false;
    clearInterval(this.#backpressureTimer!);
    this.#backpressureTimer = null;
    this.counters.backpressure_ms += Math.round(performance.now() - this.#backpressureSince);
    for (const conn of this.#connections.values()) if (!conn.throttleTimer) conn.socket.resume();
  }

  /**
   * Splits a chunk into lines. Returns how many line ends it saw, empty lines included: the line
   * rate limits what a connection costs the main thread, and a chunk of 64 Ki bare newlines costs
   * as much looping as a chunk of real lines (unthrottled, one such flooder slowed every other
   * bot's heartbeats: docs/PERFORMANCE.md, "Numbers behind code choices").
   */
  #frame(conn: Connection, chunk: Buffer): number {
    this.#lastDataAt = performance.now();
    const limits = this.#config.limits;
    let start = 0;
    let ends = 0;
    if (conn.discarding) {
      const nl = chunk.indexOf(10);
      if (nl === -1) {
        conn.discardedBytes += chunk.length;
        if (conn.discardedBytes > limits.maxUnterminatedBytes) this.#closeUnterminated(conn);
        return 0;
      }
      conn.discarding = false;
      conn.discardedBytes = 0;
      start = nl + 1;
      ends++;
    }
    let nl = chunk.indexOf(10, start);
    if (nl !== -1 && conn.partial) {
      const line = Buffer.concat([conn.partial.subarray(0, conn.partialLength), chunk.subarray(start, nl)]);
      this.#releasePartial(conn);
      this.#line(conn, line);
      ends++;
      start = nl + 1;
      nl = chunk.indexOf(10, start);
    }
    // Stop at once when a line got the connection closed (auth failures): nothing after it counts.
    while (nl !== -1 && !conn.socket.destroyed) {
      if (nl > start) this.#line(conn, chunk.subarray(start, nl)); // no Buffer for an empty line
      ends++;
      start = nl + 1;
      nl = chunk.indexOf(10, start);
    }
    if (start < chunk.length && !conn.socket.destroyed) {
      const rest = chunk.subarray(start);
      const held = conn.partialLength + rest.length;
      if (held > limits.maxLineBytes) {
        // Over-long line: forget what we hold and skip to its newline.
        this.#countTooLong();
        this.#releasePartial(conn);
        conn.discarding = true;
        conn.discardedBytes = held;
        if (held > limits.maxUnterminatedBytes) this.#closeUnterminated(conn);
      } else {
        this.#hold(conn, rest);
      }
    }
    return ends;
  }

  /** Copies the start of an unfinished line (a chunk's memory would otherwise stay pinned while we wait). */
  #hold(conn: Connection, rest: Buffer): void {
    const need = conn.partialLength + rest.length; // <= maxLineBytes, checked by the caller
    if (!conn.partial || need > conn.partial.length) {
      const capacity = Math.min(this.#config.limits.maxLineBytes, Math.max(need, 2 * (conn.partial?.length ?? 0), 256));
      const grown = Buffer.allocUnsafe(capacity); // bytes past partialLength are never read
      conn.partial?.copy(grown, 0, 0, conn.partialLength);
      conn.partial = grown;
    }
    rest.copy(conn.partial, conn.partialLength);
    conn.partialLength = need;
  }

  #releasePartial(conn: Connection): void {
    conn.partial = null;
    conn.partialLength = 0;
  }

  #finishPartial(conn: Connection): void {
    const partial = conn.partial;
    const length = conn.partialLength;
    this.#releasePartial(conn);
    if (partial && !conn.discarding && !conn.socket.destroyed) this.#line(conn, partial.subarray(0, length));
  }

  #countTooLong(): void {
    this.counters.line_too_long++;
    this.#rateLog.warn(
      'line_too_long',
      { max_line_bytes: this.#config.limits.maxLineBytes },
      'line longer than the limit: discarded',
    );
  }

  #closeUnterminated(conn: Connection): void {
    this.counters.unterminated_closed++;
    this.#rateLog.warn(
      'unterminated_closed',
      { max_unterminated_bytes: this.#config.limits.maxUnterminatedBytes },
      'connection sent too much without a newline: closed',
    );
    conn.socket.destroy();
  }

  #line(conn: Connection, line: Buffer): void {
    // A line that arrived whole, or whose end completed a held start, can still be over the limit.
    if (line.length > this.#config.limits.maxLineBytes) {
      this.#countTooLong();
      return;
    }
    let end = line.length;
    if (end > 0 && line[end - 1] === 13) end--; // tolerate CRLF
    if (end === 0) return;
    if (end !== line.length) line = line.subarray(0, end);
    this.counters.lines++;
    const decoded = decodeLine(line, this.#config.limits.maxJsonDepth);
    if (!decoded.ok) {
      this.counters.rejected[decoded.reason]++;
      this.#rateLog.warn(
        `rejected_${decoded.reason}`,
        { reason: decoded.reason, detail: decoded.detail },
        'bad line skipped',
      );
      return;
    }
    const msg = decoded.message;
    if (this.#auth && !this.#auth.check(msg.channel, msg.token)) {
      this.counters.auth_failed++;
      this.#rateLog.warn(
        'auth_failed',
        { type: msg.type, channel: msg.channel },
        'message refused: missing or wrong token',
      );
      if (++conn.authFailures >= MAX_AUTH_FAILURES) {
        this.counters.auth_closed++;
        this.#rateLog.warn(
          'auth_closed',
          { max_auth_failures: MAX_AUTH_FAILURES },
          'connection closed after repeated auth failures',
        );
        conn.socket.destroy();
      }
      return;
    }
    this.counters.accepted[msg.type]++;
    const at = Date.now();
    let handed: boolean;
    if (msg.type === 'llm_usage') {
      const row: LlmUsageRow = {
        type: 'llm_usage',
        at,
        channel: msg.channel,
        model: msg.model,
        feature: msg.feature,
        tokens_in: msg.tokens_in,
        tokens_out: msg.tokens_out,
        latency_ms: msg.latency_ms ?? null,
      };
      if (msg.id !== undefined) row.id = msg.id;
      // Only what a client sent: an old client's row stays as small as it was.
      if (msg.tokens_cached !== undefined) row.tokens_cached = msg.tokens_cached;
      if (msg.tokens_reasoning !== undefined) row.tokens_reasoning = msg.tokens_reasoning;
      if (msg.provider !== undefined) row.provider = msg.provider;
      if (msg.status !== undefined) row.status = msg.status;
      if (msg.error_type !== undefined) row.error_type = msg.error_type;
      if (msg.request_id !== undefined) row.request_id = msg.request_id;
      handed = this.#writer.send(row);
    } else {
      const signal: BotSignal = { type: msg.type, channel: msg.channel, pid: msg.pid, at };
      if (!conn.known && msg.type !== 'unregister') signal.conn = conn.id;
      if (msg.type === 'register' && msg.features) signal.features = msg.features;
      if (msg.type === 'unregister' && msg.reason !== undefined) signal.reason = msg.reason;
      if (msg.ts !== undefined) signal.sent_at = msg.ts;
      handed = this.#registry.send(signal);
    }
    if (!handed) {
      this.counters.dropped_overflow++;
      this.#rateLog.warn(
        'dropped_overflow',
        { type: msg.type, max_pending: this.#config.limits.maxPendingPerLink },
        'actor queue full: message dropped',
      );
    }
  }

  /**
   * Per-connection line rate as backpressure, never as loss: a connection that used more than its
   * tokens stops being read until the debt is repaid, so its lines wait in the kernel buffer (and
   * the sender's) while every other connection is served. Accounted per chunk: one clock read.
   */
  #throttle(conn: Connection, lines: number): void {
    if (lines === 0 && conn.tokens >= 0) return; // the middle of a long line: nothing to account
    const rate = this.#config.limits.maxLinesPerSecondPerConnection;
    const now = performance.now();
    conn.tokens = Math.min(rate, conn.tokens + ((now - conn.refilledAt) * rate) / 1000) - lines;
    conn.refilledAt = now;
    if (conn.tokens >= 0 || conn.throttleTimer || conn.socket.destroyed || this.#draining) return;
    this.counters.throttled++;
    this.#rateLog.warn(
      'throttled',
      { max_lines_per_second: rate },
      'connection over its line rate: reading it more slowly',
    );
    conn.socket.pause();
    conn.throttleTimer = setTimeout(
      () => {
        conn.throttleTimer = null;
        if (!this.#backpressured) conn.socket.resume();
      },
      Math.ceil((-conn.tokens * 1000) / rate),
    );
  }
}
