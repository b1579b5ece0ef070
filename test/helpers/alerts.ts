// Alert tests' real parts: an HTTP receiver on 127.0.0.1 (node:http) that records every POST, and
// a config file with short alert windows so the lifecycle runs in seconds.
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { killStarted, startMonitor, stopMonitor, TestDir, type MonitorProcess } from './monitor-process.js';

export interface Received {
  path: string;
  body: unknown;
  at: number;
  /** What the receiver answered. */
  status: number;
}

/** One Alertmanager v4 notification, boiled down to what the tests compare. */
export interface Seen {
  status: string;
  alerts: { status: string; alertname: string; channel?: string; reason?: string }[];
}

export class TestReceiver {
  readonly received: Received[] = [];
  /** Answer 500 to the first body received and to every repeat of it, forever (a poisoned notification). */
  refuseFirstPayload = false;
  #refused: string | null = null;
  #server: http.Server | null = null;
  #port = 0;

  /** Listens on 127.0.0.1 (a fresh port, or `port` to come back on the same one). */
  async listen(port = this.#port): Promise<this> {
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // kept as text: the test fails on it
        }
        const status = this.refuseFirstPayload && (this.#refused ??= text) === text ? 500 : 200;
        this.received.push({ path: req.url ?? '', body, at: Date.now(), status });
        res.writeHead(status, { 'content-type': 'text/plain' }).end(status === 200 ? 'ok' : 'no');
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    this.#server = server;
    this.#port = (server.address() as AddressInfo).port;
    return this;
  }

  url(path = '/'): string {
    return `http://127.0.0.1:${this.#port}${path}`;
  }

  /** Stops listening (connections refused) and drops open keep-alive connections. */
  async close(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = null;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  /** The Alertmanager payloads received on `path`, each reduced to status + (alertname, channel) per alert. */
  seen(path = '/'): Seen[] {
    return this.received
      .filter((r) => r.path === path)
      .map((r) => {
        const body = r.body as { status: string; alerts: { status: string; labels: Record<string, string> }[] };
        return {
          status: body.status,
          alerts: body.alerts.map((a) => ({
            status: a.status,
            alertname: a.labels.alertname,
            ...(a.labels.channel !== undefined ? { channel: a.labels.channel } : {}),
            ...(a.labels.reason !== undefined ? { reason: a.labels.reason } : {}),
          })),
        };
      });
  }
}

/** Writes a config file with these alert settings (and any other settings) into the test dir. */
export function alertConfig(
  dir: TestDir,
  alerts: Record<string, unknown>,
  other: Record<string, unknown> = {},
): string {
  const path = join(dir.path, 'config.json');
  writeFileSync(
    path,
    JSON.stringify({ sampleIntervalMs: 500, ...other, alerts: { groupWaitMs: 300, groupIntervalMs: 800, ...alerts } }),
  );
  return path;
}

export interface AlertMonitor {
  dir: TestDir;
  receiver: TestReceiver;
  /** The config file the monitor runs with. */
  config: string;
  /** The running monitor (a test that restarts it sets the new one). */
  monitor: MonitorProcess;
}

/**
 * A suite's monitor with a receiver on 127.0.0.1: started in `before` with the settings `setup`
 * returns (it may write files into the dir first), everything ended in `after`.
 */
export function alertMonitor(
  setup: (dir: TestDir, receiver: TestReceiver) => { alerts: Record<string, unknown>; other?: Record<string, unknown> },
): AlertMonitor {
  const ctx = { dir: new TestDir(), receiver: new TestReceiver() } as AlertMonitor;
  before(async () => {
    await ctx.receiver.listen();
    const { alerts, other } = setup(ctx.dir, ctx.receiver);
    ctx.config = alertConfig(ctx.dir, alerts, other);
    ctx.monitor = await startMonitor(ctx.dir, ['--config', ctx.config]);
  });
  after(async () => {
    await killStarted();
    if (ctx.monitor) await stopMonitor(ctx.monitor);
    await ctx.receiver.close();
    ctx.dir.remove();
  });
  return ctx;
}
