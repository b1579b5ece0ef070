// The control API: HTTP on Unix sockets beside the bots' socket, and optionally GET /metrics alone
// on a loopback TCP port for Prometheus. `kissmon status|health|usage|fault` talk to it.
//
//   listener            file / address                 serves
//   read                <socket>.ctl   (socketMode, socketGroup: bots may read)   read routes
//   admin               <socket>.admin (0600, the monitor's uid only)            read + admin routes
//   metrics             127.0.0.1:--metrics-port       GET /metrics only
//
// Routes are data (ControlRoute): method, path, read or admin, a TypeBox schema of the query string,
// and a handler that gets the checked query. Everything a hostile or broken client can send — bad
// URLs or percent-encoding, oversized headers, slowloris, bodies, TLS bytes, unknown routes and
// methods, bad query values — ends in a 4xx (or a closed connection where HTTP has no answer),
// a counter by reason (`control_rejected` in health, kissmon_control_rejected_total) and a
// rate-limited log line. No request can throw out of the handler.
import http from 'node:http';
import type { Socket } from 'node:net';
import { type Static, type TObject } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { MonitorError } from '../errors.js';
import { RateLimitedLog, type Logger } from '../log.js';
import { listenOnSocketPath, type SocketAccess } from '../server/socket-path.js';

/** The one path the metrics (TCP) listener serves. */
export const METRICS_PATH = '/metrics';

/** Headers beyond this many bytes are refused with 431 (Node's default is 16 KiB; ours are tiny). */
const MAX_HEADER_BYTES = 8 * 1024;
/** A request whose headers have not arrived by then is answered 408 and closed (slowloris). */
const HEADERS_TIMEOUT_MS = 5_000;
const REQUEST_TIMEOUT_MS = 10_000;
/** How often Node checks the two timeouts above (its default, 30 s, would let slowloris sit that long). */
const TIMEOUT_CHECK_MS = 500;
/** No route takes a body; a small one (a client that always sends `{}`) is read and ignored. */
const MAX_BODY_BYTES = 1024;
/** Connections per listener; beyond it new ones are closed at once (counted as too_many_connections). */
const MAX_CONNECTIONS = 256;

/** A handler's refusal: sent as `status` with the message (4xx), and counted. */
export class HttpError extends MonitorError {
  readonly status: number;
  constructor(status: number, message: string) {
    super('ERR_HTTP', message);
    this.status = status;
  }
}

/** A handler's answer that is sent as is (e.g. Prometheus text) instead of as JSON. */
export class TextBody {
  constructor(
    readonly contentType: string,
    readonly text: string,
  ) {}
}

export interface ControlRoute<Q extends TObject = TObject> {
  method: 'GET' | 'POST';
  path: string;
  /** Admin routes change something (flush, faults): served only on the admin socket. */
  admin: boolean;
  /** Never mounted on the HTTP front, even with its token: the control sockets only (fault injection, the monitor's file paths). */
  socketOnly?: true;
  /** The query string, as an object of strings; anything else is a 400 naming the parameter. */
  query: Q;
  handler: (query: Static<Q>) => Promise<unknown>;
}

/** Declares a route with its handler typed by its query schema. */
export function route<Q extends TObject>(definition: ControlRoute<Q>): ControlRoute {
  return definition as unknown as ControlRoute;
}

export type ListenerKind = 'read' | 'admin' | 'metrics';

/** Why a request was refused; each is a counter. */
type ControlRejectReason =
  | 'bad_request'
  | 'header_too_large'
  | 'timeout'
  | 'too_many_connections'
  | 'bad_url'
  | 'bad_query'
  | 'not_found'
  | 'method_not_allowed'
  | 'body_too_large'
  | 'admin_only'
  | 'refused';

interface CompiledRoute {
  route: ControlRoute;
  check: TypeCheck<TObject>;
}

export class ControlServer {
  readonly #routes = new Map<string, Map<string, CompiledRoute>>();
  readonly #log: Logger;
  readonly #rateLimited: RateLimitedLog;
  readonly #servers: http.Server[] = [];
  readonly #rejected: Record<string, number> = {};

  constructor(routes: ControlRoute[], log: Logger) {
    for (const r of routes) {
      const byMethod = this.#routes.get(r.path) ?? new Map<string, CompiledRoute>();
      if (byMethod.has(r.method)) throw new TypeError(`routes: ${r.method} ${r.path} declared twice`);
      byMethod.set(r.method, { route: r, check: TypeCompiler.Compile(r.query) });
      this.#routes.set(r.path, byMethod);
    }
    this.#log = log.child({ component: 'control' });
    this.#rateLimited = new RateLimitedLog(this.#log);
  }

