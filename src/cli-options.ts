// Option parsers shared by every kissmon command: a bad value is an InvalidArgumentError, which
// commander reports with the option's name and the CLI turns into exit code 2.
import { createRequire } from 'node:module';
import { InvalidArgumentError, Option } from 'commander';
import { MonitorError } from './errors.js';
import type { ConfigOverrides, MonitorConfig } from './config.js';
import {
  CONFIG_ENV_PREFIX,
  CONFIG_FILE_ENV,
  DB_ENV,
  DEFAULT_DB,
  isPostgresUrl,
  LLM_REPORT_DEFAULTS,
} from './config-defaults.js';

// The config module (its TypeBox schema is most of a client command's start-up) is loaded by the CLI
// before a command's action (loadConfig()), except for `kissmon usage`, which reads reportSettings().
let config: typeof import('./config.js') | undefined;
export async function loadConfig(): Promise<void> {
  config ??= await import('./config.js');
}

/** Bad usage: the CLI prints the message and exits 2. */
export class UsageError extends MonitorError {
  constructor(message: string) {
    super('ERR_USAGE', message);
  }
}

export const integerOption =
  (name: string, min: number, max: number) =>
  (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}`);
    return n;
  };

/** Seconds, fractions allowed (`--stale-after 2`, `--sample-interval 0.5`). */
export const secondsOption =
  (name: string) =>
  (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0)
      throw new InvalidArgumentError(`${name} must be a positive number of seconds (fractions allowed)`);
    return n;
  };

export const fractionOption =
  (name: string) =>
  (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < 0 || n > 1) throw new InvalidArgumentError(`${name} must be a number from 0 to 1`);
    return n;
  };

// No option defaults here: a flag overrides the config file and env only when it is given.
export const socketOption = () =>
  new Option(
    '--socket <path>',
    'bot socket path (config socketPath, env KISSBOT_MONITOR_SOCKET; default /tmp/kissbot_monitor.sock)',
  );
export const dbOption = () =>
  new Option(
    '--db <path|url>',
    'SQLite database file or postgres://user@host:port/db URL (config dbPath, env KISSBOT_MONITOR_DB; default ./kissbot_monitor.db)',
  );
export const configOption = () =>
  new Option('--config <file>', `JSON config file, any subset of the settings (env ${CONFIG_FILE_ENV})`);

/**
 * defaults < config file < env < flags given. Bad settings are usage errors (exit 2) naming the
 * setting and what it must be.
 */
export function resolveSettings(configFile: string | undefined, flags: ConfigOverrides): MonitorConfig {
  const file = configFile ?? (process.env[CONFIG_FILE_ENV] || undefined);
  if (config === undefined) throw new Error('resolveSettings before loadConfig()');
  const { envOverrides, readConfigFile, resolveConfig } = config;
  try {
    return resolveConfig(file ? readConfigFile(file) : {}, envOverrides(), flags);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** Where a client command finds the monitor: the same layers as `start`, for the paths only. */
export const clientSettings = (opts: { config?: string; socket?: string; db?: string }) =>
  resolveSettings(opts.config, { socketPath: opts.socket, dbPath: opts.db });

/** What a usage report reads of the settings. */
export type ReportSettings = Pick<MonitorConfig, 'dbPath'> & {
  llm: Pick<MonitorConfig['llm'], 'rollups' | 'exactPercentileRows'>;
};

/**
 * clientSettings() for `kissmon usage`: without a config file or config variables (other than the
 * database's) there is nothing to validate but --db, and the defaults are config-defaults.ts's, so
 * the schema is not loaded; otherwise the settings are resolved (and checked) as for every command.
 */
export async function reportSettings(opts: { config?: string; db?: string }): Promise<ReportSettings> {
  const env = process.env;
  const dbPath = opts.db ?? (env[DB_ENV] || DEFAULT_DB);
  const layered =
    opts.config !== undefined ||
    dbPath === '' ||
    isPostgresUrl(dbPath) || // the URL is checked with the settings
    Object.keys(env).some((v) => v.startsWith(CONFIG_ENV_PREFIX) && v !== DB_ENV && env[v] !== '');
  if (!layered) return { dbPath, llm: { ...LLM_REPORT_DEFAULTS } };
  await loadConfig();
  return clientSettings(opts);
}

/** A table of text cells: `push` rows, then `toString`. */
export interface TextTable {
  push(row: readonly (string | number | boolean | null | undefined)[]): void;
  toString(): string;
}

/**
 * A bordered table, one line per row, no colours: the output is read in terminals, logs and pipes
 * alike. Laid out here, not by cli-table3: that took 200–300 ms of CPU for the ~400 rows of a
 * 90-day `kissmon usage --by channel,model` (per-cell option merging and ANSI scans), in a command
 * whose whole budget is 500 ms; this is a few ms. Widths are display widths (string-width) for
 * cells that are not plain ASCII.
 */
export function plainTable(head: string[]): TextTable {
  const rows: string[][] = [];
  return {
    push(row) {
      rows.push(row.map((cell) => (cell === null || cell === undefined ? '' : String(cell))));
    },
    toString() {
      const width = (text: string) => (/^[\x20-\x7e]*$/.test(text) ? text.length : displayWidth(text));
      const widths = head.map((h) => width(h));
      const measured = rows.map((row) =>
        row.map((cell, i) => {
          const w = width(cell);
          if (w > (widths[i] ?? 0)) widths[i] = w;
          return w;
        }),
      );
      const rule = (left: string, mid: string, right: string) =>
        `${left}${widths.map((w) => '─'.repeat(w + 2)).join(mid)}${right}`;
      const line = (cells: string[], cellWidths: number[]) =>
        `│${widths.map((w, i) => ` ${cells[i] ?? ''}${' '.repeat(w - (cellWidths[i] ?? 0))} `).join('│')}│`;
      return [
        rule('┌', '┬', '┐'),
        line(head, head.map(width)),
        rule('├', '┼', '┤'),
        ...rows.map((row, r) => line(row, measured[r])),
        rule('└', '┴', '┘'),
      ].join('\n');
    },
  };
}

let stringWidth: ((text: string) => number) | undefined;
function displayWidth(text: string): number {
  // Required on first use: most tables are plain ASCII, and the monitor never loads it.
  stringWidth ??= createRequire(import.meta.url)('string-width') as (text: string) => number;
  return stringWidth(text);
}
