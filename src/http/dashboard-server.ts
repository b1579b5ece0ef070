// The HTTP front (--http-port): the dashboard page at `/`, the control API's routes under `/api/`
// (the very ControlRoute table the control sockets serve, so a route added anywhere appears here),
// live updates at `/api/events` (SSE, src/http/live-feed.ts) and `/metrics`. docs/DASHBOARD.md.
//
//   request ─▶ route match ─▶ security headers ─▶ public? ─▶ token (if set) ─▶ admin? ─▶ query check ─▶ handler
//
// Security model: without a token file HTTP is read-only and only for loopback (the Host header
// must name a loopback address, so a web page elsewhere cannot reach it by DNS rebinding); with
// one, every request needs `Authorization: Bearer <token>` except the page's own files and
// /api/session (routes marked public; decided on the matched route, never on the raw URL, so an
// encoded or odd path cannot slip past; no match needs the token too), and admin routes are
// served. Fault injection (socketOnly routes) is never mounted here. Browsers send that header
// only from our own page (no CORS), so a token in sessionStorage is safe from other sites' pages.
import { createHash, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { TObject } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { HttpTokenFileError } from '../errors.js';
import type { Logger } from '../log.js';
import { HttpError, METRICS_PATH, queryError, TextBody, type ControlRoute } from './control-server.js';
import { LiveFeed, type LiveFeedSources } from './live-feed.js';

/** The page's files, bundled by src/dashboard/bundle.ts at build time. */
export const DASHBOARD_ASSETS = fileURLToPath(new URL('../../dashboard/', import.meta.url));
export const EVENTS_PATH = '/api/events';
const SESSION_PATH = '/api/session';
/** Route config of what loads without the token: the page's files and the session bootstrap. */
const PUBLIC = { public: true };

/** Open event streams beyond this get 503: each holds a socket and a share of every broadcast. */
const MAX_EVENT_STREAMS = 64;
/** Tokens shorter than this are refused at start (a guessable bearer token is no protection). */
const MIN_TOKEN_LENGTH = 16;

// 'self' only: no inline script or style (uPlot and Preact set styles through the CSSOM, which CSP allows).
const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

export interface DashboardServerOptions {
  routes: ControlRoute[];
  /** The registry's side of the live feed (null while it restarts). */
  feed: Pick<LiveFeedSources, 'changes' | 'snapshot'>;
  host: string;
  port: number;
  tokenFile: string | null;
  feedIntervalMs: number;
  log: Logger;
}

/** `/api/session`: what the page may do, asked before anything else (never a 401, so no console error). */
export interface DashboardSession {
  token_required: boolean;
  authorised: boolean;
  /** Admin routes (silence, flush) are served to this request. */
  admin: boolean;
  /** `GET /status`, … — the page shows "not available" for panels whose route is missing. */
  routes: string[];
}

export class DashboardServer {
  readonly #app: FastifyInstance;
  readonly #options: DashboardServerOptions;
  readonly #tokenDigest: Buffer | null;
  readonly #feed: LiveFeed;
  readonly #log: Logger;
  /** The control routes served here: all but the socket-only ones. */
  readonly #routes: ControlRoute[];
  #allowedHosts = new Set<string>();

  constructor(options: DashboardServerOptions) {
    this.#options = options;
    this.#log = options.log.child({ component: 'http' });
    this.#tokenDigest = options.tokenFile ? digest(readToken(options.tokenFile)) : null;
    this.#routes = options.routes.filter((r) => !r.socketOnly);
    const byPath = new Map(this.#routes.filter((r) => r.method === 'GET').map((r) => [r.path, r]));
    const source = (path: string) => {
      const r = byPath.get(path);
      return r ? () => r.handler({}) : null;
    };
    const sources: LiveFeedSources = {
      ...options.feed,
      health: source('/health') ?? (async () => null),
      alerts: source('/alerts'),
    };
    this.#feed = new LiveFeed(sources, { intervalMs: options.feedIntervalMs, log: this.#log });
    this.#app = Fastify({
      logger: false,
      bodyLimit: 1024, // no route takes a body
      connectionTimeout: 0, // event streams stay open; idle keep-alive sockets still time out
      keepAliveTimeout: 5_000,
      requestTimeout: 10_000,
      forceCloseConnections: true,
      return503OnClosing: true,
    });
    this.#app.setValidatorCompiler(({ schema, url }) => {
      const route = { path: url.replace(/^\/api/, ''), query: schema as TObject };
      const check = TypeCompiler.Compile(route.query);
      return (value: unknown) =>
        check.Check(value)
          ? { value }
          : { error: new HttpError(400, queryError(route, check, value as Record<string, unknown>)) };
    });
    this.#app.addHook('onRequest', async (req, reply) => this.#guard(req, reply));
    this.#app.setErrorHandler((err: Error & { statusCode?: number }, req, reply) => {
      const client = err.statusCode !== undefined && err.statusCode < 500 ? err.statusCode : 500;
      const status = err instanceof HttpError ? err.status : client;
      if (status >= 500) this.#log.error({ err, url: req.url }, 'http request failed');
      void reply.code(status).send({ error: err.message });
    });
    this.#app.setNotFoundHandler((req, reply) => {
      void reply.code(404).send({ error: `no route ${req.method} ${req.url.split('?')[0]}` });
    });
    this.#registerRoutes();
  }

  /** Listens; resolves with the URL. */
  async listen(): Promise<string> {
    const { host, port } = this.#options;
    await this.#app.listen({ host, port });
    const address = this.#app.server.address();
    const actualPort = typeof address === 'object' && address ? address.port : port;
    const bracketed = host.includes(':') ? `[${host}]` : host;
    this.#allowedHosts = new Set([bracketed, 'localhost', '127.0.0.1', '[::1]'].map((name) => `${name}:${actualPort}`));
    const url = `http://${bracketed}:${actualPort}/`;
    this.#log.info({ listen: url, token: this.#tokenDigest !== null }, 'dashboard listening');
    return url;
  }

  feedStats() {
    return this.#feed.stats();
  }

  async close(): Promise<void> {
    this.#feed.close();
    await this.#app.close();
  }

  #registerRoutes(): void {
    const app = this.#app;
    for (const r of this.#routes) {
      const handler = async (req: FastifyRequest, reply: FastifyReply) => {
        if (r.admin && !this.#admin(req)) {
          throw new HttpError(
            403,
            `${r.method} ${r.path} changes something: over HTTP it needs the bearer token, ` +
              'and the monitor has none ' +
              "(start it with --http-token-file); the admin socket serves it to the monitor's own user",
          );
        }
        const result = await r.handler(req.query as Record<string, string>);
        if (result instanceof TextBody) return reply.type(result.contentType).send(result.text);
        return reply.header('cache-control', 'no-store').send(result);
      };
      const urls = r.path === METRICS_PATH ? [`/api${r.path}`, METRICS_PATH] : [`/api${r.path}`];
      for (const url of urls) app.route({ method: r.method, url, schema: { querystring: r.query }, handler });
    }
    app.get(SESSION_PATH, { config: PUBLIC }, async (req): Promise<DashboardSession> => {
      const authorised = this.#tokenDigest === null || this.#authorised(req);
      return {
        token_required: this.#tokenDigest !== null,
        authorised,
        admin: this.#admin(req),
        routes: authorised ? this.#routes.map((r) => `${r.method} ${r.path}`) : [],
      };
    });
    app.get(EVENTS_PATH, (_req, reply) => {
      if (this.#feed.stats().clients >= MAX_EVENT_STREAMS) {
        return reply.code(503).send({ error: `too many open dashboards (at most ${MAX_EVENT_STREAMS} event streams)` });
      }
      reply.hijack(); // the feed writes the stream itself, for as long as the client stays
      for (const [name, value] of Object.entries(SECURITY_HEADERS)) reply.raw.setHeader(name, value);
      this.#feed.attach(reply.raw);
    });
    // The page's files load without the token: every route registered in this context is public.
    void app.register(async (page) => {
      page.addHook('onRoute', (options) => void (options.config = { ...options.config, ...PUBLIC }));
      if (existsSync(`${DASHBOARD_ASSETS}/index.html`)) {
        // wildcard: false registers a route per file found now: no file-system lookup for unknown paths.
        await page.register(fastifyStatic, {
          root: DASHBOARD_ASSETS,
          wildcard: false,
          index: 'index.html',
          cacheControl: false,
          setHeaders: (reply) => void reply.header('cache-control', 'no-cache'),
        });
        page.get('/favicon.ico', (_req, reply) => reply.sendFile('favicon.svg'));
      } else {
        page.get('/', (_req, reply) =>
          reply
            .code(503)
            .type('text/plain')
            .send('the dashboard is not built (npm run build); the API is under /api/\n'),
        );
      }
    });
  }

  async #guard(req: FastifyRequest, reply: FastifyReply): Promise<void> {
    void reply.headers(SECURITY_HEADERS);
    if (this.#tokenDigest === null) {
      // Loopback and no token: only a Host naming this machine (DNS rebinding would bring another name).
      if (!this.#allowedHosts.has(req.headers.host ?? '')) {
        await reply.code(403).send({ error: "the Host header must name this machine's loopback address" });
      }
      return;
    }
    // The matched route decides (fastify has decoded the path to match it); no route: not public.
    const isPublic = (req.routeOptions.config as { public?: boolean } | undefined)?.public === true;
    if (!isPublic && !this.#authorised(req)) {
      await reply
        .code(401)
        .header('www-authenticate', 'Bearer realm="kissmon"')
        .send({ error: 'this monitor needs a bearer token (Authorization: Bearer <token>)' });
    }
  }

  #authorised(req: FastifyRequest): boolean {
    if (this.#tokenDigest === null) return false;
    const header = req.headers.authorization;
    if (typeof header !== 'string' || !header.startsWith('Bearer ')) return false;
    // Digests have one length, so timingSafeEqual never throws and leaks nothing about the token.
    return timingSafeEqual(digest(header.slice(7).trim()), this.#tokenDigest);
  }

  #admin(req: FastifyRequest): boolean {
    return this.#tokenDigest !== null && this.#authorised(req);
  }
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

function readToken(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new HttpTokenFileError(`cannot read the HTTP token file ${file}: ${(err as Error).message}`);
  }
  const token = text.trim();
  if (token.length < MIN_TOKEN_LENGTH || /\s/.test(token)) {
    throw new HttpTokenFileError(
      `the HTTP token file ${file} must hold one token of at least ${MIN_TOKEN_LENGTH} characters and no spaces`,
    );
  }
  return token;
}
