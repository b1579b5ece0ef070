// Every setting, once: ConfigSchema (TypeBox) gives each its type, default, what a bad value must be
// (`must`, used in the error text) and, for a few, an environment variable (`env`). Resolved once
// at start-up, in this order, each layer overriding the one before:
//
//   defaults (schema)  <  config file (--config / KISSBOT_MONITOR_CONFIG)  <  env  <  flags given
//
// The resolved object is plain data so it can be handed to every worker as-is.
//
// Adding a setting is one line in ConfigSchema: `myKeyMs: positive(1_000, 'what it does')` (or
// any TypeBox type with `default` and `must`). Its type, default, validation, error text,
// --print-config output and config-file support follow from that line; a flag or env variable
// is optional and declared where it is parsed (src/cli.ts) or with `env:` here.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { Value } from '@sinclair/typebox/value';
import { BUILTIN_PRICES, mergePrices } from './llm/prices.js';
import {
  CONFIG_FILE_ENV,
  DB_ENV,
  DEFAULT_DB,
  HOST_NAME_PATTERN,
  isOtherUrl,
  isPostgresUrl,
  LLM_REPORT_DEFAULTS,
} from './config-defaults.js';
import { DEFAULT_SOCKET, SOCKET_ENV } from './protocol/constants.js';

export { CONFIG_FILE_ENV, DEFAULT_DB, HOST_NAME_PATTERN, isPostgresUrl };

/** The machine's hostname, made to fit HOST_NAME_PATTERN. */
export const defaultHostName = (): string =>
  hostname()
    .replace(/[^A-Za-z0-9_.-]/g, '_')
    .slice(0, 64) || 'localhost';

interface SettingOptions {
  /** What a bad value must be: "config.<name> must be <must>". */
  must: string;
  description?: string;
  /** An environment variable that sets it (between the config file and the flags). */
  env?: string;
}

const positive = (value: number, description?: string) =>
  Type.Number({ exclusiveMinimum: 0, default: value, must: 'a positive number', description });
const positiveInt = (value: number, description?: string) =>
  Type.Integer({ minimum: 1, default: value, must: 'a positive integer', description });
const heapMb = (value: number) =>
  Type.Integer({ minimum: 16, default: value, must: 'a whole number of MB, at least 16' });
const days = (value: number) =>
  Type.Number({ minimum: 0, default: value, must: 'a number of days >= 0 (0 keeps forever)' });
const text = (value: string, options: SettingOptions) => Type.String({ minLength: 1, default: value, ...options });
const section = <T extends Record<string, TSchema>>(properties: T, description?: string) =>
  Type.Object(properties, { additionalProperties: false, default: {}, must: 'an object of settings', description });

const PriceSchema = Type.Object(
  {
    from: Type.Optional(Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}' })),
    input: Type.Number({ minimum: 0 }),
    cachedInput: Type.Optional(Type.Number({ minimum: 0 })),
    output: Type.Number({ minimum: 0 }),
    reasoning: Type.Optional(Type.Number({ minimum: 0 })),
  },
  { additionalProperties: false },
);

const glob = Type.Optional(Type.String({ minLength: 1, maxLength: 128 }));
const BudgetSchema = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 64 }),
    channel: glob,
    model: glob,
    feature: glob,
    period: Type.Union([Type.Literal('day'), Type.Literal('week'), Type.Literal('month')]),
    limitUsd: Type.Number({ exclusiveMinimum: 0 }),
    warnAtPct: Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 100, default: 80 }),
    timeZone: Type.Optional(Type.String({ minLength: 1 })),
  },
  { additionalProperties: false },
);

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

