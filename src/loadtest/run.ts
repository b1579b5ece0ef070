// `kissmon loadtest`: drive a simulated fleet against a running monitor, then check the monitor's
// own view of it — its database and its registry — against what the fleet really wrote.
//
//   preflight (monitor answers, GET /settings: its database and limits; database readable, open-file limits)
//     → spawn bot processes → connect + register  (heartbeats with jitter and `ts` from here on)
//     → POST /latency/reset, cpu/rss baseline
//     → llm_usage at --llm-rate for --duration     (progress line on a TTY)
//     → stop llm_usage, wait until every line is written or failed; latency, cpu/rss
//     → POST /flush → count rows and events for this run's channel prefix; GET /status
//     → every bot unregisters, bot processes exit (killed by pid if they do not)
//
// Heartbeats go on until after the checks, so a bot that is not `online` by then was marked so
// while it was heartbeating. Every channel carries a prefix unique to the run (lt<random>_<i>), so
// rows and events are counted exactly even on a monitor that serves a real fleet at the same time.
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import BetterSqlite3 from 'better-sqlite3';
import { MonitorError } from '../errors.js';
import { ControlUnavailableError, requestControl } from '../http/control-client.js';
import type { MonitorSettings } from '../http/settings-routes.js';
import type { BotSnapshot, RegistryLatency } from '../actors/registry-messages.js';
import { Fleet, splitMode, type FleetMode } from './fleet.js';
import { FD_OVERHEAD } from './limits.js';
import { openFilesLimit } from '../proc.js';
import { startPlaceholders, type Placeholders } from './placeholders.js';

export interface LoadtestOptions {
  socket: string;
  /** The monitor's read and admin control sockets. */
  control: string;
  admin: string;
  /** Overrides the database the monitor names in GET /settings (`--db`). */
  db?: string;
  /** Where to look when the monitor is too old to answer GET /settings (the client's own config). */
  fallbackDb?: string;
  bots: number;
  durationS: number;
  heartbeatS: number;
  /** llm_usage lines per second, whole fleet. */
  llmRate: number;
  mode: FleetMode;
  processes: number;
  /** Give every bot its own idle process (so the sampler watches N distinct pids). */
  pidPerBot: boolean;
  token?: string;
  connectTimeoutS: number;
}

export interface LatencyMs {
  p50: number;
  p95: number;
  p99: number;
  max: number;
  count: number;
}

export interface LoadtestReport {
  ok: boolean;
  /** Why ok is false, one sentence each. */
  problems: string[];
  prefix: string;
  bots: number;
  mode: FleetMode;
  processes: number;
  pid_per_bot: boolean;
  duration_s: number;
  heartbeat_interval_s: number;
  llm_rate: number;
  connect_s: number;
  bots_registered: number;
  messages_sent: number;
  heartbeats_sent: number;
  heartbeats_failed: number;
  llm_rows_expected: number;
  llm_rows_landed: number;
  /** expected − landed: negative would mean rows counted twice. */
  lost: number;
  /** llm_usage lines the bots tried to send but could not write (not expected in the database). */
  llm_rows_failed: number;
  llm_rate_achieved: number;
  false_stale: number;
  false_stale_detail: {
    stale_events: number;
    dead_events: number;
    offline_events: number;
    not_online_at_end: number;
    excluded_bots: number;
    examples: string[];
  };
  /** Heartbeat send (client `ts`) → applied in the registry. */
  latency_ms: LatencyMs;
  /** Monitor read the line → applied in the registry (the monitor's own share of the above). */
  read_to_visible_ms: LatencyMs;
  /** Connects that failed from the start of the measured window on (a one-shot message lost, a reconnect retried). */
  connect_failures: number;
  /** Connects that failed (and were retried) while the fleet connected, e.g. the monitor's listen backlog full. */
  connect_retries_at_start: number;
  reconnects: number;
  oneshot_connections: number;
  monitor: {
    pid: number;
    cpu_pct: number;
    rss_mb: number;
    rss_peak_mb: number;
    refused_connections: number;
    dropped: number;
    flushed: boolean;
  };
  generator: { pids: number[]; cpu_pct: number };
  started_at: string;
}