  /** Refused requests by reason, since start. */
  rejected(): Record<string, number> {
    return { ...this.#rejected };
  }

  async listen(
    kind: ListenerKind,
    target: { path: string; access: SocketAccess } | { port: number; host: string },
  ): Promise<string> {
    const server = http.createServer(
      {
        maxHeaderSize: MAX_HEADER_BYTES,
        headersTimeout: HEADERS_TIMEOUT_MS,
        requestTimeout: REQUEST_TIMEOUT_MS,
        connectionsCheckingInterval: TIMEOUT_CHECK_MS,
        keepAliveTimeout: 1_000,
      },
      (req, res) => void this.#handle(kind, req, res),
    );
    server.maxConnections = MAX_CONNECTIONS;
    server.maxRequestsPerSocket = 100;
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => this.#clientError(kind, err, socket));
    server.on('drop', () => this.#reject(kind, 'too_many_connections', {}));
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
    this.#log.info({ listen: where, serves: kind }, 'control API listening');
    return where;
  }

  async close(): Promise<void> {
    await Promise.all(
      this.#servers.map(
        (server) =>
          new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeAllConnections();
          }),
      ),
    );
  }

  #reject(kind: ListenerKind, reason: ControlRejectReason, fields: Record<string, unknown>): void {
    this.#rejected[reason] = (this.#rejected[reason] ?? 0) + 1;
    this.#rateLimited.warn(`control_${reason}`, { listener: kind, ...fields }, 'control request rejected');
  }

  /** The HTTP parser gave up on the bytes (TLS, garbage, huge headers) or a timeout fired. */
  #clientError(kind: ListenerKind, err: NodeJS.ErrnoException, socket: Socket): void {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const [status, reason]: [string, ControlRejectReason] =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? ['431 Request Header Fields Too Large', 'header_too_large']
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? ['408 Request Timeout', 'timeout']
          : ['400 Bad Request', 'bad_request'];
    this.#reject(kind, reason, { code: err.code });
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    socket.destroySoon();
  }

  async #handle(kind: ListenerKind, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let path = '?';
    try {
      const target = parseTarget(req.url ?? '');
      if (typeof target === 'string') return this.#refuse(kind, req, res, 400, 'bad_url', target);
      path = target.pathname;
      const body = await readSmallBody(req);
      if (!body)
        return this.#refuse(
          kind,
          req,
          res,
          413,
          'body_too_large',
          `no route takes a body (at most ${MAX_BODY_BYTES} bytes are ignored)`,
        );

      const byMethod = this.#routes.get(path);
      if (!byMethod || (kind === 'metrics' && path !== METRICS_PATH)) {
        const hint =
          kind === 'metrics' ? '; this port serves GET /metrics only, the control API is on the control socket' : '';
        return this.#refuse(kind, req, res, 404, 'not_found', `no route ${path}${hint}`);
      }
      const compiled = byMethod.get(req.method ?? '');
      if (!compiled) {
        res.setHeader('allow', [...byMethod.keys()].join(', '));
        return this.#refuse(
          kind,
          req,
          res,
          405,
          'method_not_allowed',
          `${path} answers ${[...byMethod.keys()].join(', ')}`,
        );
      }
      if (compiled.route.admin && kind !== 'admin') {
        return this.#refuse(
          kind,
          req,
          res,
          403,
          'admin_only',
          `${req.method} ${path} is an admin route: it is served only on the admin socket (mode 0600, the monitor's own user)`,
        );
      }
      const query = Object.fromEntries(target.searchParams);
      if (!compiled.check.Check(query))
        return this.#refuse(kind, req, res, 400, 'bad_query', queryError(compiled.route, compiled.check, query));

      const result = await compiled.route.handler(query);
      if (result instanceof TextBody) res.writeHead(200, { 'content-type': result.contentType }).end(result.text);
      else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(result));
    } catch (err) {
      if (err instanceof HttpError && err.status < 500)
        return this.#refuse(kind, req, res, err.status, 'refused', err.message);
      const status = err instanceof HttpError ? err.status : 500;
      if (status === 500) this.#log.error({ err, path }, 'control request failed');
      sendJson(res, status, { error: (err as Error).message });
    }
  }

  #refuse(
    kind: ListenerKind,
    req: http.IncomingMessage,
    res: http.ServerResponse,
    status: number,
    reason: ControlRejectReason,
    message: string,
  ): void {
    this.#reject(kind, reason, { method: req.method, url: req.url?.slice(0, 200), status });
    // An unread body or a parse we do not trust: do not keep the connection for another request.
    if (status === 400 || status === 413) res.setHeader('connection', 'close');
    sendJson(res, status, { error: message });
  }
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

/** The request target as a URL, or why it is not one we serve (origin-form, valid percent-encoding). */
function parseTarget(raw: string): URL | string {
  if (!raw.startsWith('/') || raw.startsWith('//')) return 'the request target must be a path such as /status';
  try {
    decodeURIComponent(raw);
  } catch {
    return 'the request target has malformed percent-encoding';
  }
  try {
    return new URL(raw, 'http://localhost');
  } catch {
    return 'the request target is not a valid URL path';
  }
}

/** Reads and discards a body of at most MAX_BODY_BYTES; false (nothing more read) beyond it. */
function readSmallBody(req: http.IncomingMessage): Promise<boolean> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > MAX_BODY_BYTES) return Promise.resolve(false);
  if (declared === undefined && req.headers['transfer-encoding'] === undefined) return Promise.resolve(true);
  return new Promise((resolve) => {
    let bytes = 0;
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > MAX_BODY_BYTES) {
        req.pause();
        resolve(false);
      }
    });
    req.on('end', () => resolve(true));
    req.on('error', () => resolve(false));
  });
}

/** What is wrong with a query string, in the words of the route's schema (`must`); the HTTP front uses it too. */
export function queryError(
  route: Pick<ControlRoute, 'path' | 'query'>,
  check: TypeCheck<TObject>,
  query: Record<string, unknown>,
): string {
  const error = check.Errors(query).First();
  if (!error) return 'bad query string';
  const name = error.path.replace(/^\//, '');
  const must = (error.schema as { must?: string }).must;
  const takes = () => `${route.path} takes ${Object.keys(route.query.properties).join(', ') || 'none'}`;
  if (!name) return `unknown query parameter; ${takes()}`;
  if (!Object.hasOwn(route.query.properties, name)) return `unknown query parameter ${name}; ${takes()}`;
  return `query parameter ${name} must be ${must ?? error.message}`;
}
