// The control API: HTTP on a Unix socket beside the bots' socket (same file mode), and optionally
// on a loopback TCP port for Prometheus. `kissmon status|health|usage|fault` talk to it.
//
//   GET  /status            live registry (JSON array of bots)
//   GET  /health            per-actor health + main-thread ingest counters
//   GET  /usage?since=7d&by=channel   LLM usage report (read pool, never the writer)
//   GET  /latency           heartbeat latency histograms from the registry
//   GET  /metrics           Prometheus text format
//   POST /flush             commit everything received so far; answers when it is in the database
//   POST /latency/reset
//   POST /fault/crash?actor=registry|db|sampler     only with --enable-faults
import { chmodSync } from 'node:fs';
import http from 'node:http';
import type { Registry as MetricsRegistry } from 'prom-client';
import type { Logger } from '../log.js';
import { claimSocketPath } from '../server/socket-path.js';

export type Handler = (query: URLSearchParams) => Promise<unknown>;

export class HttpError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export interface ControlRoutes {
  get: Record<string, Handler>;
  post: Record<string, Handler>;
  metrics: MetricsRegistry;
}

export class ControlServer {
  readonly #routes: ControlRoutes;
  readonly #log: Logger;
  readonly #servers: http.Server[] = [];

  constructor(routes: ControlRoutes, log: Logger) {
    this.#routes = routes;
    this.#log = log.child({ component: 'control' });
  }

  async listen(target: { path: string; mode: number } | { port: number; host: string }): Promise<string> {
    if ('path' in target) await claimSocketPath(target.path);
    const server = http.createServer((req, res) => void this.#handle(req, res));
    server.keepAliveTimeout = 1_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      if ('path' in target) server.listen(target.path, resolve);
      else server.listen(target.port, target.host, resolve);
    });
    if ('path' in target) chmodSync(target.path, target.mode);
    this.#servers.push(server);
    const address = server.address();
    const where = typeof address === 'string' ? address : `http://${address?.address}:${address?.port}`;
    this.#log.info({ listen: where }, 'control API listening');
    return where;
  }

  async close(): Promise<void> {
    await Promise.all(
      this.#servers.map((server) => new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      })),
    );
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    try {
      if (req.method === 'GET' && url.pathname === '/metrics') {
        const body = await this.#routes.metrics.metrics();
        res.writeHead(200, { 'content-type': this.#routes.metrics.contentType }).end(body);
        return;
      }
      const table = req.method === 'GET' ? this.#routes.get : req.method === 'POST' ? this.#routes.post : undefined;
      const handler = table && Object.hasOwn(table, url.pathname) ? table[url.pathname] : undefined;
      if (!handler) throw new HttpError(404, `no route ${req.method} ${url.pathname}`);
      const body = await handler(url.searchParams);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    } catch (err) {
      const status = err instanceof HttpError ? err.status : 500;
      if (status === 500) this.#log.error({ err, path: url.pathname }, 'control request failed');
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: (err as Error).message }));
    }
  }
}
