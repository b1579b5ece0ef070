#!/usr/bin/env node
// kissmon: start the monitor, or ask it (or its database) what is going on.
// Exit codes: 0 ok, 1 runtime failure (and `kissmon health` with an actor down), 2 bad usage
// (unknown flag, bad value, socket in use).
import { existsSync, readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import type { Kysely } from 'kysely';
import {
  clientSettings,
  configOption,
  dbOption,
  fractionOption,
  integerOption,
  loadConfig,
  plainTable,
  reportSettings,
  resolveSettings,
  secondsOption,
  socketOption,
  UsageError,
} from './cli-options.js';
import type { ConfigOverrides, MonitorConfig } from './config.js';
import { HOST_NAME_PATTERN, isPostgresUrl } from './config-defaults.js';
import type { FleetBot } from './db/queries.js';
import type { Database } from './db/schema.js';
import type { HostView } from './hosts/hosts.js';
import { parseDuration } from './duration.js';
import { AuthFileError, HostInUseError, HttpTokenFileError, SocketInUseError } from './errors.js';
import { ControlUnavailableError, requestControl } from './http/control-client.js';
import type { RecomputeResult } from './llm/accounting.js';
import type { BudgetStatus } from './llm/budgets.js';
import {
  usageOptions,
  usageReport,
  USAGE_DIMENSIONS,
  type UsageFigures,
  type UsageReportOptions,
  type UsageSource,
} from './llm/report.js';
import { loadtestCommand } from './loadtest/command.js';
import { migrateCommand } from './migrate/command.js';
import type { Logger } from './log.js';
import type { HealthReport, Monitor } from './monitor.js';
import { loadExpected, withMissing, type StatusRow } from './alerts/expected.js';
import { alertCommand, silenceCommand } from './alerts/commands.js';
import { STATUS_SEVERITY } from './protocol/states.js';

const EXIT_USAGE = 2;

/** Seconds on the command line, milliseconds in the config. */
const seconds = (name: string) => (value: string) => secondsOption(name)(value) * 1000;
const fileMode = (value: string) => {
  if (!/^0?[0-7]{3}$/.test(value)) throw new InvalidArgumentError('--socket-mode must be an octal mode such as 0660');
  return parseInt(value, 8);
};
const EXIT_FATAL = 1;
/** Repeatable --alert-webhook: each one an http(s) URL. */
const collectUrl = (value: string, previous: string[] | undefined): string[] => {
  if (!/^https?:\/\/\S+$/.test(value))
    throw new InvalidArgumentError('--alert-webhook must be an http:// or https:// URL');
  return [...(previous ?? []), value];
};
/** `--host NAME` of the cross-host views. */
const hostName = (value: string) => {
  if (!new RegExp(HOST_NAME_PATTERN).test(value))
    throw new InvalidArgumentError('--host must be 1-64 characters of [A-Za-z0-9_.-]');
  return value;
};
/** How long the last log lines may take to reach stdout at exit; a wedged pipe gets no longer. */
const LOG_DRAIN_AT_EXIT_MS = 2_000;

/** The installed package's own package.json (dist/src/cli.js → the package root). */
const PACKAGE = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command('kissmon')
  .description('kissbot-monitor: live registry, resource sampling and LLM usage for a fleet of chat bots')
  .version(PACKAGE.version, '-V, --version', 'print the kissbot-monitor version')
  .showHelpAfterError()
  .enablePositionalOptions() // so `usage` can have positional options (see there)
  .exitOverride()
  // The config schema (TypeBox) for every action but `usage`'s, which reads without it when it can.
  .hook('preAction', (_program, action) => (action.name() === 'usage' ? undefined : loadConfig()));

program
  .command('start')
  .description(
    'run the monitor in the foreground (stop with SIGTERM/SIGINT; SIGHUP reloads auth tokens and the expected fleet file)',
  )
  .addOption(socketOption())
  .addOption(dbOption())
  .addOption(configOption())
  .option('--print-config', 'print the resolved settings (defaults < config file < env < flags) as JSON and exit')
  .option(
    '--stale-after <sec>',
    'mark a bot stale after this long without a heartbeat (default 120)',
    seconds('--stale-after'),
  )
  .option(
    '--sample-interval <sec>',
    "sample every bot's cpu/memory this often (default 15)",
    seconds('--sample-interval'),
  )
  .addOption(
    new Option('--log-level <level>', 'log level').choices([
      'trace',
      'debug',
      'info',
      'warn',
      'error',
      'fatal',
      'silent',
    ]),
  )
  .option('--host-name <name>', "name of this monitor in a shared store (default the machine's hostname)")
  .option(
    '--host-stale-after <sec>',
    'another monitor whose heartbeat is older than this is down (default 60)',
    seconds('--host-stale-after'),
  )
  .option('--socket-mode <mode>', 'file mode of the sockets (default 0660)', fileMode)
  .option('--socket-group <group>', 'group owning the sockets (name or gid)')
  .option('--auth-tokens <file>', 'require per-channel tokens (lines "channel:token" or "*:token")')
  .option(
    '--metrics-port <port>',
    'also serve GET /metrics (Prometheus) on 127.0.0.1:PORT',
    integerOption('--metrics-port', 0, 65535),
  )
  .option(
    '--http-port <port>',
    'serve the dashboard and JSON API over HTTP on this port (docs/DASHBOARD.md)',
    integerOption('--http-port', 0, 65535),
  )
  .option('--http-host <address>', 'address the dashboard binds (default 127.0.0.1; any other needs --http-token-file)')
  .option('--http-token-file <file>', 'file holding the bearer token for the dashboard and API (admin actions need it)')
  .option(
    '--max-connections <n>',
    'refuse connections beyond this many (default 20000)',
    integerOption('--max-connections', 1, 1_000_000),
  )
  .option(
    '--alert-webhook <url>',
    'send alert notifications (Alertmanager webhook format) to this URL; repeatable',
    collectUrl,
    undefined,
  )
  .option(
    '--metrics-per-bot',
    'also export kissmon_bot_up{channel} and kissmon_bot_last_heartbeat_seconds{channel} (one series per bot)',
  )
  .option('--enable-faults', 'allow fault injection (tests and drills only)')
  .option(
    '--fault-sampler-delay <ms>',
    'with --enable-faults: every stats call takes this long',
    integerOption('--fault-sampler-delay', 0, 3_600_000),
  )
  .option(
    '--fault-writer-drop <ratio>',
    'with --enable-faults: the writer loses this fraction of llm_usage rows',
    fractionOption('--fault-writer-drop'),
  )
  .action(async (opts) => {
    const flags: ConfigOverrides = {
      socketPath: opts.socket,
      dbPath: opts.db,
      hostName: opts.hostName,
      hostStaleAfterMs: opts.hostStaleAfter,
      staleAfterMs: opts.staleAfter,
      sampleIntervalMs: opts.sampleInterval,
      logLevel: opts.logLevel,
      socketMode: opts.socketMode,
      socketGroup: opts.socketGroup,
      authTokensFile: opts.authTokens,
      metricsPort: opts.metricsPort,
      http: { port: opts.httpPort, host: opts.httpHost, tokenFile: opts.httpTokenFile },
      limits: { maxConnections: opts.maxConnections },
      metricsPerBot: opts.metricsPerBot,
      alerts: { webhooks: opts.alertWebhook },
      faults: {
        enabled: opts.enableFaults,
        samplerDelayMs: opts.faultSamplerDelay,
        writerDropRatio: opts.faultWriterDrop,
      },
    };
    const config = resolveSettings(opts.config, flags);
    if (opts.printConfig) {
      process.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
      return;
    }
    const { createLogger } = await import('./log.js');
    const log = createLogger(config.logLevel, { thread: 'main' });
    let monitor: Monitor | null = null;
    onFatal(log, () => monitor);
    // A failed start exits here, not at the bottom: this process has a log sink a wedged stdout may hold.
    // Imported here, not at the top: the other commands (`usage` on 10M rows: bench/llm.ts) start without the monitor's modules.
    const { Monitor } = await import('./monitor.js');
    const running = await Monitor.start(config, log).catch((err: Error) => {
      process.stderr.write(`kissmon: ${err.message}\n`);
      // The operator's to fix (another monitor on the socket or as this host, a bad tokens or HTTP token file): usage; else fatal.
      const usage =
        err instanceof SocketInUseError ||
        err instanceof AuthFileError ||
        err instanceof HttpTokenFileError ||
        err instanceof HostInUseError;
      return exit(usage ? EXIT_USAGE : EXIT_FATAL);
    });
    monitor = running;
    let signals = 0;
    const stop = (signal: string) => {
      signals++;
      log.info({ signal, signals }, signals === 1 ? 'signal received' : 'signal received again: fast path');
      void running.stop(0); // a second call takes the fast path: spool and exit
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => {
      running.reloadAuth();
      running.reloadExpected();
    });
    const code = await running.exited;
    if (running.abandonedThreads > 0) {
      // Node joins every worker thread at exit, and one stuck in a system call never returns:
      // leave by signal instead (SIGTERM counts as a clean stop for systemd, SIGKILL as a failure).
      const signal = code === 0 ? 'SIGTERM' : 'SIGKILL';
      log.error(
        { abandoned_threads: running.abandonedThreads, signal },
        'actor threads are stuck and cannot be joined: exiting by signal',
      );
      await (await import('./log.js')).drainLogs(LOG_DRAIN_AT_EXIT_MS);
      process.removeAllListeners('SIGTERM');
      process.kill(process.pid, signal);
    }
    await exit(code);
  });

/**
 * An error nobody caught (a bug, or a fault drill) ends the process through the normal shutdown,
 * non-zero, so what was received is flushed (or spooled) first. A second one while that runs, or
 * one before the monitor is up, ends the process at once.
 */
function onFatal(log: Logger, monitor: () => Monitor | null): void {
  let fatals = 0;
  const fatal = (kind: string) => (err: unknown) => {
    fatals++;
    const running = monitor();
    const now = fatals > 1 || running === null;
    log.fatal(
      { err, kind, fatals },
      now ? `${kind}: exiting now` : `${kind}: shutting down (flush, then exit ${EXIT_FATAL})`,
    );
    if (now) void exit(EXIT_FATAL);
    else void running.stop(EXIT_FATAL);
  };
  process.on('unhandledRejection', fatal('unhandledRejection'));
  process.on('uncaughtException', fatal('uncaughtException'));
}

/** Last log lines out (bounded: a wedged stdout must not hold the process), then exit. */
async function exit(code: number): Promise<never> {
  await (await import('./log.js')).drainLogs(LOG_DRAIN_AT_EXIT_MS);
  process.exit(code);
}

program
  .command('status')
  .description('the live registry (like pm2 ls); falls back to bot_status in the database when no monitor answers')
  .addOption(socketOption())
  .addOption(dbOption())
  .addOption(configOption())
  .option('--json', 'print a JSON array')
  .option('--watch', 'redraw every 2 s in a terminal, worst bots first (like pm2 monit / top); Ctrl-C quits')
  .option(
    '--all-hosts',
    "every host's bots from the shared store (a host column; a down host's bots are unknown, reason host_down)",
  )
  .option('--host <name>', 'with --all-hosts: only this host', hostName)
  .option(
    '--host-stale-after <sec>',
    "overrides every host's own window: a host whose heartbeat is older than this is down (default: each monitor's --host-stale-after, stored with its heartbeat)",
    seconds('--host-stale-after'),
  )
  .action(async (opts) => {
    const settings = viewSettings(opts);
    const { controlSocketPath, dbPath } = settings;
    if (opts.host !== undefined && !opts.allHosts) throw new UsageError('--host goes with --all-hosts');
    if (opts.allHosts) {
      if (opts.watch) throw new UsageError('--watch shows the live registry of one monitor; drop --all-hosts');
      return fleetView(settings, opts);
    }
    if (opts.watch) return watchStatus(controlSocketPath);
    let bots: StatusRow[];
    let source = 'live';
    try {
      bots = await requestControl<StatusRow[]>(controlSocketPath, 'GET', '/status');
    } catch (err) {
      if (!(err instanceof ControlUnavailableError)) throw err;
      if (!storeExists(dbPath)) throw new Error(`${err.message}, and there is no database at ${dbPath}`);
      source = 'database';
      const { describeBackend, parseBackend } = await import('./db/backend.js');
      process.stderr.write(
        `${err.message}; showing bot_status of host ${settings.hostName} from ${describeBackend(parseBackend(dbPath))} (as last written, not live)\n`,
      );
      const { statusRows } = await import('./db/queries.js');
      bots = withMissing(
        await withReadDatabase(dbPath, (db) => statusRows(db, { host: settings.hostName })),
        loadExpected(settings.expected),
      );
    }
    if (opts.json) {
      process.stdout.write(
        `${JSON.stringify(
          bots.map((b) => ({ ...b, source })),
          null,
          2,
        )}\n`,
      );
      return;
    }
    process.stdout.write(
      `${statusTable(bots.sort((a, b) => a.channel.localeCompare(b.channel)))}\n${statusSummary(bots)} — source: ${source}. cpu % (core) is % of one core and can exceed 100; cpu % (machine) is of all cores.\n`,
    );
  });

/** Every WATCH_INTERVAL_MS: the live registry, worst bots first, as many as the terminal has rows for. */
const WATCH_INTERVAL_MS = 2_000;

async function watchStatus(controlSocketPath: string): Promise<void> {
  if (!process.stdout.isTTY) {
    throw new UsageError(
      '--watch redraws the terminal every 2 s, and stdout is not a terminal; use `kissmon status` (prints once) or `--json`',
    );
  }
  const out = process.stdout;
  let stop = false;
  const quit = () => {
    out.write('\x1b[?25h\n'); // cursor back
    process.exit(0);
  };
  process.once('SIGINT', quit);
  process.once('SIGTERM', quit);
  out.on('error', () => (stop = true)); // the terminal went away
  out.write('\x1b[?25l'); // no cursor flicker while redrawing
  while (!stop) {
    let screen: string;
    try {
      const [bots, health] = await Promise.all([
        requestControl<StatusRow[]>(controlSocketPath, 'GET', '/status'),
        requestControl<{ actors: HealthReport }>(controlSocketPath, 'GET', '/health'),
      ]);
      const down = health.actors.filter((h) => !h.up).map((h) => h.actor);
      const worst = bots.sort(
        (a, b) =>
          statusRank(a.status) - statusRank(b.status) ||
          (b.heartbeat_age_s ?? 0) - (a.heartbeat_age_s ?? 0) ||
          a.channel.localeCompare(b.channel),
      );
      // The table takes 4 lines of frame and 1 per row, the summary and the "more" line 2.
      const fit = Math.max(1, (out.rows || 24) - 7);
      const shown = worst.slice(0, fit);
      screen =
        `${statusSummary(bots)} · monitor ${down.length ? `DEGRADED (${down.join(', ')} down)` : 'ok'} · ${new Date().toISOString().slice(11, 19)} UTC · Ctrl-C quits\n` +
        `${statusTable(shown)}\n${bots.length > shown.length ? `${bots.length - shown.length} more (healthier) not shown\n` : ''}`;
    } catch (err) {
      screen = `kissmon status --watch: ${(err as Error).message}; trying again every ${WATCH_INTERVAL_MS / 1000} s\n`;
    }
    if (stop) break;
    out.write(`\x1b[H\x1b[2J${screen}`);
    await new Promise((r) => setTimeout(r, WATCH_INTERVAL_MS));
  }
}

/** Worst first: dead, then missing (an expected bot that never came), then stale, online, offline. */
function statusRank(status: StatusRow['status']): number {
  return status === 'missing' ? 0.5 : STATUS_SEVERITY[status];
}

function statusTable(bots: StatusRow[]): string {
  const table = plainTable([
    'channel',
    'pid',
    'status',
    'last hb',
    'cpu % (core)',
    'cpu % (machine)',
    'rss MB',
    'sampled',
    'features',
  ]);
  for (const bot of bots) {
    table.push([
      bot.channel,
      bot.pid ?? '-',
      bot.status,
      bot.heartbeat_age_s !== null
        ? `${bot.heartbeat_age_s.toFixed(1)}s ago`
        : bot.last_heartbeat
          ? ago(bot.last_heartbeat)
          : '-',
      fmt(bot.cpu_pct),
      fmt(bot.cpu_pct_machine),
      fmt(bot.rss_mb),
      bot.sampled_at ? ago(bot.sampled_at) : '-',
      bot.features
        ? Object.entries(bot.features)
            .filter(([, on]) => on)
            .map(([k]) => k)
            .join(',')
        : '',
    ]);
  }
  return table.toString();
}

function statusSummary(bots: { status: string }[]): string {
  const counts = bots.reduce<Record<string, number>>(
    (acc, b) => ({ ...acc, [b.status]: (acc[b.status] ?? 0) + 1 }),
    {},
  );
  return `${bots.length} bots (${
    Object.entries(counts)
      .map(([s, n]) => `${n} ${s}`)
      .join(', ') || 'none'
  })`;
}

/** Client settings (the `--host-stale-after` override is read from opts: absent, each host's own window). */
function viewSettings(opts: { config?: string; socket?: string; db?: string }): MonitorConfig {
  return resolveSettings(opts.config, { socketPath: opts.socket, dbPath: opts.db });
}

/** `status --all-hosts`: every host's bots from the store (no monitor needed). */
async function fleetView(
  settings: MonitorConfig,
  opts: { host?: string; json?: boolean; hostStaleAfter?: number },
): Promise<void> {
  if (!storeExists(settings.dbPath)) throw new Error(`no database at ${settings.dbPath}`);
  const { fleetStatus } = await import('./db/queries.js');
  const bots = await withReadDatabase(settings.dbPath, (db) =>
    fleetStatus(db, {
      ...(opts.hostStaleAfter !== undefined && { staleAfterMs: opts.hostStaleAfter }),
      ...(opts.host !== undefined && { host: opts.host }),
    }),
  );
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(bots, null, 2)}\n`);
    return;
  }
  const hosts = new Set(bots.map((b) => b.host));
  const down = new Set(bots.filter((b) => b.reason === 'host_down').map((b) => b.host));
  process.stdout.write(
    `${fleetTable(bots)}\n${statusSummary(bots)} on ${hosts.size} host${hosts.size === 1 ? '' : 's'}` +
      `${down.size > 0 ? ` (down: ${[...down].join(', ')}; their bots are unknown)` : ''} — source: database (as each monitor last wrote it).\n`,
  );
}

function fleetTable(bots: FleetBot[]): string {
  const table = plainTable(['host', 'channel', 'pid', 'status', 'last hb', 'cpu % (core)', 'rss MB', 'sampled']);
  for (const bot of bots) {
    table.push([
      bot.host,
      bot.channel,
      bot.pid,
      bot.reason === 'host_down' ? `unknown (host down; was ${bot.stored_status})` : bot.status,
      bot.last_heartbeat ? ago(bot.last_heartbeat) : '-',
      fmt(bot.cpu_pct),
      fmt(bot.rss_mb),
      bot.sampled_at ? ago(bot.sampled_at) : '-',
    ]);
  }
  return table.toString();
}

program
  .command('hosts')
  .description('every monitor sharing the store: version, pid, start, last heartbeat, up/down, bots by status')
  .addOption(dbOption())
  .addOption(configOption())
  .option(
    '--host-stale-after <sec>',
    "overrides every host's own window: a host whose heartbeat is older than this is down (default: each monitor's --host-stale-after, stored with its heartbeat)",
    seconds('--host-stale-after'),
  )
  .option('--json', 'print JSON (the same as GET /hosts)')
  .action(async (opts) => {
    const settings = viewSettings(opts);
    if (!storeExists(settings.dbPath)) throw new Error(`no database at ${settings.dbPath}`);
    const { hostViews } = await import('./hosts/hosts.js');
    const hosts = await withReadDatabase(settings.dbPath, (db) =>
      hostViews(db, opts.hostStaleAfter !== undefined ? { staleAfterMs: opts.hostStaleAfter } : {}),
    );
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(hosts, null, 2)}\n`);
      return;
    }
    const table = plainTable(['host', 'version', 'pid', 'started', 'last seen', 'age', 'down after', 'state', 'bots']);
    for (const h of hosts)
      table.push([
        h.host,
        h.version,
        h.pid,
        h.started_at,
        h.last_seen,
        `${h.age_s}s`,
        `${h.stale_after_s}s`,
        h.state,
        botCounts(h),
      ]);
    const down = hosts.filter((h) => h.state === 'down').length;
    const window =
      opts.hostStaleAfter !== undefined
        ? `no heartbeat for ${opts.hostStaleAfter / 1000} s, --host-stale-after`
        : "no heartbeat for longer than each monitor's own --host-stale-after";
    process.stdout.write(
      `${table.toString()}\n${hosts.length} host${hosts.length === 1 ? '' : 's'}, ${down} down (down: ${window})\n`,
    );
  });

