// The running monitor: wires the ingest socket, the supervisor and its actors, the control API,
// the read pool, health reporting, and graceful shutdown. `kissmon start` is a thin CLI over this.
import { resolve } from 'node:path';
import { unlinkSync } from 'node:fs';
import type { ActorName } from './actors/actor-host.js';
import { heapLimitMb, heapUsedMb, loopLagMeter, type SupervisedHealth } from './actors/health.js';
import { Link } from './actors/link.js';
import { Type } from '@sinclair/typebox';
import type { MonitorConfig } from './config.js';
import { describeBackend, parseBackend } from './db/backend.js';
import { ReadPool } from './db/read-pool.js';
import { alertStorePathFor, spoolPathFor, spoolUnacknowledged } from './db/spool.js';
import { botRoutes } from './http/bot-routes.js';
import { settingsRoutes } from './http/settings-routes.js';
import { ControlServer, HttpError, METRICS_PATH, route, TextBody, type ControlRoute } from './http/control-server.js';
import type { DashboardServer } from './http/dashboard-server.js';
import { createMetrics } from './http/metrics.js';
import { llmRoutes, RECOMPUTE_TIMEOUT_MS } from './llm/routes.js';
import { logLinesDropped, type Logger } from './log.js';
import { TokenAuth } from './server/auth.js';
import { IngestServer } from './server/ingest-server.js';
import { Supervisor, SupervisorError } from './supervisor/supervisor.js';
import { loadExpected, withMissing } from './alerts/expected.js';
import { MonitorAlerts, type MonitorCondition } from './alerts/monitor-alerts.js';
import { alertRoutes } from './alerts/routes.js';
import { HostPresence } from './hosts/presence.js';
import { hostRoutes } from './hosts/routes.js';
import { statusLine, SystemdNotifier } from './systemd.js';
import type { AlerterInput } from './actors/alerter-messages.js';
import type { WriteItem } from './actors/db-writer-messages.js';
import type { BotSignal, KnownConnections } from './actors/registry-messages.js';
import type { BotStatus } from './protocol/states.js';

/** The admin socket: the monitor's own user only, whatever group the other sockets have. */
const ADMIN_SOCKET_ACCESS = { mode: 0o600, group: null };

/** Actors a fault can be injected into. */
const FAULT_ACTORS = ['registry', 'db', 'sampler', 'alerter'] as const satisfies readonly ActorName[];

/** How often the main thread proves to the registry that ingest is running (see LiveClock). */
const PULSE_MS = 250;
/** How long start waits for PostgreSQL to take the host lock before it starts anyway (and spools). */
const HOST_CLAIM_WAIT_MS = 3_000;
/** What a control call that may wait on a receiver is given on top of its delivery timeout. */
const CONTROL_SLACK_MS = 2_000;
/** How often the monitor's own alert conditions (MonitorActorDown, MonitorIngestPaused) are judged. */
const MONITOR_ALERTS_MS = 1_000;
/** A monitor exiting because an actor is beyond saving gives the alerter this long to deliver that. */
const LAST_WORDS_MS = 3_000;

/** The monitor process as a whole (all threads): for load tests and dashboards. */
export interface ProcessStats {
  pid: number;
  rss_mb: number;
  /** CPU time since start, all threads, ms. */
  cpu_user_ms: number;
  cpu_system_ms: number;
  uptime_s: number;
}

function processStats(): ProcessStats {
  const cpu = process.cpuUsage();
  return {
    pid: process.pid,
    rss_mb: Math.round(process.memoryUsage.rss() / 1048576),
    cpu_user_ms: Math.round(cpu.user / 1000),
    cpu_system_ms: Math.round(cpu.system / 1000),
    uptime_s: Math.round(process.uptime()),
  };
}

export type HealthReport = SupervisedHealth[];