export interface LoadtestHooks {
  /** A one-line status, rewritten in place on a TTY; absent: quiet. */
  progress?: (line: string) => void;
  /** Notes worth a human's attention (stderr). */
  note?: (message: string) => void;
  signal?: AbortSignal;
}

/** The run was interrupted (SIGINT/SIGTERM): bots were unregistered and every child ended. */
export class LoadtestInterrupted extends MonitorError {
  constructor(message: string) {
    super('ERR_LOADTEST_INTERRUPTED', message);
  }
}

/**
 * The requested run does not fit the OS limits (open files, processes) or the monitor's own settings
 * (connections, bots, auth, stale window); the message says what to change.
 */
export class LoadtestLimitError extends MonitorError {
  constructor(message: string) {
    super('ERR_LOADTEST_LIMIT', message);
  }
}

interface ProcessStats {
  pid: number;
  rss_mb: number;
  cpu_user_ms: number;
  cpu_system_ms: number;
}
interface HealthBody {
  process: ProcessStats;
  ingest: { connections_refused: number; dropped_overflow: number; connections_open: number };
  actors: { actor: string; dropped: number }[];
}

/** Most one-shot connections each bot process keeps in flight. */
const ONESHOT_CONCURRENCY = 128;
/** What the monitor holds open besides bot connections (database, workers, control API, the sampler's /proc read). */
const MONITOR_FD_OVERHEAD = 400;

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
  });

const round1 = (n: number) => Math.round(n * 10) / 10;

