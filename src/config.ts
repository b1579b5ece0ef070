// Every setting, its default, and validation. Resolved once at start-up; the resolved object is
// plain data so it can be handed to every worker as-is.
import { readFileSync } from 'node:fs';
import { BUILTIN_PRICES, parsePriceTable, type PriceTable } from './pricing.js';

export const DEFAULT_SOCKET = '/tmp/kissbot_monitor.sock';
export const DEFAULT_DB = './kissbot_monitor.db';

export interface Limits {
  /** Longest accepted line in bytes; a longer one is discarded up to its newline. */
  maxLineBytes: number;
  /** A connection that sends this many bytes without a newline is closed. */
  maxUnterminatedBytes: number;
  maxConnections: number;
  /** Bots the registry holds; when full, the least recently seen offline/dead one is forgotten, else a new channel is refused. */
  maxBots: number;
  /** Sustained lines per second one connection is read at; beyond it reading pauses (backpressure, no loss). */
  maxLinesPerSecondPerConnection: number;
  /** Connections that never sent a valid register/heartbeat are closed after this idle time. */
  idleTimeoutMs: number;
  maxJsonDepth: number;
  /** Rows/messages held for one actor while it is slow, locked or restarting; beyond it, dropped and counted. */
  maxPendingPerLink: number;
}

export interface MonitorConfig {
  socketPath: string;
  /** HTTP control socket for status/health/metrics (the CLI talks to it). */
  controlSocketPath: string;
  /** Optional loopback TCP port serving the same control API, for Prometheus scraping. */
  metricsPort: number | null;
  dbPath: string;
  staleAfterMs: number;
  sampleIntervalMs: number;
  /** A sample round that takes longer than this is abandoned and counted. */
  sampleTimeoutMs: number;
  healthIntervalMs: number;
  logLevel: string;
  socketMode: number;
  socketGroup: string | null;
  authTokensFile: string | null;
  prices: PriceTable;
  retention: {
    metricsDays: number;
    /** 0 keeps rows forever. */
    usageDays: number;
    eventsDays: number;
    healthDays: number;
  };
  writer: {
    /** Rows are committed at least this often (ms) and at most this many per transaction. */
    flushIntervalMs: number;
    maxRowsPerTransaction: number;
    /** How long one attempt waits on a locked database before giving the thread back. */
    busyTimeoutMs: number;
    /** Pause before retrying a commit that found the database locked. */
    retryDelayMs: number;
  };
  supervisor: {
    /** More than `intensity` restarts within `periodMs` → the monitor exits non-zero (OTP semantics). */
    intensity: number;
    periodMs: number;
    /** Graceful shutdown time for an actor before it is terminated. */
    shutdownMs: number;
    backoffInitialMs: number;
    backoffMaxMs: number;
    /** Every actor is pinged this often over its own port (not comlink). */
    pingIntervalMs: number;
    /** An actor that has not answered a ping for this long is hung: terminated and restarted (reason `hung`). */
    hungAfterMs: number;
    /** A restarted actor not ready within this is terminated and restarted again (reason `start_timeout`). */
    startTimeoutMs: number;
    /** A thread that has not stopped this long after terminate() (stuck in native code) is abandoned. */
    terminateTimeoutMs: number;
    /**
     * V8 old-generation limit of each actor's thread (worker resourceLimits); past it the thread dies
     * with ERR_WORKER_OUT_OF_MEMORY and is restarted (reason `out_of_memory`) instead of the process
     * running out of memory.
     */
    maxOldGenerationSizeMb: { registry: number; db: number; sampler: number };
  };
  limits: Limits;
  /** Fault injection for drills and tests; off unless --enable-faults. */
  faults: {
    enabled: boolean;
    /** Every stats call in the sampler takes this long (ms). */
    samplerDelayMs: number;
    /** Fraction (0..1) of llm_usage rows the writer silently loses — only to prove loss detection. */
    writerDropRatio: number;
  };
}

export function defaultConfig(): MonitorConfig {
  const socketPath = process.env.KISSBOT_MONITOR_SOCKET || DEFAULT_SOCKET;
  return {
    socketPath,
    controlSocketPath: controlSocketFor(socketPath),
    metricsPort: null,
    dbPath: DEFAULT_DB,
    staleAfterMs: 120_000,
    sampleIntervalMs: 15_000,
    sampleTimeoutMs: 10_000,
    healthIntervalMs: 10_000,
    logLevel: 'info',
    socketMode: 0o660,
    socketGroup: null,
    authTokensFile: null,
    prices: { ...BUILTIN_PRICES },
    retention: { metricsDays: 7, usageDays: 0, eventsDays: 90, healthDays: 7 },
    writer: { flushIntervalMs: 50, maxRowsPerTransaction: 20_000, busyTimeoutMs: 20, retryDelayMs: 100 },
    supervisor: {
      intensity: 5, periodMs: 60_000, shutdownMs: 5_000, backoffInitialMs: 100, backoffMaxMs: 5_000,
      pingIntervalMs: 1_000, hungAfterMs: 5_000, startTimeoutMs: 20_000, terminateTimeoutMs: 2_000,
      // Measured heap: 10k bots → registry 45 MB, db 23 MB, sampler 14 MB; db with 256k rows held
      // (database locked) 81 MB. Sized for maxBots and full links (maxPendingPerLink) with headroom.
      maxOldGenerationSizeMb: { registry: 512, db: 1024, sampler: 512 },
    },
    limits: {
      maxLineBytes: 64 * 1024,
      maxUnterminatedBytes: 1024 * 1024,
      maxConnections: 20_000,
      maxBots: 50_000,
      maxLinesPerSecondPerConnection: 10_000,
      idleTimeoutMs: 60_000,
      maxJsonDepth: 32,
      maxPendingPerLink: 500_000,
    },
    faults: { enabled: false, samplerDelayMs: 0, writerDropRatio: 0 },
  };
}