export class Monitor {
  readonly config: MonitorConfig;
  readonly #log: Logger;
  readonly #registryLink: Link<BotSignal>;
  readonly #writerLink: Link<WriteItem>;
  /** The monitor's own alerts (MonitorActorDown, MonitorIngestPaused) to the alerter. */
  readonly #alerterLink: Link<AlerterInput>;
  readonly #monitorAlerts: MonitorAlerts;
  /** This host's heartbeat in `hosts`, and (PostgreSQL) leader election and MonitorHostDown. */
  readonly #presence: HostPresence;
  /** The expected fleet (`expected`), re-read on SIGHUP. */
  #expected: string[];
  /** The actor the supervisor gave up on (restart intensity exceeded), once it has. */
  #gaveUpOn: string | null = null;
  /** Since when (ms since the epoch) ingest reading has been paused by backpressure, or null. */
  #backpressuredSince: number | null = null;
  readonly #supervisor: Supervisor;
  readonly #ingest: IngestServer;
  readonly #auth: TokenAuth | null;
  readonly #control: ControlServer;
  readonly #readPool: ReadPool;
  /** The HTTP front (--http-port); null when off. */
  readonly #dashboard: DashboardServer | null;
  /** sd_notify when run as a systemd `Type=notify` unit, from READY=1 on; null otherwise. */
  #systemd: SystemdNotifier | null = null;
  readonly #timers: NodeJS.Timeout[] = [];
  /** Kept through the shutdown drain: without pulses the registry would log the drain as a monitor pause. */
  #pulseTimer: NodeJS.Timeout | null = null;
  readonly #mainLag = loopLagMeter();
  readonly #startedAt = Date.now();
  #lastHealth: HealthReport = [];
  #stopping: Promise<void> | null = null;
  /** Shutdown: the writer spools what it has not committed by then (ms since the epoch). */
  #spoolAt: number | null = null;
  #hurried = false;
  #wakeHurried!: () => void;
  readonly #hurriedSignal = new Promise<void>((resolve) => {
    this.#wakeHurried = resolve;
  });
  /** Resolves with the exit code once the monitor has stopped (signal, fatal supervisor error). */
  readonly exited: Promise<number>;
  #resolveExit!: (code: number) => void;

  private constructor(config: MonitorConfig, log: Logger, Dashboard: typeof DashboardServer | null) {
    this.config = config;
    this.#log = log;
    this.exited = new Promise((resolve) => {
      this.#resolveExit = resolve;
    });
    const maxPending = config.limits.maxPendingPerLink;
    this.#registryLink = new Link('ingest-to-registry', {
      maxPending,
      onSignal: (body) => this.#ingest.markKnown(body as KnownConnections),
    });
    this.#writerLink = new Link('ingest-to-db', { maxPending });
    this.#alerterLink = new Link('ingest-to-alerter', { maxPending: 10_000 });
    this.#supervisor = new Supervisor({
      config,
      log,
      mainLinks: { registry: this.#registryLink, db: this.#writerLink, alerter: this.#alerterLink },
      onFatal: (err) => {
        if (err instanceof SupervisorError) this.#gaveUpOn = err.actor;
        void this.stop(1);
      },
    });
    this.#monitorAlerts = new MonitorAlerts((input) => this.#alerterLink.send(input));
    this.#presence = new HostPresence({
      host: config.hostName,
      staleAfterMs: config.hostStaleAfterMs,
      postgresUrl: postgresUrlOf(config.dbPath),
      botCounts: async () => {
        const registry = await this.#supervisor.call('registry', (c) => c.health());
        if (!registry) return null;
        const { online, stale, dead, offline } = registry.detail as Record<BotStatus, number>;
        return { online, stale, dead, offline };
      },
      write: (beat) => this.#supervisor.call('db', (c) => c.hostBeat(beat)),
      // Its own MonitorAlerts: #judgeMonitorAlerts resolves whatever its list does not hold.
      alerts: new MonitorAlerts((input) => this.#alerterLink.send(input)),
      onHostTaken: (err) => {
        log.fatal({ err, host: config.hostName }, 'host taken by another monitor: stopping, not writing as it');
        void this.stop(1);
      },
      log,
    });
    this.#expected = loadExpected(config.expected);
    this.#auth = config.authTokensFile ? new TokenAuth(config.authTokensFile) : null;
    this.#ingest = new IngestServer({
      config,
      registry: this.#registryLink,
      writer: this.#writerLink,
      log,
      auth: this.#auth,
    });
    this.#readPool = new ReadPool(config.dbPath);
    const routes = this.#routes();
    this.#control = new ControlServer(routes, log);
    const { http } = config;
    this.#dashboard =
      Dashboard === null || http.port === null
        ? null
        : new Dashboard({
            routes,
            feed: {
              changes: (reset) => this.#supervisor.call('registry', (c) => c.feedChanges(reset)),
              snapshot: () => this.#supervisor.call('registry', (c) => c.feedSnapshot()),
            },
            host: http.host,
            port: http.port,
            tokenFile: http.tokenFile,
            feedIntervalMs: http.feedIntervalMs,
            log,
          });
  }

  /** Starts everything; rejects (after cleaning up) if the socket is taken or an actor cannot start. */
  static async start(config: MonitorConfig, log: Logger): Promise<Monitor> {
    // The HTTP front's packages (fastify, @fastify/static, ajv: ~1.7 MB of the main thread's bundle) load only when it is on.
    const Dashboard = config.http.port === null ? null : (await import('./http/dashboard-server.js')).DashboardServer;
    const monitor = new Monitor(config, log, Dashboard);
    // PostgreSQL: one live monitor per --host-name (its lock), before anything is written as it.
    await monitor.#presence.claim(HOST_CLAIM_WAIT_MS);
    // Listen first: it fails fast when another monitor owns the socket, and whatever bots send
    // while the actors boot waits in the links and is delivered once they are ready.
    await monitor.#ingest.listen();
    try {
      await monitor.#supervisor.start();
      await monitor.#control.listen('read', {
        path: config.controlSocketPath,
        access: { mode: config.socketMode, group: config.socketGroup },
      });
      await monitor.#control.listen('admin', { path: config.adminSocketPath, access: ADMIN_SOCKET_ACCESS });
      if (config.metricsPort !== null)
        await monitor.#control.listen('metrics', { port: config.metricsPort, host: '127.0.0.1' });
      await monitor.#dashboard?.listen();
    } catch (err) {
      // Whatever bots sent meanwhile is drained to the actors that did start, then everything closes.
      await monitor.#ingest.drain();
      await monitor.#teardown();
      throw err;
    }
    if (monitor.#stopping) return monitor; // an actor gave up during start-up: stop() is under way
    // No pulse while reading is paused for backpressure: heartbeats wait unread, and the registry
    // must not count that time against the bots.
    monitor.#pulseTimer = setInterval(() => {
      if (!monitor.#ingest.backpressured) monitor.#registryLink.signal({ pulse: Date.now() });
    }, PULSE_MS);
    monitor.#timers.push(setInterval(() => void monitor.#reportHealth(), config.healthIntervalMs));
    monitor.#timers.push(setInterval(() => monitor.#judgeMonitorAlerts(), MONITOR_ALERTS_MS));
    monitor.#presence.start();
    log.info(
      {
        socket: config.socketPath,
        db: describeBackend(parseBackend(config.dbPath)),
        // Local files, absolute: on PostgreSQL they default to the working directory, not beside a database file.
        spool: resolve(spoolPathFor(config)),
        ...(parseBackend(config.dbPath).kind === 'postgres' ? { alert_store: resolve(alertStorePathFor(config)) } : {}),
        host: config.hostName,
        control: config.controlSocketPath,
        admin: config.adminSocketPath,
        stale_after_s: config.staleAfterMs / 1000,
        sample_interval_s: config.sampleIntervalMs / 1000,
      },
      'kissbot-monitor started',
    );
    await monitor.#notifyReady();
    return monitor;
  }

  /** READY=1, then WATCHDOG=1 while every actor proves liveness (during shutdown: while the main loop turns). */
  async #notifyReady(): Promise<void> {
    // Opened only now: a start that fails must not leave an open socket keeping the process alive.
    const systemd = (this.#systemd = SystemdNotifier.fromEnv(process.env, this.#log));
    if (!systemd) return;
    systemd.ready(statusLine(await this.health()));
    const { hungAfterMs, backoffMaxMs } = this.config.supervisor;
    if (systemd.watchdogMs !== null && systemd.watchdogMs < hungAfterMs + backoffMaxMs) {
      this.#log.warn(
        { watchdog_ms: systemd.watchdogMs, hung_after_ms: hungAfterMs, backoff_max_ms: backoffMaxMs },
        'WatchdogSec is shorter than hungAfterMs + backoffMaxMs: a hung actor may get the whole monitor restarted by systemd before the supervisor restarts the actor',
      );
    }
    // Shutdown has its own deadline; withholding the watchdog then would only turn it into a kill.
    systemd.startWatchdog(() => (this.#stopping ? { alive: true, failing: [] } : this.#supervisor.liveness()));
  }

  /** Actor threads that could not be terminated (stuck in native code) and were left behind. */
  get abandonedThreads(): number {
    return this.#supervisor.abandonedThreads;
  }

  /** SIGHUP: re-read the auth tokens file; connections stay open. */
  reloadAuth(): void {
    if (!this.#auth) return;
    try {
      const entries = this.#auth.reload();
      this.#log.info({ file: this.#auth.path, entries }, 'auth tokens reloaded');
    } catch (err) {
      this.#log.error({ err }, 'auth tokens reload failed; keeping the previous tokens');
    }
  }

  /** SIGHUP: re-read the expected fleet file; a bad file keeps the previous list. */
  reloadExpected(): void {
    if (Array.isArray(this.config.expected)) return;
    try {
      this.#expected = loadExpected(this.config.expected);
      void this.#supervisor.call('alerter', (c) => c.setExpected(this.#expected));
      this.#log.info({ file: this.config.expected, channels: this.#expected.length }, 'expected fleet reloaded');
    } catch (err) {
      this.#log.error({ err }, 'expected fleet reload failed; keeping the previous list');
    }
  }

  /** MonitorActorDown / MonitorIngestPaused: what holds now, sent to the alerter when it changes. */
  #judgeMonitorAlerts(): void {
    const now = Date.now();
    const holding: MonitorCondition[] = [];
    for (const failing of this.#supervisor.liveness().failing) {
      // Only an actor down past a whole restart attempt: a late pong on a busy box ("no answer for
      // 2.1 s") is the supervisor's to judge (it restarts a hung actor), not a page.
      if (!/^\w+: down for /.test(failing)) continue;
      const actor = failing.slice(0, failing.indexOf(':'));
      if (actor !== this.#gaveUpOn)
        holding.push({ alertname: 'MonitorActorDown', labels: { actor }, summary: `monitor actor ${failing}` });
    }
    if (this.#gaveUpOn !== null) {
      holding.push({
        alertname: 'MonitorActorDown',
        labels: { actor: this.#gaveUpOn },
        summary: `monitor actor ${this.#gaveUpOn} restarted past the intensity limit: the monitor exits for the service manager to restart it`,
      });
    }
    const pausedAfter = this.config.alerts.ingestPausedAfterMs;
    if (this.#ingest.backpressured) this.#backpressuredSince ??= now;
    else this.#backpressuredSince = null;
    if (this.#backpressuredSince !== null && now - this.#backpressuredSince >= pausedAfter) {
      holding.push({
        alertname: 'MonitorIngestPaused',
        labels: { cause: 'backpressure' },
        summary: `reading from bots paused by backpressure for ${Math.round((now - this.#backpressuredSince) / 1000)} s`,
      });
    }
    const writer = this.#lastHealth.find((h) => h.actor === 'db')?.detail;
    if (typeof writer?.waiting === 'string' && Number(writer.waiting_s) * 1000 >= pausedAfter) {
      holding.push({
        alertname: 'MonitorIngestPaused',
        labels: { cause: `database_${writer.waiting}` },
        summary: `database writer waiting (${writer.waiting}) for ${writer.waiting_s} s: rows are held and spooled`,
      });
    } else if (typeof writer?.blocked_s === 'number' && writer.blocked_s * 1000 >= pausedAfter) {
      holding.push({
        alertname: 'MonitorIngestPaused',
        labels: { cause: 'database_locked' },
        summary: `every commit has found the database locked for ${writer.blocked_s} s: rows are held and spooled`,
      });
    }
    this.#monitorAlerts.update(holding, now);
  }

  /** Everything received so far, committed: resolves true once it is in the database. */
  async flush(timeoutMs = 10_000): Promise<boolean> {
    const ingestDone = (
      await Promise.all([this.#registryLink.drained(timeoutMs), this.#writerLink.drained(timeoutMs)])
    ).every(Boolean);
    const registryDone = await this.#supervisor.call('registry', (c) => c.flush().then(() => true), timeoutMs);
    const writerDone = await this.#supervisor.call('db', (c) => c.flush().then(() => true), timeoutMs);
    return ingestDone && registryDone === true && writerDone === true;
  }

  /**
   * Graceful shutdown within config.shutdownDeadlineMs, whatever the database does. A second call
   * (second signal) takes the fast path: spool now and exit.
   *
   *   t0 ─ drain the socket ─ everything reaches the registry and the writer ─ stop actors ─ exit ≤ deadline
   *                                        spoolAt: the writer spools what it could not commit ┘
   *
   * Each ack on the data links means committed or spooled, so once the links are drained nothing is
   * held but in the spool. What a link still holds when its peer did not answer is spooled here.
   */
  stop(exitCode = 0): Promise<void> {
    if (this.#stopping) {
      this.#hurry();
      return this.#stopping;
    }
    const deadline = this.config.shutdownDeadlineMs;
    const stopStartedAt = Date.now();
    const deadlineAt = stopStartedAt + deadline;
    // Kept after the spool for the acks, stopping the actors and closing the sockets.
    const reserve = Math.min(5_000, deadline / 4);
    this.#spoolAt = deadlineAt - reserve;
    this.#stopping = (async () => {
      this.#log.info({ exit_code: exitCode, deadline_ms: deadline }, 'shutting down: draining connections');
      this.#systemd?.stopping();
      for (const timer of this.#timers) clearInterval(timer);
      const presenceStopped = this.#presence.stop(); // no heartbeat into a writer that is stopping
      this.#tellWriterSpoolAt();
      if (this.#gaveUpOn !== null) await this.#lastWords();
      const until = (at: number) => Math.max(0, at - Date.now());
      // An actor past the restart limit will not come back: waiting for it only delays the exit.
      const untilActors = (at: number) => (this.#supervisor.gaveUp ? 0 : until(at));
      const linksDueAt = deadlineAt - reserve / 2;
      await this.#unlessHurried(this.#ingest.drain(), until(this.#spoolAt!));
      // No heartbeat can arrive after the drain: from here no pulse, so the rest of the shutdown
      // (a locked database can make it long) is not counted against the bots.
      clearInterval(this.#pulseTimer ?? undefined);
      const flushed =
        (await this.#registryLink.drained(untilActors(linksDueAt))) &&
        (await this.#supervisor.call(
          'registry',
          (c) => c.flush().then(() => true),
          Math.max(1, untilActors(linksDueAt)),
        )) === true &&
        (await this.#writerLink.drained(untilActors(linksDueAt)));
      if (!flushed)
        this.#log.error(
          { pending_registry: this.#registryLink.pending, pending_writer: this.#writerLink.pending },
          'shutdown: the actors did not take everything in time; spooling what is left here',
        );
      if (!this.#hurried && Date.now() < this.#spoolAt!)
        await this.#unlessHurried(this.#reportHealth(), until(this.#spoolAt!));
      await this.#writerLink.drained(Math.min(500, untilActors(linksDueAt)));
      await this.#unlessHurried(presenceStopped, until(linksDueAt));
      await this.#supervisor.stop(deadlineAt - 500);
      const spooled = spoolUnacknowledged(this.#writerLink, this.config, this.#log);
      // Bot messages the registry never acknowledged: it did not answer, so they became no row.
      const lostSignals = this.#registryLink.pending;
      if (lostSignals > 0)
        this.#log.error(
          { signals_lost: lostSignals },
          'shutdown: register/heartbeat/unregister messages the registry never handled',
        );
      await this.#teardown();
      this.#log.info(
        {
          ingest: this.#ingest.stats(),
          stop_ms: Date.now() - stopStartedAt,
          main_spooled_rows: spooled.spooled,
          rows_lost: spooled.lost,
        },
        'stopped',
      );
      this.#resolveExit(exitCode);
    })();
    return this.#stopping;
  }

  /** The supervisor gave up: MonitorActorDown goes out now, not after groupWaitMs (bounded; the alerter may be the one gone). */
  async #lastWords(): Promise<void> {
    this.#judgeMonitorAlerts();
    if (!(await this.#alerterLink.drained(LAST_WORDS_MS / 3))) return;
    await this.#supervisor.call('alerter', (c) => c.deliverNow(LAST_WORDS_MS), LAST_WORDS_MS + 500);
  }

  /** Second signal: the writer spools at once, and waits that can be cut short are. */
  #hurry(): void {
    if (this.#hurried) return;
    this.#hurried = true;
    this.#log.warn('second signal: spooling what is not committed and exiting now');
    this.#spoolAt = Date.now();
    this.#tellWriterSpoolAt();
    this.#wakeHurried();
  }

  #tellWriterSpoolAt(): void {
    const at = this.#spoolAt;
    if (at !== null) void this.#supervisor.call('db', (c) => c.spoolAfter(at), 1_000);
  }

  /** Waits for `work`, at most `ms`, less if a second signal comes (work goes on in the background). */
  #unlessHurried(work: Promise<unknown>, ms: number): Promise<unknown> {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([work, this.#hurriedSignal, new Promise((r) => (timer = setTimeout(r, ms)))]).finally(() =>
      clearTimeout(timer),
    );
  }

  async #teardown(): Promise<void> {
    await this.#presence.stop();
    await this.#supervisor.stop();
    await this.#control.close();
    await this.#dashboard?.close();
    await this.#readPool.close();
    this.#systemd?.close();
    for (const path of [this.config.socketPath, this.config.controlSocketPath, this.config.adminSocketPath]) {
      try {
        unlinkSync(path);
      } catch {
        // not there
      }
    }
  }

  async health(): Promise<HealthReport> {
    const actors = await this.#supervisor.health();
    const lag = this.#mainLag.read();
    const counters = this.#ingest.stats();
    const links = this.#linkStats();
    const ingest: SupervisedHealth = {
      actor: 'ingest',
      processed: counters.lines,
      queue_depth: links.registry.pending + links.db.pending,
      dropped: counters.dropped_overflow,
      loop_lag_p99_ms: lag.p99,
      loop_lag_max_ms: lag.max,
      heap_used_mb: heapUsedMb(),
      heap_limit_mb: heapLimitMb(),
      uptime_s: Math.round((Date.now() - this.#startedAt) / 1000),
      restarts: 0,
      up: true,
      last_answer_ms_ago: null,
      last_restart_reason: null,
      detail: {
        connections_open: counters.connections_open,
        connections_total: counters.connections_total,
        rejected: Object.values(counters.rejected).reduce((a, b) => a + b, 0),
        throttled: counters.throttled,
        backpressure_ms: counters.backpressure_ms,
        line_too_long: counters.line_too_long,
        auth_failed: counters.auth_failed,
        idle_timeouts: counters.idle_timeouts,
        control_rejected: Object.values(this.#control.rejected()).reduce((a, b) => a + b, 0),
        log_lines_dropped: logLinesDropped(),
        rss_mb: Math.round(process.memoryUsage.rss() / 1048576),
        ...this.#presence.stats(),
      },
    };
    return [ingest, ...actors];
  }

  /** Every health interval: one log line per actor and a worker_health row each. */
  async #reportHealth(): Promise<void> {
    const report = await this.health();
    this.#lastHealth = report;
    this.#systemd?.status(statusLine(report));
    const at = Date.now();
    for (const h of report) {
      const level = !h.up || h.dropped > 0 || h.loop_lag_p99_ms > 1_000 ? 'warn' : 'info';
      this.#log[level](h, 'worker health');
      // worker_health has no columns for these: they go into detail_json.
      const supervision = {
        up: h.up,
        last_answer_ms_ago: h.last_answer_ms_ago,
        last_restart_reason: h.last_restart_reason,
      };
      this.#writerLink.send({ type: 'health', at, health: { ...h, detail: { ...h.detail, ...supervision } } });
    }
  }

  #linkStats() {
    return { registry: this.#registryLink.stats(), db: this.#writerLink.stats() };
  }

  #routes(): ControlRoute[] {
    const faults = this.config.faults.enabled;
    const none = Type.Object({}, { additionalProperties: false });
    const actorQuery = Type.Object(
      {
        actor: Type.Union(
          FAULT_ACTORS.map((a) => Type.Literal(a)),
          { must: FAULT_ACTORS.join(', ') },
        ),
      },
      { additionalProperties: false },
    );
    const metrics = createMetrics({
      ingest: () => this.#ingest.counters,
      links: () => this.#linkStats(),
      health: () => this.#lastHealth,
      controlRejected: () => this.#control.rejected(),
      logLinesDropped,
      alerter: () => this.#supervisor.call('alerter', (c) => c.metrics(), 1_000),
      bots: this.config.metricsPerBot ? () => this.#supervisor.call('registry', (c) => c.snapshot(), 2_000) : null,
    });
    const requireFaults = () => {
      if (!faults) throw new HttpError(403, 'fault injection is off (start the monitor with --enable-faults)');
    };
    return [
      route({
        method: 'GET',
        path: METRICS_PATH,
        admin: false,
        query: none,
        handler: async () => new TextBody(metrics.contentType, await metrics.metrics()),
      }),
      route({
        method: 'GET',
        path: '/status',
        admin: false,
        query: none,
        handler: async () => {
          const bots = await this.#supervisor.call('registry', (c) => c.snapshot());
          if (bots === null) throw new HttpError(503, 'registry is restarting; try again');
          return withMissing(bots, this.#expected);
        },
      }),
      route({
        method: 'GET',
        path: '/health',
        admin: false,
        query: none,
        handler: async () => ({
          actors: await this.health(),
          ingest: this.#ingest.stats(),
          control: { rejected: this.#control.rejected() },
          log: { lines_dropped: logLinesDropped() },
          process: processStats(),
        }),
      }),
      route({
        method: 'GET',
        path: '/latency',
        admin: false,
        query: none,
        handler: async () => this.#supervisor.call('registry', (c) => c.latency()),
      }),
      ...llmRoutes({
        config: this.config,
        usage: (options) => this.#readPool.usage(options),
        budgets: async () => (await this.#supervisor.call('db', (c) => c.budgets())) ?? null,
        recompute: (sinceMs) => this.#supervisor.call('db', (c) => c.recompute(sinceMs), RECOMPUTE_TIMEOUT_MS),
      }),
      ...alertRoutes((fn) =>
        this.#supervisor.call('alerter', fn, this.config.alerts.deliveryTimeoutMs + CONTROL_SLACK_MS),
      ),
      route({
        method: 'POST',
        path: '/flush',
        admin: true,
        query: none,
        handler: async () => ({ flushed: await this.flush() }),
      }),
      route({
        method: 'POST',
        path: '/latency/reset',
        admin: true,
        query: none,
        handler: async () => {
          await this.#supervisor.call('registry', (c) => c.resetLatency());
          return { reset: true };
        },
      }),
      ...botRoutes(this.#readPool, this.config.hostName),
      ...hostRoutes(this.#readPool, this.config),
      ...settingsRoutes(this.config),
      ...(
        [
          ['crash', 'crashed'],
          ['hang', 'hung'],
        ] as const
      ).map(([kind, answer]) =>
        route({
          method: 'POST',
          path: `/fault/${kind}`,
          admin: true,
          socketOnly: true,
          query: actorQuery,
          handler: async (q) => {
            requireFaults();
            await this.#supervisor.fault(q.actor, kind);
            return { [answer]: q.actor };
          },
        }),
      ),
      route({
        method: 'POST',
        path: '/fault/unhandled-rejection',
        admin: true,
        socketOnly: true,
        query: none,
        handler: async () => {
          requireFaults();
          this.#log.warn('fault injection: a promise rejection nobody handles, on the main thread');
          setImmediate(() => void Promise.reject(new Error('fault injection: unhandled rejection on the main thread')));
          return { rejected: true };
        },
      }),
    ];
  }
}

/** The store's URL when it is PostgreSQL (leader election), else null. */
function postgresUrlOf(dbPath: string): string | null {
  const backend = parseBackend(dbPath);
  return backend.kind === 'postgres' ? backend.url : null;
}