export async function runLoadtest(options: LoadtestOptions, hooks: LoadtestHooks = {}): Promise<LoadtestReport> {
  const { control, admin } = options;
  const note = hooks.note ?? (() => {});
  const signal = hooks.signal;
  const checkAbort = () => {
    if (signal?.aborted)
      throw new LoadtestInterrupted('interrupted: every bot was unregistered and every bot process ended');
  };
  const startedAt = new Date();
  const prefix = `lt${randomBytes(4).toString('hex')}`;
  const { persistent } = splitMode(options.bots, options.mode);
  const processes = Math.min(options.processes, options.bots);

  // ---- preflight: is there a monitor, a database, and room for this many sockets? ----
  const health0 = await requestControl<HealthBody>(control, 'GET', '/health');
  const settings = await monitorSettings(control, note);
  const dbPath = options.db ?? settings?.db ?? options.fallbackDb;
  if (dbPath === undefined) throw new Error('the monitor does not say where its database is: pass its --db');
  if (URL.canParse(dbPath))
    throw new Error(`the monitor writes to ${dbPath}: the loadtest counts rows in an SQLite file only`);
  if (!existsSync(dbPath))
    throw new Error(
      `no database at ${dbPath}${options.db ? '' : ' (where the monitor says it writes)'}: the loadtest counts rows in it; --db names another`,
    );
  if (settings) checkSettings(options, persistent, processes, settings, health0);
  checkLimits(options, persistent, processes, health0, note);

  let placeholders: Placeholders | null = null;
  let fleet: Fleet | null = null;
  const db = new BetterSqlite3(dbPath, { readonly: true, fileMustExist: true });
  db.pragma('busy_timeout = 5000');
  try {
    if (options.pidPerBot) {
      hooks.progress?.(`starting ${options.bots.toLocaleString('en')} placeholder processes (--pid-per-bot)…`);
      placeholders = await startPlaceholders(options.bots);
      checkAbort();
    }
    fleet = await Fleet.start({
      socket: options.socket,
      prefix,
      bots: options.bots,
      mode: options.mode,
      processes,
      heartbeatMs: options.heartbeatS * 1000,
      pids: placeholders?.pids,
      token: options.token,
      oneshotConcurrency: ONESHOT_CONCURRENCY,
    });
    const childLimit = fleet.openFilesLimit;
    const perChild = Math.ceil(persistent / processes) + ONESHOT_CONCURRENCY + FD_OVERHEAD;
    if (childLimit !== null && childLimit < perChild) {
      throw new LoadtestLimitError(
        `the bot processes could only raise their open-file limit to ${childLimit}, but ${Math.ceil(persistent / processes)} connections each need about ${perChild}: use --processes ${Math.ceil(persistent / Math.max(1, childLimit - ONESHOT_CONCURRENCY - FD_OVERHEAD))} or more`,
      );
    }

    // ---- connect and register ----
    const connectStart = performance.now();
    const connectDeadline = connectStart + options.connectTimeoutS * 1000;
    const connected = fleet.waitConnected(options.connectTimeoutS * 1000);
    let allConnected = false;
    void connected.then(
      (ok) => (allConnected = ok),
      () => {},
    );
    while (!allConnected && performance.now() < connectDeadline && !signal?.aborted) {
      const c = fleet.counters();
      hooks.progress?.(
        `connecting: ${c.registered.toLocaleString('en')}/${options.bots.toLocaleString('en')} bots registered, ${c.connect_failures} connect failures`,
      );
      await Promise.race([connected, sleep(500, signal)]);
    }
    allConnected = await Promise.race([connected, Promise.resolve(allConnected)]);
    checkAbort();
    const connectS = round1((performance.now() - connectStart) / 1000);
    if (!allConnected)
      note(
        `only ${fleet.counters().registered} of ${options.bots} bots registered within --connect-timeout ${options.connectTimeoutS} s; running with those`,
      );
    // Let the registry apply the registrations before measuring, so the connect burst is not in
    // the latency figures: wait until it lists what the bots wrote (or 10 s).
    const registeredWritten = fleet.counters().registered;
    const statusDeadline = performance.now() + 10_000;
    while (performance.now() < statusDeadline && !signal?.aborted) {
      const ours = ourBots(await requestControl<BotSnapshot[]>(control, 'GET', '/status', 30_000), prefix);
      if (ours.size >= registeredWritten) break;
      await sleep(250, signal);
    }
    checkAbort();

    // ---- the measured window ----
    await requestControl(admin, 'POST', '/latency/reset');
    const healthStart = await requestControl<HealthBody>(control, 'GET', '/health');
    const countersStart = fleet.counters();
    const windowStart = performance.now();
    let rssPeak = healthStart.process.rss_mb;
    if (options.llmRate > 0) fleet.llm(options.llmRate);
    const windowMs = options.durationS * 1000;
    let last = { at: windowStart, counters: countersStart };
    while (!signal?.aborted) {
      const left = windowStart + windowMs - performance.now();
      if (left <= 0) break;
      await sleep(Math.min(1_000, left), signal);
      const [h, latency] = await Promise.all([
        requestControl<HealthBody>(control, 'GET', '/health'),
        hooks.progress ? requestControl<RegistryLatency>(control, 'GET', '/latency') : Promise.resolve(null),
      ]);
      rssPeak = Math.max(rssPeak, h.process.rss_mb);
      if (hooks.progress) {
        const now = performance.now();
        const c = fleet.counters();
        const rate = ((c.lines_written - last.counters.lines_written) * 1000) / Math.max(1, now - last.at);
        const llm = ((c.llm_written - last.counters.llm_written) * 1000) / Math.max(1, now - last.at);
        const cpu = cpuPct(healthStart.process, h.process, now - windowStart);
        hooks.progress(
          `[${Math.min(options.durationS, Math.round((now - windowStart) / 1000))}/${options.durationS} s] ` +
            `bots ${c.registered.toLocaleString('en')}/${options.bots.toLocaleString('en')} (${c.connected.toLocaleString('en')} connections open) · ` +
            `${Math.round(rate).toLocaleString('en')} msgs/s · llm ${Math.round(llm).toLocaleString('en')}/s · ` +
            `hb p50 ${latency?.sent_to_visible.p50_ms ?? '-'} p99 ${latency?.sent_to_visible.p99_ms ?? '-'} ms · ` +
            `monitor cpu ${cpu} % rss ${h.process.rss_mb} MB · failures ${c.connect_failures + c.heartbeats_failed + c.llm_failed}`,
        );
        last = { at: now, counters: c };
      }
    }
    checkAbort();
    hooks.progress?.('stopping llm_usage, waiting for every line in flight…');
    if (!(await fleet.stopLlm(30_000)))
      note('some bot processes did not settle their llm_usage lines within 30 s; counts may be short');
    const windowEnd = performance.now();
    const [latency, healthEnd] = await Promise.all([
      requestControl<RegistryLatency>(control, 'GET', '/latency'),
      requestControl<HealthBody>(control, 'GET', '/health'),
    ]);
    const llmCounters = fleet.counters();

    // ---- the monitor's view ----
    hooks.progress?.('flushing the monitor and checking its database and registry…');
    const { flushed } = await requestControl<{ flushed: boolean }>(admin, 'POST', '/flush', 60_000);
    if (!flushed) note('the monitor answered /flush with flushed=false: it could not commit everything in time');
    const since = new Date(startedAt.getTime() - 2_000).toISOString();
    const landed = (
      db
        .prepare(`SELECT count(*) AS n FROM llm_usage WHERE ts >= ? AND channel >= ? AND channel < ?`)
        .get(since, `${prefix}_`, `${prefix}\``) as { n: number }
    ).n;
    const statusRows = (
      db
        .prepare('SELECT count(*) AS n FROM bot_status WHERE channel >= ? AND channel < ?')
        .get(`${prefix}_`, `${prefix}\``) as { n: number }
    ).n;
    const events = db
      .prepare(
        `SELECT channel, to_status, reason FROM bot_events WHERE channel >= ? AND channel < ? AND to_status <> 'online'`,
      )
      .all(`${prefix}_`, `${prefix}\``) as { channel: string; to_status: string; reason: string }[];
    const live = ourBots(await requestControl<BotSnapshot[]>(control, 'GET', '/status', 30_000), prefix);

    // ---- end: unregister, exit ----
    hooks.progress?.('unregistering the bots…');
    const generatorPids = fleet.pids;
    const failedBots = new Set(await fleet.end());
    const final = fleet.counters();
    fleet = null;

    // ---- verdict ----
    const excluded = (channel: string) => failedBots.has(Number(channel.slice(prefix.length + 1)));
    const bad = new Map<string, string>();
    const eventCounts = { stale: 0, dead: 0, offline: 0 };
    for (const e of events) {
      if (excluded(e.channel)) continue;
      if (e.to_status in eventCounts) eventCounts[e.to_status as keyof typeof eventCounts]++;
      if (!bad.has(e.channel)) bad.set(e.channel, `${e.channel} → ${e.to_status} (${e.reason})`);
    }
    let notOnline = 0;
    for (let i = 0; i < options.bots; i++) {
      if (failedBots.has(i)) continue;
      const channel = `${prefix}_${i}`;
      const status = live.get(channel)?.status;
      if (status === 'online') continue;
      notOnline++;
      if (!bad.has(channel)) bad.set(channel, `${channel} is ${status ?? 'not in the registry'} at the end`);
    }
    const expected = llmCounters.llm_written;
    const windowS = (windowEnd - windowStart) / 1000;
    const report: LoadtestReport = {
      ok: true,
      problems: [],
      prefix,
      bots: options.bots,
      mode: options.mode,
      processes,
      pid_per_bot: options.pidPerBot,
      duration_s: options.durationS,
      heartbeat_interval_s: options.heartbeatS,
      llm_rate: options.llmRate,
      connect_s: connectS,
      bots_registered: final.registered,
      messages_sent: final.lines_written,
      heartbeats_sent: final.heartbeats_written,
      heartbeats_failed: final.heartbeats_failed,
      llm_rows_expected: expected,
      llm_rows_landed: landed,
      lost: expected - landed,
      llm_rows_failed: llmCounters.llm_failed,
      llm_rate_achieved: round1((llmCounters.llm_written - countersStart.llm_written) / windowS),
      false_stale: bad.size,
      false_stale_detail: {
        stale_events: eventCounts.stale,
        dead_events: eventCounts.dead,
        offline_events: eventCounts.offline,
        not_online_at_end: notOnline,
        excluded_bots: failedBots.size,
        examples: [...bad.values()].slice(0, 5),
      },
      latency_ms: latencyMs(latency.sent_to_visible),
      read_to_visible_ms: latencyMs(latency.read_to_visible),
      connect_failures: final.connect_failures - countersStart.connect_failures,
      connect_retries_at_start: countersStart.connect_failures,
      reconnects: final.reconnects,
      oneshot_connections: final.oneshot_connections,
      monitor: {
        pid: healthEnd.process.pid,
        cpu_pct: cpuPct(healthStart.process, healthEnd.process, windowEnd - windowStart),
        rss_mb: healthEnd.process.rss_mb,
        rss_peak_mb: Math.max(rssPeak, healthEnd.process.rss_mb),
        refused_connections: healthEnd.ingest.connections_refused - healthStart.ingest.connections_refused,
        dropped: totalDropped(healthEnd) - totalDropped(healthStart),
        flushed,
      },
      generator: {
        pids: generatorPids,
        cpu_pct: round1(((llmCounters.cpu_ms - countersStart.cpu_ms) / (windowEnd - windowStart)) * 100),
      },
      started_at: startedAt.toISOString(),
    };
    if (healthEnd.process.pid !== health0.process.pid)
      report.problems.push(
        `the monitor restarted during the run (pid ${health0.process.pid} → ${healthEnd.process.pid})`,
      );
    if (report.lost > 0)
      report.problems.push(`${report.lost} llm_usage rows written by the bots never landed in ${dbPath}`);
    if (report.lost < 0)
      report.problems.push(`${-report.lost} more llm_usage rows landed than the bots wrote: rows counted twice`);
    if (statusRows === 0 && final.registered > 0)
      report.problems.push(
        `${dbPath} has no bot_status row of this run: is it the database this monitor writes (--db)?`,
      );
    if (report.false_stale > 0)
      report.problems.push(
        `${report.false_stale} heartbeating bots were not kept online (e.g. ${report.false_stale_detail.examples[0]})`,
      );
    if (final.registered < options.bots)
      report.problems.push(
        `only ${final.registered} of ${options.bots} bots could register (${final.connect_failures} connect failures)`,
      );
    if (!flushed) report.problems.push('the monitor could not flush everything it received');
    report.ok = report.problems.length === 0;
    return report;
  } catch (err) {
    if (signal?.aborted && !(err instanceof LoadtestInterrupted))
      throw new LoadtestInterrupted('interrupted: every bot process was ended');
    throw err;
  } finally {
    db.close();
    if (fleet) await fleet.end(3_000); // on error or interruption: unregister what we can, kill the rest by pid
    if (placeholders) await placeholders.kill();
  }
}

