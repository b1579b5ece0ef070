// The old API, for code written against it: one connection per message, a boolean result.
// Better inside than the old Python module it mirrors: it never waits for the monitor beyond
// `timeoutMs` (default 2000) and never rejects. A Unix-socket connect settles at once — absent,
// refusing or a full listen backlog (a frozen monitor) all fail immediately — so in practice a call
// resolves in well under a millisecond either way. Prefer MonitorClient for new code: one
// persistent connection instead of a connect per message.
import net from 'node:net';
import type { Features } from './protocol.js';
import { MonitorClient, type MonitorClientOptions } from './monitor-client.js';
import {
  defaultSocketPath,
  defaultToken,
  featuresProblem,
  heartbeatLine,
  isChannel,
  isPid,
  isToken,
  registerLine,
  unregisterLine,
  type Identity,
} from './wire.js';

export interface OneShotOptions {
  /** Auth token; default env KISSBOT_MONITOR_TOKEN, else none. */
  token?: string;
  /** Give up (resolve false) after this long. Default 2000. */
  timeoutMs?: number;
}

/** Registers with a one-shot connection. Resolves true when the line reached the socket. */
export function registerWithMonitor(
  channel: string,
  pid: number,
  features: Features = {},
  socketPath: string = defaultSocketPath(),
  options: OneShotOptions = {},
): Promise<boolean> {
  const id = identity(channel, pid, options);
  if (!id || featuresProblem(features) !== null) return Promise.resolve(false);
  return sendOnce(registerLine(id, features), socketPath, options.timeoutMs);
}

export function sendHeartbeat(
  channel: string,
  pid: number,
  socketPath: string = defaultSocketPath(),
  options: OneShotOptions = {},
): Promise<boolean> {
  const id = identity(channel, pid, options);
  if (!id) return Promise.resolve(false);
  return sendOnce(heartbeatLine(id), socketPath, options.timeoutMs);
}

export function unregisterFromMonitor(
  channel: string,
  pid: number,
  socketPath: string = defaultSocketPath(),
  options: OneShotOptions = {},
): Promise<boolean> {
  const id = identity(channel, pid, options);
  if (!id) return Promise.resolve(false);
  return sendOnce(unregisterLine(id), socketPath, options.timeoutMs);
}

/**
 * Periodic heartbeats for code that registers with registerWithMonitor(). Runs on one persistent
 * MonitorClient (no connection per beat); the first beat goes out one interval after start().
 */
export class HeartbeatTask {
  #options: MonitorClientOptions;
  #client: MonitorClient | null = null;

  constructor(
    channel: string,
    pid: number,
    intervalMs = 30_000,
    socketPath: string = defaultSocketPath(),
    options: { token?: string } = {},
  ) {
    this.#options = { channel, pid, socketPath, token: options.token, heartbeatIntervalMs: intervalMs };
    // Validate now (a client connects lazily, so this has no side effect): bad arguments throw
    // TypeError here rather than in start().
    void new MonitorClient(this.#options);
  }

  get running(): boolean {
    return this.#client !== null;
  }

  /** Starts the beats (idempotent); a stopped task can be started again. */
  start(): void {
    if (this.#client) return;
    this.#client = new MonitorClient(this.#options);
    this.#client.startHeartbeat();
  }

  /** Stops the beats and closes the connection (idempotent). */
  async stop(): Promise<void> {
    const client = this.#client;
    this.#client = null;
    await client?.close();
  }
}

function identity(channel: string, pid: number, options: OneShotOptions): Identity | null {
  const token = defaultToken(options.token);
  // The old API never threw: a call the monitor would refuse resolves false instead.
  if (!isChannel(channel) || !isPid(pid) || !isToken(token)) return null;
  return { channel, pid, token };
}

function sendOnce(line: string, socketPath: string, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    let settled = false;
    const socket = net.createConnection({ path: socketPath });
    socket.unref();
    const finish = (ok: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    timer.unref();
    socket.on('error', () => finish(false));
    socket.on('close', () => finish(false));
    // 'finish' of end(): the line is in the kernel; the monitor reads it even after we close.
    // end()'s callback gets an error if the connection failed before the line was flushed.
    socket.on('connect', () => socket.end(line, ((err?: Error | null) => finish(!err)) as () => void));
  });
}
