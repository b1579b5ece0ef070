// sd_notify for a `Type=notify` unit. With NOTIFY_SOCKET set (systemd sets it), the monitor sends
//
//   READY=1 + STATUS=…   once the actors are ready and the control API listens
//   WATCHDOG=1           every WATCHDOG_USEC/2, only while `alive()` holds (main loop turns: this
//                        timer fires; every actor answers its pings or is in a bounded restart)
//   STATUS=…             one line (bots by status, actors up, restarts) with every health report
//   STOPPING=1           when shutdown begins
//
// Without NOTIFY_SOCKET nothing is opened or sent. The datagram goes through unix-dgram (Node has no
// AF_UNIX datagram socket). It copies the address with strncpy and passes sizeof(sockaddr_un), so
// an abstract name ('@…', a leading NUL byte whose length counts) cannot be addressed: the monitor
// says so in the log and sends nothing. systemd's own socket is a path (/run/systemd/notify).
import type { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import type { SupervisedHealth } from './actors/health.js';
import { RateLimitedLog, type Logger } from './log.js';
import type { Liveness } from './supervisor/supervisor.js';

/** The part of unix-dgram's Socket the monitor and its tests use (the package ships no types). */
export interface DatagramSocket extends EventEmitter {
  bind(path: string): void;
  /** Unconnected send (sendto). The callback gets an error when the peer is gone or its queue is full. */
  send(buf: Buffer, offset: number, length: number, path: string, callback: (err?: Error) => void): void;
  close(): void;
}

export const unixDgram = createRequire(import.meta.url)('unix-dgram') as {
  createSocket(type: 'unix_dgram', onMessage?: (msg: Buffer) => void): DatagramSocket;
};

export class SystemdNotifier {
  readonly #path: string;
  readonly #log: Logger;
  readonly #sendErrors: RateLimitedLog;
  readonly #socket: DatagramSocket;
  /** WATCHDOG_USEC in ms, or null when systemd did not ask for a watchdog (or asked another pid). */
  readonly watchdogMs: number | null;
  #watchdogTimer: NodeJS.Timeout | null = null;
  #withheld = false;
  #closed = false;

  private constructor(path: string, watchdogMs: number | null, log: Logger) {
    this.#path = path;
    this.#log = log.child({ component: 'systemd' });
    this.#sendErrors = new RateLimitedLog(this.#log, 60_000);
    this.#socket = unixDgram.createSocket('unix_dgram');
    this.watchdogMs = watchdogMs;
  }

  /** A notifier when run by systemd with `Type=notify` (NOTIFY_SOCKET set), else null. */
  static fromEnv(env: NodeJS.ProcessEnv, log: Logger): SystemdNotifier | null {
    const path = env.NOTIFY_SOCKET;
    if (!path) return null;
    if (path.startsWith('@')) {
      log.warn(
        { notify_socket: path },
        'NOTIFY_SOCKET is an abstract socket name, which unix-dgram cannot address: no READY/WATCHDOG/STATUS is sent',
      );
      return null;
    }
    const usec = Number(env.WATCHDOG_USEC);
    // WATCHDOG_PID names the process the watchdog is meant for; absent means this one.
    const forUs = !env.WATCHDOG_PID || Number(env.WATCHDOG_PID) === process.pid;
    return new SystemdNotifier(path, Number.isFinite(usec) && usec > 0 && forUs ? usec / 1000 : null, log);
  }

  ready(status: string): void {
    this.#send(`READY=1\nSTATUS=${oneLine(status)}`);
  }

  status(line: string): void {
    this.#send(`STATUS=${oneLine(line)}`);
  }

  stopping(): void {
    this.#send('STOPPING=1\nSTATUS=stopping');
  }

  /** WATCHDOG=1 every WATCHDOG_USEC/2 while `alive()` holds; a withheld ping is logged once per spell. */
  startWatchdog(alive: () => Liveness): void {
    if (this.watchdogMs === null || this.#watchdogTimer) return;
    const everyMs = this.watchdogMs / 2;
    const tick = () => {
      const liveness = alive();
      if (liveness.alive) {
        if (this.#withheld) this.#log.info('watchdog resumed: every actor answers again');
        this.#withheld = false;
        this.#send('WATCHDOG=1');
      } else if (!this.#withheld) {
        this.#withheld = true;
        this.#log.warn(
          { failing: liveness.failing, watchdog_ms: this.watchdogMs },
          'watchdog withheld: an actor does not prove liveness (systemd restarts the monitor if this lasts WatchdogSec)',
        );
      }
    };
    tick();
    this.#watchdogTimer = setInterval(tick, everyMs);
  }

  /** Stops the watchdog and closes the socket (an open one keeps the process alive). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#watchdogTimer) clearInterval(this.#watchdogTimer);
    this.#socket.close();
  }

  #send(text: string): void {
    if (this.#closed) return;
    const buf = Buffer.from(text);
    this.#socket.send(buf, 0, buf.length, this.#path, (err) => {
      if (err) this.#sendErrors.warn('sd_notify_failed', { err, notify_socket: this.#path }, 'sd_notify failed');
    });
  }
}

/** The STATUS= line: bots by status (from the registry's health), actors up, restarts. */
export function statusLine(report: SupervisedHealth[]): string {
  const actors = report.filter((h) => h.actor !== 'ingest');
  const up = actors.filter((h) => h.up).length;
  const registry = report.find((h) => h.actor === 'registry');
  const bots = registry?.up
    ? (['online', 'stale', 'dead', 'offline'] as const).map((s) => `${registry.detail[s] ?? 0} ${s}`).join(', ')
    : 'bots unknown (registry not answering)';
  const restarts = actors.reduce((n, h) => n + h.restarts, 0);
  const down = actors.filter((h) => !h.up).map((h) => h.actor);
  return `${bots}; actors up ${up}/${actors.length}${down.length ? ` (down: ${down.join(', ')})` : ''}; restarts ${restarts}`;
}

function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ');
}