/** GET /settings; null (noted) from a monitor too old to have it. */
async function monitorSettings(control: string, note: (m: string) => void): Promise<MonitorSettings | null> {
  try {
    return await requestControl<MonitorSettings>(control, 'GET', '/settings');
  } catch (err) {
    if (err instanceof ControlUnavailableError) throw err;
    note(
      `the monitor does not answer GET /settings (${(err as Error).message}): using the database from --db or the config`,
    );
    return null;
  }
}

/** Refuses, with what to change, a run the monitor's own settings would fail whatever it does. */
function checkSettings(
  options: LoadtestOptions,
  persistent: number,
  processes: number,
  settings: MonitorSettings,
  health: HealthBody,
): void {
  if (settings.auth_required && !options.token)
    throw new LoadtestLimitError('the monitor requires a token from every bot (authTokensFile): pass --token');
  // Heartbeats come every interval ±10 %: at the stale window or beyond, bots go stale by design.
  if (options.heartbeatS * 1100 >= settings.stale_after_ms)
    throw new LoadtestLimitError(
      `--heartbeat-interval ${options.heartbeatS} s (±10 %) reaches the monitor's stale window (${settings.stale_after_ms / 1000} s, staleAfterMs): every bot would go stale; use a shorter interval`,
    );
  const open = health.ingest.connections_open;
  const connections = persistent + open + (options.mode === 'persistent' ? 0 : ONESHOT_CONCURRENCY * processes);
  if (connections > settings.max_connections)
    throw new LoadtestLimitError(
      `the monitor accepts at most ${settings.max_connections.toLocaleString('en')} connections (limits.maxConnections), but this run needs up to ${connections.toLocaleString('en')} next to the ${open.toLocaleString('en')} it has: run fewer bots or raise the limit`,
    );
  if (options.bots > settings.max_bots)
    throw new LoadtestLimitError(
      `the monitor holds at most ${settings.max_bots.toLocaleString('en')} bots (limits.maxBots): run fewer bots or raise the limit`,
    );
}