export function controlSocketFor(socketPath: string): string {
  return `${socketPath}.ctl`;
}

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] };
export type ConfigOverrides = DeepPartial<MonitorConfig>;

/**
 * Merges overrides (config file, then flags) over the defaults and validates the result.
 * Throws TypeError('config.x must be …') naming the first bad setting.
 */
export function resolveConfig(...layers: ConfigOverrides[]): MonitorConfig {
  const config = defaultConfig();
  for (const layer of layers) merge(config as unknown as Record<string, unknown>, layer as Record<string, unknown>, 'config');
  if (!layers.some((l) => l.controlSocketPath)) config.controlSocketPath = controlSocketFor(config.socketPath);
  validate(config);
  return config;
}

function merge(target: Record<string, unknown>, layer: Record<string, unknown>, path: string): void {
  for (const [key, value] of Object.entries(layer)) {
    if (value === undefined) continue;
    if (!Object.hasOwn(target, key)) throw new TypeError(`${path}.${key} is not a setting`);
    const current = target[key];
    if (key === 'prices') {
      target[key] = { ...(current as PriceTable), ...parsePriceTable(value, `${path}.prices`) };
    } else if (current !== null && typeof current === 'object' && !Array.isArray(current)) {
      if (value === null || typeof value !== 'object') throw new TypeError(`${path}.${key} must be an object`);
      merge(current as Record<string, unknown>, value as Record<string, unknown>, `${path}.${key}`);
    } else {
      target[key] = value;
    }
  }
}

function check(ok: boolean, name: string, what: string): void {
  if (!ok) throw new TypeError(`config.${name} must be ${what}`);
}

const positive = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v > 0;
const nonNegative = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v >= 0;
const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

function validate(c: MonitorConfig): void {
  check(typeof c.socketPath === 'string' && c.socketPath.length > 0 && Buffer.byteLength(c.socketPath) < 100, 'socketPath', 'a path shorter than 100 bytes (Unix socket limit)');
  check(typeof c.controlSocketPath === 'string' && Buffer.byteLength(c.controlSocketPath) < 108, 'controlSocketPath', 'a path shorter than 108 bytes');
  check(c.metricsPort === null || (Number.isInteger(c.metricsPort) && c.metricsPort >= 0 && c.metricsPort < 65536), 'metricsPort', 'a TCP port (0-65535) or null');
  check(typeof c.dbPath === 'string' && c.dbPath.length > 0, 'dbPath', 'a file path');
  for (const key of ['staleAfterMs', 'sampleIntervalMs', 'sampleTimeoutMs', 'healthIntervalMs'] as const) check(positive(c[key]), key, 'a positive number');
  check(LOG_LEVELS.includes(c.logLevel), 'logLevel', `one of ${LOG_LEVELS.join(', ')}`);
  check(Number.isInteger(c.socketMode) && c.socketMode >= 0 && c.socketMode <= 0o777, 'socketMode', 'an octal file mode such as 0660');
  check(c.socketGroup === null || (typeof c.socketGroup === 'string' && c.socketGroup.length > 0), 'socketGroup', 'a group name or gid');
  check(c.authTokensFile === null || typeof c.authTokensFile === 'string', 'authTokensFile', 'a file path');
  for (const [k, v] of Object.entries(c.retention)) check(nonNegative(v), `retention.${k}`, 'a number of days >= 0 (0 keeps forever)');
  for (const [k, v] of Object.entries(c.writer)) check(positive(v), `writer.${k}`, 'a positive number');
  const { maxOldGenerationSizeMb, ...supervisor } = c.supervisor;
  for (const [k, v] of Object.entries(supervisor)) check(positive(v), `supervisor.${k}`, 'a positive number');
  for (const [k, v] of Object.entries(maxOldGenerationSizeMb)) check(Number.isInteger(v) && v >= 16, `supervisor.maxOldGenerationSizeMb.${k}`, 'a whole number of MB, at least 16');
  check(c.supervisor.hungAfterMs > c.supervisor.pingIntervalMs, 'supervisor.hungAfterMs', 'longer than supervisor.pingIntervalMs');
  for (const [k, v] of Object.entries(c.limits)) check(positive(v), `limits.${k}`, 'a positive number');
  check(c.limits.maxUnterminatedBytes >= c.limits.maxLineBytes, 'limits.maxUnterminatedBytes', 'at least limits.maxLineBytes');
  check(typeof c.faults.enabled === 'boolean', 'faults.enabled', 'true or false');
  check(nonNegative(c.faults.samplerDelayMs), 'faults.samplerDelayMs', 'a number of ms >= 0');
  check(nonNegative(c.faults.writerDropRatio) && c.faults.writerDropRatio <= 1, 'faults.writerDropRatio', 'a fraction from 0 to 1');
  check(c.faults.enabled || (c.faults.samplerDelayMs === 0 && c.faults.writerDropRatio === 0), 'faults', 'off unless faults.enabled (--enable-faults) is set');
}

/** Reads a JSON config file (same shape as MonitorConfig, any subset). */
export function readConfigFile(path: string): ConfigOverrides {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new TypeError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  try {
    const value = JSON.parse(text) as unknown;
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error('top level must be an object');
    return value as ConfigOverrides;
  } catch (err) {
    throw new TypeError(`config file ${path} is not valid JSON: ${(err as Error).message}`);
  }
}