export const RECEIVER_FORMATS = ['alertmanager', 'slack', 'discord', 'json'] as const;
const HTTP_URL = '^https?://[^\\s]+$';
const receiverName = Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_.:@-]+$' }));
const receiverTimeout = Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 600_000 }));
/** One receiver of alert notifications (docs/ALERTS.md "Receivers"). */
const Receiver = Type.Union(
  [
    Type.Object(
      {
        name: receiverName,
        url: Type.String({ pattern: HTTP_URL }),
        format: Type.Optional(Type.Union(RECEIVER_FORMATS.map((f) => Type.Literal(f)))),
        headers: Type.Optional(Type.Record(Type.String({ pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$" }), Type.String())),
        timeoutMs: receiverTimeout,
      },
      { additionalProperties: false },
    ),
    Type.Object(
      {
        name: receiverName,
        command: Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }),
        timeoutMs: receiverTimeout,
      },
      { additionalProperties: false },
    ),
  ],
  {
    must:
      `{ "url": "http(s)://...", "format"?: ${RECEIVER_FORMATS.map((f) => `"${f}"`).join(' | ')}, "headers"?: { "Name": "value" }, "name"?, "timeoutMs"? } ` +
      'or { "command": ["program", "arg", ...], "name"?, "timeoutMs"? }',
  },
);

const ConfigSchema = Type.Object(
  {
    socketPath: Type.String({
      minLength: 1,
      maxLength: 99,
      default: DEFAULT_SOCKET,
      env: SOCKET_ENV,
      must: 'a path shorter than 100 bytes (Unix socket limit)',
    }),
    /** HTTP control socket for status/health/metrics (read routes; bots in the socket group may use it). Default: <socketPath>.ctl */
    controlSocketPath: Type.String({ minLength: 1, maxLength: 107, must: 'a path shorter than 108 bytes' }),
    /** Admin routes (flush, latency reset, faults): mode 0600, the monitor's own user. Default: <socketPath>.admin */
    adminSocketPath: Type.String({ minLength: 1, maxLength: 107, must: 'a path shorter than 108 bytes' }),
    /** Optional loopback TCP port serving GET /metrics, for Prometheus scraping. */
    metricsPort: Type.Union([Type.Integer({ minimum: 0, maximum: 65535 }), Type.Null()], {
      default: null,
      must: 'a TCP port (0-65535) or null',
    }),
    /** The dashboard and JSON API over HTTP (docs/DASHBOARD.md); off unless a port is given. */
    http: section({
      port: Type.Union([Type.Integer({ minimum: 0, maximum: 65535 }), Type.Null()], {
        default: null,
        must: 'a TCP port (0-65535) or null (off)',
      }),
      host: text('127.0.0.1', { must: 'an address to bind, such as 127.0.0.1 or 0.0.0.0' }),
      /** A file holding the bearer token; required off loopback; without it HTTP is read-only. */
      tokenFile: Type.Union([Type.String({ minLength: 1 }), Type.Null()], {
        default: null,
        must: 'a file path or null',
      }),
      /** How often the live feed (SSE) reads the registry while a dashboard is open. */
      feedIntervalMs: positive(1_000),
    }),
    /** The store: an SQLite file path, or a postgres:// / postgresql:// URL (src/db/backend.ts, docs/OPERATIONS.md). */
    dbPath: text(DEFAULT_DB, {
      env: DB_ENV,
      must: 'a file path (SQLite) or a postgres://user@host:port/db URL (PostgreSQL)',
    }),
    /** Names this monitor: the `host` of every row it writes and of its row in `hosts`. Default: the machine's hostname. */
    hostName: Type.String({
      pattern: HOST_NAME_PATTERN,
      default: defaultHostName(),
      must: '1-64 characters of [A-Za-z0-9_.-]',
    }),
    /** A monitor whose `hosts` row is older than this is down (its bots unknown in cross-host views, MonitorHostDown). */
    hostStaleAfterMs: positive(60_000),
    staleAfterMs: positive(120_000),
    sampleIntervalMs: positive(15_000),
    /** A sample round that takes longer than this is abandoned and counted. */
    sampleTimeoutMs: positive(10_000),
    healthIntervalMs: positive(10_000),
    /**
     * SIGTERM/SIGINT → exit within this long, whatever the database does (inside systemd's 30 s
     * TimeoutStopSec). Rows that cannot be committed by then are spooled; a second signal spools at once.
     */
    shutdownDeadlineMs: positive(20_000),
    logLevel: Type.Union(
      LOG_LEVELS.map((l) => Type.Literal(l)),
      { default: 'info', env: 'KISSBOT_MONITOR_LOG_LEVEL', must: `one of ${LOG_LEVELS.join(', ')}` },
    ),
    socketMode: Type.Integer({
      minimum: 0,
      maximum: 0o777,
      default: 0o660,
      must: 'a file mode from 0 to 511 (0o777), such as 432 (0660)',
    }),
    socketGroup: Type.Union([Type.String({ minLength: 1 }), Type.Null()], {
      default: null,
      must: 'a group name or gid, or null',
    }),
    authTokensFile: Type.Union([Type.String({ minLength: 1 }), Type.Null()], {
      default: null,
      must: 'a file path or null',
    }),
    /**
     * USD per 1M tokens by model name or glob: one price, or dated ones ({ from, input, cachedInput?,
     * output, reasoning? }); a config file's keys replace the built-in ones (src/llm/prices.ts, docs/LLM_USAGE.md).
     */
    prices: Type.Record(
      Type.String({ minLength: 1 }),
      Type.Union([PriceSchema, Type.Array(PriceSchema, { minItems: 1 })]),
      {
        default: BUILTIN_PRICES,
        must: 'an object of { "model or glob": { "input": n, "output": n, "cachedInput"?: n, "reasoning"?: n, "from"?: "YYYY-MM-DD" } or an array of them }',
      },
    ),
    /** Spending limits over channel/model/feature globs (docs/LLM_USAGE.md, "Budgets"). */
    budgets: Type.Array(BudgetSchema, {
      default: [],
      must: 'an array of { "name", "period": "day"|"week"|"month", "limitUsd": n > 0, "warnAtPct"?: 0-100, "channel"?, "model"?, "feature"? (globs), "timeZone"? }',
    }),
    /** Daily LLM digest through the alert receivers at `hour` (0-23) in `timeZone`; null: none. */
    digest: Type.Union(
      [
        Type.Object(
          { hour: Type.Integer({ minimum: 0, maximum: 23 }), timeZone: Type.Optional(Type.String({ minLength: 1 })) },
          { additionalProperties: false },
        ),
        Type.Null(),
      ],
      { default: null, must: 'null or { "hour": 0-23, "timeZone"?: "Europe/Berlin" }' },
    ),
    llm: section({
      /** Budgets without their own timeZone count days/weeks/months in this IANA zone. */
      timeZone: text('UTC', { must: 'an IANA time zone such as UTC or Europe/Berlin' }),
      /** Hourly/daily rollups written with the rows (reports read them). Off only to measure their cost. */
      rollups: Type.Boolean({ default: LLM_REPORT_DEFAULTS.rollups, must: 'true or false' }),
      /** Reports compute exact percentiles from raw rows when the window holds at most this many calls; else they are estimated from rollups. */
      exactPercentileRows: positiveInt(LLM_REPORT_DEFAULTS.exactPercentileRows),
    }),
    retention: section({
      metricsDays: days(7),
      /** 0 keeps rows forever. */
      usageDays: days(0),
      /** llm_usage_hourly / llm_usage_daily / llm_usage_weekly: kept after the raw rows are gone (0 keeps forever). */
      usageRollupDays: days(0),
      eventsDays: days(90),
      healthDays: days(7),
    }),
    writer: section({
      /** Rows are committed at least this often (ms) and at most this many per transaction. */
      flushIntervalMs: positive(50),
      maxRowsPerTransaction: positive(20_000),
      /** How long one attempt waits on a locked database before giving the thread back. */
      busyTimeoutMs: positive(20),
      /** Pause before retrying a commit that found the database locked (or opening it again). */
      retryDelayMs: positive(100),
      /**
       * Rows held in memory while the database is locked or missing; beyond it the oldest are spooled
       * (and acknowledged). Below the rows held at which ingest pauses reading (65,536, or half of
       * limits.maxPendingPerLink if less: src/server/ingest-server.ts), so a long lock spools rather
       * than pausing ingest.
       */
      maxHeldRows: positiveInt(50_000),
      /** Rows held longer than this while the database is blocked are spooled too (their senders wait for the ack). */
      maxHeldMs: positive(10_000),
    }),
    /** Where rows go that the database cannot take in time (docs/OPERATIONS.md, "The spool"). */
    spool: section({
      /** null: the database path + `.spool`. */
      path: Type.Union([Type.String({ minLength: 1 }), Type.Null()], {
        default: null,
        must: 'a file path or null (beside the database)',
      }),
      /** The file never grows past this; rows that do not fit stay held (and are lost if the monitor must exit). */
      maxBytes: positiveInt(256 * 1024 * 1024),
    }),
    supervisor: section({
      /** More than `intensity` restarts within `periodMs` → the monitor exits non-zero (OTP semantics). */
      intensity: positive(5),
      periodMs: positive(60_000),
      /** Graceful shutdown time for an actor before it is terminated. */
      shutdownMs: positive(5_000),
      backoffInitialMs: positive(100),
      backoffMaxMs: positive(5_000),
      /** Every actor is pinged this often over its own port (not comlink). */
      pingIntervalMs: positive(1_000),
      /** An actor that has not answered a ping for this long is hung: terminated and restarted (reason `hung`). */
      hungAfterMs: positive(5_000),
      /** A restarted actor not ready within this is terminated and restarted again (reason `start_timeout`). */
      startTimeoutMs: positive(20_000),
      /** A thread that has not stopped this long after terminate() (stuck in native code) is abandoned. */
      terminateTimeoutMs: positive(2_000),
      /**
       * V8 old-generation limit of each actor's thread (worker resourceLimits); past it the thread dies
       * with ERR_WORKER_OUT_OF_MEMORY and is restarted (reason `out_of_memory`) instead of the process
       * running out of memory. Sized for maxBots and full links with headroom over the heaps measured
       * at 10k bots and with the database locked (docs/PERFORMANCE.md, "Numbers behind code choices").
       */
      maxOldGenerationSizeMb: section({
        registry: heapMb(512),
        db: heapMb(1024),
        sampler: heapMb(512),
        alerter: heapMb(256),
      }),
    }),
    limits: section({
      /** Longest accepted line in bytes; a longer one is discarded up to its newline. */
      maxLineBytes: positiveInt(64 * 1024),
      /** A connection that sends this many bytes without a newline is closed. */
      maxUnterminatedBytes: positiveInt(1024 * 1024),
      maxConnections: positiveInt(20_000),
      /** Bots the registry holds; when full, the least recently seen offline/dead one is forgotten, else a new channel is refused. */
      maxBots: positiveInt(50_000),
      /** Sustained lines per second one connection is read at; beyond it reading pauses (backpressure, no loss). */
      maxLinesPerSecondPerConnection: positive(10_000),
      /** Connections that never sent a valid register/heartbeat are closed after this idle time. */
      idleTimeoutMs: positive(60_000),
      maxJsonDepth: positiveInt(32),
      /** Rows/messages held for one actor while it is slow, locked or restarting; beyond it, dropped and counted. */
      maxPendingPerLink: positiveInt(500_000),
    }),
    /**
     * Channels that should be running (a list, or the path of a file with one channel per line, #
     * comments): one not registered shows as `missing` in `kissmon status` and raises BotMissing.
     * A file is re-read on SIGHUP.
     */
    expected: Type.Union(
      [Type.Array(Type.String({ pattern: '^[A-Za-z0-9_]{1,64}$' })), Type.String({ minLength: 1 })],
      {
        default: [],
        must: 'a list of channels (1-64 chars of [A-Za-z0-9_]) or the path of a file of them',
      },
    ),
    /** Export kissmon_bot_up{channel} and kissmon_bot_last_heartbeat_seconds{channel} (one series per bot). */
    metricsPerBot: Type.Boolean({ default: false, must: 'true or false' }),
    /** Alerts and their notifications (docs/ALERTS.md). */
    alerts: section({
      receivers: Type.Array(Receiver, { default: [], must: 'a list of receivers' }),
      /** --alert-webhook URL (repeatable): Alertmanager-format receivers added to `receivers`. */
      webhooks: Type.Array(Type.String({ pattern: HTTP_URL }), { default: [], must: 'a list of http(s) URLs' }),
      /** A new group's first notification waits this long for more alerts to join it. */
      groupWaitMs: positive(10_000),
      /** A group that already notified sends its changes at most this often. */
      groupIntervalMs: positive(60_000),
      /** A still-firing group is notified again after this long. */
      repeatIntervalMs: positive(4 * 3_600_000),
      flap: section({
        /** More than maxTransitions stale<->online changes of one bot within windowMs: BotFlapping. */
        windowMs: positive(600_000),
        maxTransitions: positiveInt(4),
      }),
      /** An expected channel not registered this long after start (or after an unplanned stop) is missing. null: staleAfterMs. */
      missingGraceMs: Type.Union([Type.Number({ exclusiveMinimum: 0 }), Type.Null()], {
        default: null,
        must: 'a positive number of ms, or null (staleAfterMs)',
      }),
      /** Ingest paused by backpressure, or the database locked, for this long: MonitorIngestPaused. */
      ingestPausedAfterMs: positive(60_000),
      /** One delivery attempt (HTTP request or exec run) is cut off after this long; a receiver's timeoutMs overrides it. */
      deliveryTimeoutMs: positive(10_000),
      /** Retries of a failed delivery back off from retryInitialMs, doubling, up to retryMaxMs. */
      retryInitialMs: positive(1_000),
      retryMaxMs: positive(60_000),
      /** Notifications queued per receiver (kept across restarts); past it the oldest is dropped and counted. */
      maxQueuedPerReceiver: positiveInt(1_000),
      /** A notification the receiver answered with a failure (5xx, exit != 0) this often is dropped and counted. */
      maxDeliveryAttempts: positiveInt(10),
      /** A notification not delivered this long after it was made (even to a receiver that is down) is dropped. */
      maxDeliveryAgeMs: positive(24 * 3_600_000),
    }),
    /** Fault injection for drills and tests; off unless --enable-faults. */
    faults: section({
      enabled: Type.Boolean({ default: false, must: 'true or false' }),
      /** Every stats call in the sampler takes this long (ms). */
      samplerDelayMs: Type.Number({ minimum: 0, default: 0, must: 'a number of ms >= 0' }),
      /** Fraction (0..1) of llm_usage rows the writer silently loses — only to prove loss detection. */
      writerDropRatio: Type.Number({ minimum: 0, maximum: 1, default: 0, must: 'a fraction from 0 to 1' }),
    }),
  },
  { additionalProperties: false },
);

export type MonitorConfig = Static<typeof ConfigSchema>;

type DeepPartial<T> = {
  [K in keyof T]?: T[K] extends object ? (T[K] extends unknown[] ? T[K] : DeepPartial<T[K]>) : T[K];
};
export type ConfigOverrides = DeepPartial<MonitorConfig>;

const checker = TypeCompiler.Compile(ConfigSchema);

export function controlSocketFor(socketPath: string): string {
  return `${socketPath}.ctl`;
}

export function adminSocketFor(socketPath: string): string {
  return `${socketPath}.admin`;
}

/** Every setting at its default (no file, no env, no flags). */
export function defaultConfig(): MonitorConfig {
  return resolveConfig();
}

/**
 * Merges layers (lowest first: config file, env, flags) over the defaults and validates the
 * result. A layer's undefined value is "not given". Throws TypeError('config.x must be …') naming
 * the first bad setting.
 */
export function resolveConfig(...layers: ConfigOverrides[]): MonitorConfig {
  const merged: Record<string, unknown> = {};
  for (const layer of layers) merge(merged, layer, 'config');
  if (merged.prices !== undefined) merged.prices = mergePrices(merged.prices as never);
  const config = Value.Default(ConfigSchema, merged) as Record<string, unknown>;
  if (typeof config.socketPath === 'string') {
    config.controlSocketPath ??= controlSocketFor(config.socketPath);
    config.adminSocketPath ??= adminSocketFor(config.socketPath);
  }
  const error = checker.Errors(config).First();
  if (error) throw new TypeError(settingError(error.path, error.schema));
  const valid = config as MonitorConfig;
  crossChecks(valid);
  return valid;
}

function merge(target: Record<string, unknown>, layer: Record<string, unknown>, path: string): void {
  for (const [key, value] of Object.entries(layer)) {
    if (value === undefined) continue;
    const current = target[key];
    if (key !== 'prices' && isPlainObject(value) && isPlainObject(current)) merge(current, value, `${path}.${key}`);
    else if (key !== 'prices' && isPlainObject(value)) merge((target[key] = {}), value, `${path}.${key}`);
    else if (key === 'prices' && isPlainObject(value) && isPlainObject(current)) target[key] = { ...current, ...value };
    else target[key] = value;
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** "config.limits.maxBots must be a positive integer", from a TypeBox error path like /limits/maxBots. */
function settingError(errorPath: string, schema: TSchema & Partial<SettingOptions>): string {
  const parts = errorPath.split('/').filter(Boolean);
  const name = ['config', ...parts].join('.');
  if (!schemaAt(parts)) return `${name} is not a setting`;
  // An error inside a setting (a price entry, a union member) is reported against the setting.
  for (let n = parts.length; n > 0; n--) {
    const must = (schemaAt(parts.slice(0, n)) as Partial<SettingOptions> | undefined)?.must;
    if (must) return `${['config', ...parts.slice(0, n)].join('.')} must be ${must}`;
  }
  return `${name} must be ${schema.must ?? 'valid'}`;
}

function schemaAt(parts: string[]): TSchema | undefined {
  let schema: TSchema | undefined = ConfigSchema;
  for (const part of parts) {
    if (schema?.type === 'object' && schema.properties) schema = (schema.properties as Record<string, TSchema>)[part];
    else if (schema?.patternProperties) schema = Object.values(schema.patternProperties as Record<string, TSchema>)[0];
    else if (schema?.type === 'array' && /^\d+$/.test(part)) schema = schema.items as TSchema;
    else if (schema?.anyOf)
      schema = (schema.anyOf as TSchema[])
        .map((m) => (m.properties as Record<string, TSchema> | undefined)?.[part])
        .find(Boolean);
    else return undefined;
  }
  return schema;
}

/** Rules that span settings; TypeBox checked each one alone. */
function crossChecks(c: MonitorConfig): void {
  const check = (ok: boolean, name: string, what: string) => {
    if (!ok) throw new TypeError(`config.${name} must be ${what}`);
  };
  check(Buffer.byteLength(c.socketPath) < 100, 'socketPath', 'a path shorter than 100 bytes (Unix socket limit)');
  for (const key of ['controlSocketPath', 'adminSocketPath'] as const)
    check(Buffer.byteLength(c[key]) < 108, key, 'a path shorter than 108 bytes');
  check(!isOtherUrl(c.dbPath), 'dbPath', 'a file path or a postgres:// / postgresql:// URL (not another scheme)');
  if (isPostgresUrl(c.dbPath))
    check(
      URL.canParse(c.dbPath) && new URL(c.dbPath).pathname.length > 1,
      'dbPath',
      'a postgres://user@host:port/db URL naming a database',
    );
  check(
    c.supervisor.hungAfterMs > c.supervisor.pingIntervalMs,
    'supervisor.hungAfterMs',
    'longer than supervisor.pingIntervalMs',
  );
  // A writer waiting inside SQLite does not answer pings; terminated there, the addon aborts the process.
  check(
    c.writer.busyTimeoutMs * 10 <= c.supervisor.hungAfterMs,
    'writer.busyTimeoutMs',
    'at most a tenth of supervisor.hungAfterMs',
  );
  check(
    c.limits.maxUnterminatedBytes >= c.limits.maxLineBytes,
    'limits.maxUnterminatedBytes',
    'at least limits.maxLineBytes',
  );
  const names = new Set<string>();
  for (const [i, b] of c.budgets.entries()) {
    check(!names.has(b.name), `budgets[${i}].name`, `unique (${JSON.stringify(b.name)} is used twice)`);
    names.add(b.name);
    if (b.timeZone !== undefined)
      check(isTimeZone(b.timeZone), `budgets[${i}].timeZone`, 'an IANA time zone such as UTC or Europe/Berlin');
  }
  check(isTimeZone(c.llm.timeZone), 'llm.timeZone', 'an IANA time zone such as UTC or Europe/Berlin');
  if (c.digest?.timeZone !== undefined)
    check(isTimeZone(c.digest.timeZone), 'digest.timeZone', 'an IANA time zone such as UTC or Europe/Berlin');
  check(
    c.http.port === null || c.http.tokenFile !== null || isLoopback(c.http.host),
    'http.tokenFile',
    `set (--http-token-file) to serve HTTP on ${c.http.host}: off loopback the dashboard and API need a bearer token`,
  );
  check(
    c.faults.enabled || (c.faults.samplerDelayMs === 0 && c.faults.writerDropRatio === 0),
    'faults',
    'off unless faults.enabled (--enable-faults) is set',
  );
  check(c.alerts.retryMaxMs >= c.alerts.retryInitialMs, 'alerts.retryMaxMs', 'at least alerts.retryInitialMs');
  const receiverNames = new Set<string>();
  for (const [i, r] of c.alerts.receivers.entries()) {
    if (r.name === undefined) continue;
    check(
      !receiverNames.has(r.name),
      `alerts.receivers[${i}].name`,
      `unique (${JSON.stringify(r.name)} is used twice)`,
    );
    receiverNames.add(r.name);
  }
}

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** 127.0.0.0/8, ::1 and localhost: only this machine can connect. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** Settings with an `env:` in the schema, by variable name. */
function configEnvVariables(): { variable: string; setting: string }[] {
  const found: { variable: string; setting: string }[] = [];
  const walk = (schema: TSchema, path: string[]) => {
    if (typeof schema.env === 'string') found.push({ variable: schema.env, setting: path.join('.') });
    if (schema.type === 'object' && schema.properties)
      for (const [k, s] of Object.entries(schema.properties as Record<string, TSchema>)) walk(s, [...path, k]);
  };
  walk(ConfigSchema, []);
  return found;
}

/** The env layer: every set (non-empty) variable declared with `env:` in the schema, converted to the setting's type. */
export function envOverrides(env: NodeJS.ProcessEnv = process.env): ConfigOverrides {
  const layer: Record<string, unknown> = {};
  for (const { variable, setting } of configEnvVariables()) {
    const raw = env[variable];
    if (raw === undefined || raw === '') continue;
    const parts = setting.split('.');
    const schema = schemaAt(parts)! as TSchema & SettingOptions;
    const value = Value.Convert(schema, raw);
    if (!Value.Check(schema, value))
      throw new TypeError(`${variable} (config.${setting}) must be ${schema.must}; got ${JSON.stringify(raw)}`);
    let target = layer;
    for (const part of parts.slice(0, -1)) target = (target[part] ??= {}) as Record<string, unknown>;
    target[parts[parts.length - 1]] = value;
  }
  return layer;
}

/** Reads a JSON config file (same shape as MonitorConfig, any subset). */
export function readConfigFile(path: string): ConfigOverrides {
  let content: string;
  try {
    content = readFileSync(path, 'utf8');
  } catch (err) {
    throw new TypeError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(content) as unknown;
  } catch (err) {
    throw new TypeError(`config file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (!isPlainObject(value)) throw new TypeError(`config file ${path} must hold a JSON object of settings`);
  return value;
}
