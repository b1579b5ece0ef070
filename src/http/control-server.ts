// The control API: HTTP on a Unix socket beside the bots' socket (same file mode and group), and
// optionally GET /metrics alone on a loopback TCP port for Prometheus. `kissmon status|health|usage|fault` talk to it.
//
//   GET  /status            live registry (JSON array of bots)
//   GET  /health            per-actor health + main-thread ingest counters
//   GET  /usage?since=7d&by=channel   LLM usage report (read pool, never the writer)
//   GET  /latency           heartbeat latency histograms from the registry
//   GET  /metrics           Prometheus text format
//   POST /flush             commit everything received so far; answers when it is in the database
//   POST /latency/reset
//   POST /fault/crash?actor=registry|db|sampler     only with --enable-faults
//   POST /fault/hang?actor=registry|db|sampler      only with --enable-faults
import http from 'node:http';
import type { Registry as MetricsRegistry } from 'prom-client';
import type { Logger } from '../log.js';
import { listenOnSocketPath, type SocketAccess } from '../server/socket-path.js';

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

  /**
   * The full API on a Unix socket (file mode and group like the bots' socket), or only
   * `GET /metrics` on a loopback TCP port: any local user can reach a TCP port, so nothing there
   * may read the registry or change anything.
   */
  async listen(target: { path: string; access: SocketAccess } | { port: number; host: string }): Promise<string> {
    const metricsOnly = !('path' in target);
    const server = http.createServer((req, res) => void this.#handle(req, res, metricsOnly));
    server.keepAliveTimeout = 1_000;
    if ('path' in target) {
      await listenOnSocketPath(server, target.path, target.access);
    } else {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(target.port, target.host, resolve);
      });
    }
    this.#servers.push(server);
    const address = server.address();
    const where = typeof address === 'string' ? address : `http://${address?.address}:${address?.port}/metrics`;
    this.#log.info({ listen: where, metrics_only: metricsOnly }, 'control API listening');
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

  async #handle(req: http.IncomingMessage, res: http.ServerResponse, metricsOnly: boolean): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    try {
      if (req.method === 'GET' && url.pathname === '/metrics') {
        const body = await this.#routes.metrics.metrics();
        res.writeHead(200, { 'content-type': this.#routes.metrics.contentType }).end(body);
        return;
      }
      if (metricsOnly) throw new HttpError(404, 'this port serves GET /metrics only; the control API is on the control socket');
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