/** The run's bots in a /status answer, by channel. */
function ourBots(bots: BotSnapshot[], prefix: string): Map<string, BotSnapshot> {
  const start = `${prefix}_`;
  return new Map(bots.filter((b) => b.channel.startsWith(start)).map((b) => [b.channel, b]));
}

function latencyMs(s: RegistryLatency['sent_to_visible']): LatencyMs {
  return { p50: s.p50_ms, p95: s.p95_ms, p99: s.p99_ms, max: s.max_ms, count: s.count };
}

/** CPU of the monitor process (all threads) between two /health answers, % of one core. */
function cpuPct(a: ProcessStats, b: ProcessStats, wallMs: number): number {
  const used = b.cpu_user_ms + b.cpu_system_ms - (a.cpu_user_ms + a.cpu_system_ms);
  return round1((used / Math.max(1, wallMs)) * 100);
}

function totalDropped(h: HealthBody): number {
  return h.actors.reduce((n, a) => n + a.dropped, 0);
}

/**
 * Refuses, with what to change, a fleet the OS will not allow: the bot processes' and the
 * monitor's open-file limits, the system-wide file table, and (with --pid-per-bot) the process limit.
 */
function checkLimits(
  options: LoadtestOptions,
  persistent: number,
  processes: number,
  health: HealthBody,
  note: (m: string) => void,
): void {
  const monitorPid = health.process.pid;
  const monitor = openFilesLimit(monitorPid);
  if (monitor) {
    const open = health.ingest.connections_open;
    const needed =
      persistent + open + (options.mode === 'persistent' ? 0 : ONESHOT_CONCURRENCY * processes) + MONITOR_FD_OVERHEAD;
    if (needed > monitor.soft) {
      throw new LoadtestLimitError(
        `the monitor (pid ${monitorPid}) may open at most ${monitor.soft} files (its soft limit), but ${persistent.toLocaleString('en')} persistent bots ` +
          `(next to the ${open.toLocaleString('en')} connections it already has) need about ${needed.toLocaleString('en')}: ` +
          `raise it (LimitNOFILE= in the systemd unit, or ulimit -n before kissmon start; hard limit ${monitor.hard === Number.MAX_SAFE_INTEGER ? 'unlimited' : monitor.hard}) or run fewer bots`,
      );
    }
  } else {
    note(`cannot read /proc/${monitorPid}/limits: not checking the monitor's open-file limit`);
  }
  const own = openFilesLimit();
  if (own) {
    const perChild = Math.ceil(persistent / processes) + ONESHOT_CONCURRENCY + FD_OVERHEAD;
    if (perChild > own.hard) {
      const needed = Math.ceil(persistent / Math.max(1, own.hard - ONESHOT_CONCURRENCY - FD_OVERHEAD));
      throw new LoadtestLimitError(
        `${persistent.toLocaleString('en')} persistent bots over ${processes} processes need about ${perChild.toLocaleString('en')} open files per process, ` +
          `but this user's hard limit is ${own.hard} (ulimit -Hn): use --processes ${needed} or more`,
      );
    }
  }
  try {
    const [allocated, , max] = readFileSync('/proc/sys/fs/file-nr', 'utf8').trim().split(/\s+/).map(Number);
    const needed = 2 * persistent + 2 * ONESHOT_CONCURRENCY * processes;
    if (allocated + needed > max)
      throw new LoadtestLimitError(
        `the system-wide file table (fs.file-max ${max}, ${allocated} in use) has no room for ${needed.toLocaleString('en')} more socket ends`,
      );
  } catch (err) {
    if (err instanceof LoadtestLimitError) throw err;
  }
  if (options.pidPerBot) {
    const procs = /^Max processes\s+(\S+)/m.exec(safeRead('/proc/self/limits'))?.[1];
    const pidMax = Number(safeRead('/proc/sys/kernel/pid_max').trim()) || Infinity;
    const limit = Math.min(procs && procs !== 'unlimited' ? Number(procs) : Infinity, pidMax);
    let running = 0;
    try {
      running = readdirSync('/proc').filter((name) => /^\d+$/.test(name)).length;
    } catch {
      // no /proc: the limit check below is all we have
    }
    if (running + options.bots + processes + 100 > limit) {
      throw new LoadtestLimitError(
        `--pid-per-bot needs ${options.bots.toLocaleString('en')} more processes next to the ${running.toLocaleString('en')} running, but at most ${limit} may exist (ulimit -u / kernel.pid_max)`,
      );
    }
  }
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