function botCounts(h: HostView): string {
  return (
    Object.entries(h.bots)
      .filter(([, n]) => (n ?? 0) > 0)
      .map(([status, n]) => `${n} ${status}`)
      .join(', ') || 'none'
  );
}

const usage = program
  .command('usage')
  .description(
    'LLM usage from the database: calls, tokens, cost, error rate, cached share, latency percentiles (docs/LLM_USAGE.md)',
  )
  .addOption(dbOption())
  .addOption(configOption())
  .option('--since <when>', 'window start: a duration before now (7d, 24h, 30m) or an ISO time', '7d')
  .option('--until <when>', 'window end: a duration before now or an ISO time (default now)')
  .option('--by <dims>', `group by, comma-separated: ${USAGE_DIMENSIONS.join(', ')}`, 'channel')
  .option('--host <name>', "only this host's calls (default every host sharing the store)", hostName)
  .option('--top <n>', 'only the N costliest groups (totals cover all)', integerOption('--top', 1, 1_000_000))
  .option('--json', 'print JSON (the same as GET /usage)')
  .option('--csv', 'print CSV')
  // `usage recompute --since 30d`: the subcommand's --since, not this one's.
  .enablePositionalOptions()
  .action(async (opts) => {
    const config = await reportSettings(opts);
    let options: UsageReportOptions;
    try {
      options = usageOptions(config, {
        since: opts.since,
        until: opts.until,
        by: opts.by,
        ...(opts.top !== undefined && { top: String(opts.top) }),
        ...(opts.host !== undefined && { host: opts.host }),
      });
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    if (!storeExists(config.dbPath)) throw new Error(`no database at ${config.dbPath}`);
    // SQLite: a bare connection (no kysely to load); PostgreSQL needs its driver either way.
    const report = isPostgresUrl(config.dbPath)
      ? await withReadDatabase(config.dbPath, (db) => usageReport(db, options))
      : await withReadConnection(config.dbPath, (db) => usageReport(db, options));
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      return;
    }
    const columns = [
      'calls',
      'tokens_in',
      'tokens_out',
      'cached_share_pct',
      'cost_usd',
      'unpriced_calls',
      'error_rate_pct',
      'latency_p50_ms',
      'latency_p95_ms',
      'latency_p99_ms',
    ] as const;
    if (opts.csv) {
      const cell = (v: string | number | null | undefined) => {
        const s = v === null || v === undefined ? '' : String(v);
        return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
      };
      const lines = [
        [...report.by, ...columns].join(','),
        ...report.rows.map((r) => [...report.by.map((d) => r[d]), ...columns.map((c) => r[c])].map(cell).join(',')),
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
      return;
    }
    const table = plainTable([
      ...report.by,
      'calls',
      'tokens in',
      'tokens out',
      'cached %',
      'cost USD',
      'unpriced',
      'err %',
      'p50 ms',
      'p95 ms',
      'p99 ms',
    ]);
    // Unknown cost (every call unpriced): empty; partial (some unpriced): the priced calls' cost and `+`.
    const cost = (r: UsageFigures) =>
      r.cost_usd === null ? '' : `${r.cost_usd.toFixed(6)}${r.unpriced_calls > 0 ? '+' : ''}`;
    const line = (r: UsageFigures) => [
      r.calls,
      r.tokens_in,
      r.tokens_out,
      r.cached_share_pct,
      cost(r),
      r.unpriced_calls,
      r.error_rate_pct,
      fmt(r.latency_p50_ms),
      fmt(r.latency_p95_ms),
      fmt(r.latency_p99_ms),
    ];
    for (const r of report.rows) table.push([...report.by.map((d) => r[d] ?? ''), ...line(r)]);
    table.push([...report.by.map((_, i) => (i === 0 ? 'total' : '')), ...line(report.totals)]);
    process.stdout.write(
      `${table.toString()}\n${report.since} to ${report.until}, from ${report.source === 'raw' ? 'raw rows' : 'rollups'}; percentiles ${report.percentiles}` +
        `${report.percentiles === 'estimated' ? ' from rollup histograms (within ±12.5 %)' : ''}\n` +
        `${report.totals.unpriced_calls > 0 ? 'cost USD: + = without the unpriced calls (no price known); empty = no call priced\n' : ''}`,
    );
  });

usage
  .command('recompute')
  .description(
    're-price stored llm_usage rows with the prices in force now (after a price fix); reports how many changed',
  )
  .addOption(socketOption())
  .addOption(dbOption())
  .addOption(configOption())
  .requiredOption('--since <duration>', 'rows newer than this, e.g. 30d')
  .option('--json', 'print JSON')
  .action(async (opts) => {
    try {
      parseDuration(opts.since, '--since');
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    // Through the running monitor's writer (the one writer of the database); admin socket only.
    const { RECOMPUTE_TIMEOUT_MS } = await import('./llm/accounting.js');
    const result = await requestControl<RecomputeResult>(
      clientSettings(opts).adminSocketPath,
      'POST',
      `/usage/recompute?since=${encodeURIComponent(opts.since)}`,
      RECOMPUTE_TIMEOUT_MS,
    );
    if (opts.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else
      process.stdout.write(
        `checked ${result.rows_checked} rows since ${result.since}: ${result.rows_changed} re-priced (${result.rows_priced_now} priced now, ${result.rows_unpriced_now} without a price now)\n`,
      );
  });

program
  .command('prices')
  .description('the LLM price table in force (built-in defaults and the config file), USD per 1M tokens')
  .addOption(configOption())
  .option('--json', 'print JSON (the same as GET /prices)')
  .action(async (opts) => {
    const { PriceTable } = await import('./llm/prices.js');
    const prices = new PriceTable(clientSettings(opts).prices).list();
    if (opts.json) {
      process.stdout.write(`${JSON.stringify({ prices }, null, 2)}\n`);
      return;
    }
    const table = plainTable(['model', 'from', 'in force', 'input', 'cached input', 'output', 'reasoning', 'source']);
    for (const p of prices)
      table.push([
        p.model,
        p.from ?? 'always',
        p.current ? 'yes' : '',
        p.input,
        p.cached_input,
        p.output,
        p.reasoning,
        p.source,
      ]);
    process.stdout.write(
      `${table.toString()}\nUSD per 1M tokens; a model no key matches has no price (cost NULL, counted as unpriced)\n`,
    );
  });

program
  .command('budgets')
  .description('LLM budgets of the running monitor: spend this period, limit, projection, level')
  .addOption(socketOption())
  .addOption(configOption())
  .option('--json', 'print JSON (the same as GET /budgets)')
  .action(async (opts) => {
    const { budgets } = await requestControl<{ budgets: BudgetStatus[] }>(
      clientSettings(opts).controlSocketPath,
      'GET',
      '/budgets',
    );
    if (opts.json) {
      process.stdout.write(`${JSON.stringify({ budgets }, null, 2)}\n`);
      return;
    }
    const table = plainTable(['name', 'period', 'since', 'spent USD', 'limit USD', 'pct', 'projected USD', 'level']);
    for (const b of budgets)
      table.push([
        b.name,
        b.period,
        b.period_start,
        b.spent_usd.toFixed(4),
        b.limit_usd,
        b.pct,
        b.projected_usd.toFixed(4),
        b.level,
      ]);
    process.stdout.write(
      `${table.toString()}\n${budgets.length === 0 ? 'no budgets configured (config "budgets")\n' : ''}`,
    );
  });

program
  .command('health')
  .description('per-actor health and restarts of the running monitor; exits 1 when an actor is down')
  .addOption(socketOption())
  .addOption(configOption())
  .option('--json', 'print JSON')
  .action(async (opts) => {
    const { actors } = await requestControl<{ actors: HealthReport }>(
      clientSettings(opts).controlSocketPath,
      'GET',
      '/health',
    );
    // Scripts and systemd ExecStartPost= checks read the exit code, not the table.
    if (actors.some((h) => !h.up)) process.exitCode = 1;
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(actors, null, 2)}\n`);
      return;
    }
    const table = plainTable([
      'actor',
      'up',
      'last answer',
      'restarts',
      'last restart',
      'processed',
      'queue',
      'dropped',
      'lag p99 ms',
      'lag max ms',
      'heap MB',
      'uptime s',
    ]);
    for (const h of actors) {
      table.push([
        h.actor,
        h.up ? 'yes' : 'NO',
        h.last_answer_ms_ago === null ? '-' : `${(h.last_answer_ms_ago / 1000).toFixed(1)}s ago`,
        h.restarts,
        h.last_restart_reason ?? '-',
        h.processed,
        h.queue_depth,
        h.dropped,
        h.loop_lag_p99_ms,
        h.loop_lag_max_ms,
        h.heap_used_mb,
        h.uptime_s,
      ]);
    }
    const details = actors.map(
      (h) =>
        `  ${h.actor}: ${Object.entries(h.detail)
          .map(([k, v]) => `${k}=${v}`)
          .join(' ')}`,
    );
    process.stdout.write(`${table.toString()}\n${details.join('\n')}\n`);
  });

program
  .command('fault')
  .description('fault injection on a monitor started with --enable-faults (drills and tests)')
  .argument('<action>', 'crash (the thread throws) | hang (the thread spins forever)')
  .argument('<actor>', 'registry | db | sampler | alerter')
  .addOption(socketOption())
  .addOption(configOption())
  .action(async (action: string, actor: string, opts) => {
    if (action !== 'crash' && action !== 'hang')
      throw new UsageError(`unknown fault action ${action}; use "crash" or "hang"`);
    if (!['registry', 'db', 'sampler', 'alerter'].includes(actor))
      throw new UsageError('actor must be registry, db, sampler or alerter');
    // Admin route: only the monitor's own user can reach the admin socket (mode 0600).
    await requestControl(clientSettings(opts).adminSocketPath, 'POST', `/fault/${action}?actor=${actor}`);
    process.stdout.write(
      action === 'crash'
        ? `asked ${actor} to crash; the supervisor restarts it (see kissmon health)\n`
        : `asked ${actor} to hang; the supervisor finds it not answering and restarts it (see kissmon health)\n`,
    );
  });

program.addCommand(alertCommand());
program.addCommand(silenceCommand());
program.addCommand(loadtestCommand());
program.addCommand(migrateCommand());

/** An SQLite file that is there, or a PostgreSQL URL (whether that answers, the query says). */
function storeExists(dbPath: string): boolean {
  return isPostgresUrl(dbPath) || existsSync(dbPath);
}

/** One query on a read-only connection of this process: a one-shot command needs no thread pool. */
async function withReadDatabase<T>(dbPath: string, query: (db: Kysely<Database>) => Promise<T>): Promise<T> {
  // Imported here: `usage` on SQLite reads without kysely (withReadConnection), and starts faster for it.
  const { openReader, parseBackend } = await import('./db/backend.js');
  const db = openReader(parseBackend(dbPath));
  try {
    return await query(db);
  } finally {
    await db.destroy();
  }
}

/** One report on a bare read-only better-sqlite3 connection: no kysely or thread pool to start. */
async function withReadConnection<T>(dbPath: string, query: (db: UsageSource) => Promise<T>): Promise<T> {
  const { openReadConnection } = await import('./db/read-connection.js');
  const sqlite = openReadConnection(dbPath);
  try {
    return await query(async (text) => sqlite.prepare(text).all());
  } finally {
    sqlite.close();
  }
}

function fmt(n: number | null | undefined): string {
  return n === null || n === undefined ? '-' : String(Math.round(n * 10) / 10);
}

function ago(ms: number): string {
  return `${((Date.now() - ms) / 1000).toFixed(1)}s ago`;
}

// `kissmon usage | head`: a reader that goes away ends a command quietly, as for other Unix tools
// (an unhandled EPIPE was a crash). Not the monitor: its logging has its own policy for a lost stdout.
program.hook('preAction', (_program, command) => {
  if (command.name() === 'start') return;
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    process.exit(0);
  });
});

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // Help and version are not errors; everything else commander rejects is bad usage.
    process.exitCode =
      err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0 ? 0 : EXIT_USAGE;
  } else if (err instanceof UsageError) {
    process.stderr.write(`kissmon: ${err.message}\n`);
    process.exitCode = EXIT_USAGE;
  } else {
    process.stderr.write(`kissmon: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
