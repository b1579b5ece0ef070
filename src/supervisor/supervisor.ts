// Supervisor: starts the actors, wires their MessagePorts, pings them, restarts one that crashed
// or hangs (backoff + OTP-style intensity limit) and asks each for its health. Runs on the main thread.
//
//   child lifecycle:
//     starting ──ready──▶ running ──exit/error (crashed, out_of_memory)──────────────▶ down ──backoff──▶ starting
//        │                   └──no pong for hungAfterMs (hung)──▶ terminate() ──exit──▶  ▲
//        │                                                            └─not done in terminateTimeoutMs:
//        │                                                              thread abandoned ┘
//        ├─ init_failed / exit before ready: first start fatal, a restart counts as a failed restart
//        └─ a restart not ready in startTimeoutMs (start_timeout): terminated like a hung actor
//     more than `intensity` restarts in `periodMs` → onFatal → exit non-zero
//
// Wiring happens only between ready actors: whenever one becomes ready, every link whose two ends
// are ready but were wired for other incarnations gets a fresh MessageChannel. The main thread's
// end of a link is a Link object that re-sends its unacknowledged batches on attach, which is
// how messages in flight to a crashed actor are re-delivered.
import { performance } from 'node:perf_hooks';
import { MessageChannel, Worker, type MessagePort, type ResourceLimits } from 'node:worker_threads';
import * as Comlink from 'comlink';
import { nodeEndpoint } from '../actors/comlink-endpoint.js';
import type { ActorControl, ActorName, ActorToSupervisor, PeerName, SupervisorToActor } from '../actors/actor-host.js';
import type { RestartReason, SupervisedHealth } from '../actors/health.js';
import { Link } from '../actors/link.js';
import type { MonitorConfig } from '../config.js';
import { MonitorError } from '../errors.js';
import { openLogChannel, type Logger } from '../log.js';
import type { AlerterControlExtra } from '../actors/alerter-messages.js';
import type { DbWriterControlExtra } from '../actors/db-writer-messages.js';
import type { RegistryControlExtra } from '../actors/registry-messages.js';

/** How long a registry restart waits for the writer to commit the dead registry's rows. */
const REGISTRY_REBUILD_FLUSH_MS = 2_000;
/** What a control call that bounds its own wait is given on top, to answer. */
const CONTROL_SLACK_MS = 2_000;

export interface ChildSpec {
  id: ActorName;
  file: URL;
  /** permanent: always restarted (the only kind the monitor uses today). */
  restart: 'permanent';
  shutdownMs: number;
  /** V8 heap limits of the actor's thread; past them the thread dies with ERR_WORKER_OUT_OF_MEMORY and is restarted. */
  resourceLimits?: ResourceLimits;
}

/** A ping tick this much later than planned means the main thread itself did not run (paused, starved). */
const MAIN_STALL_MS = 1_000;
/** An actor counts as answering while its last pong is at most one ping interval plus this old. */
const ANSWER_SLACK_MS = 1_000;

/** Which peers talk directly. 'ingest' is the main thread. */
const LINKS: readonly [PeerName, PeerName][] = [
  ['ingest', 'registry'],
  ['ingest', 'db'],
  ['registry', 'db'],
  ['registry', 'sampler'],
  ['sampler', 'db'],
  ['ingest', 'alerter'],
  ['registry', 'alerter'],
  ['db', 'alerter'],
];

export type ControlOf<Id extends ActorName> = ActorControl &
  (Id extends 'registry'
    ? RegistryControlExtra
    : Id extends 'db'
      ? DbWriterControlExtra
      : Id extends 'alerter'
        ? AlerterControlExtra
        : object);

interface Child {
  spec: ChildSpec;
  worker: Worker | null;
  control: Comlink.Remote<ActorControl> | null;
  /** Kept so comlink's endpoint is not collected while calls are pending (comlink#692). */
  controlPort: MessagePort | null;
  incarnation: number;
  ready: boolean;
  /** Became ready at least once: from then on a crash means restart, before it means escalate. */
  started: boolean;
  restartTimes: number[];
  consecutiveFailures: number;
  restarts: number;
  lastExit: string | null;
  /** performance.now() of the current incarnation's last pong (or of its becoming ready). */
  lastAnswerAt: number | null;
  /** performance.now() when the actor last stopped being ready; null while it is up. */
  downSince: number | null;
  /** Set when the supervisor itself takes the incarnation down (hung, start_timeout). */
  downReason: RestartReason | null;
  lastRestartReason: RestartReason | null;
  startTimer: NodeJS.Timeout | null;
  /** Control calls that outlived their time limit and have not settled: health does not ask meanwhile. */
  stuckCalls: number;
  /** Settles the control calls in flight with null when the incarnation goes down. */
  inFlight: Set<() => void>;
}

/** Whether an actor proves liveness now, and if not, why (for the systemd watchdog). */
export interface Liveness {
  alive: boolean;
  /** e.g. ["sampler: no answer for 3.2 s"]. */
  failing: string[];
}

/** What health says about an actor that is not up. */
function stateOf(child: Child): 'not answering' | 'terminating' | 'starting' | 'down' {
  if (child.ready) return 'not answering';
  if (!child.worker) return 'down';
  return child.downReason ? 'terminating' : 'starting';
}

/** An actor restarted more often than the intensity limit allows: the monitor gives up (exit 1). */
export class SupervisorError extends MonitorError {
  /** The actor the supervisor gave up on. */
  readonly actor: ActorName;
  constructor(message: string, actor: ActorName) {
    super('ERR_SUPERVISOR_INTENSITY', message);
    this.actor = actor;
  }
}

export interface SupervisorOptions {
  config: MonitorConfig;
  log: Logger;
  /** The main thread's ends: the ingest server sends through these. */
  mainLinks: Partial<Record<ActorName, Link<unknown, never>>>;
  /** Called once when restarts exceed the intensity limit or the first start fails. */
  onFatal: (error: Error) => void;
  specs?: ChildSpec[];
}

export function defaultSpecs(config: MonitorConfig): ChildSpec[] {
  const file = (name: string) => new URL(`../../workers/${name}.js`, import.meta.url);
  const { shutdownMs, maxOldGenerationSizeMb } = config.supervisor;
  const spec = (id: ActorName, name: string): ChildSpec => ({
    id,
    file: file(name),
    restart: 'permanent',
    shutdownMs,
    resourceLimits: { maxOldGenerationSizeMb: maxOldGenerationSizeMb[id] },
  });
  // Order matters: the writer runs migrations before the registry rebuilds from bot_status and
  // before the alerter opens its tables.
  return [
    spec('db', 'db-writer'),
    spec('alerter', 'alerter'),
    spec('registry', 'registry'),
    spec('sampler', 'sampler'),
  ];
}

export class Supervisor {
  readonly #config: MonitorConfig;
  readonly #log: Logger;
  readonly #mainLinks: SupervisorOptions['mainLinks'];
  readonly #onFatal: SupervisorOptions['onFatal'];
  readonly #children = new Map<ActorName, Child>();
  readonly #wired = new Map<string, string>();
  /** Threads that did not stop on terminate() (stuck in a system call); Node joins them at exit. */
  readonly #abandoned = new Set<Worker>();
  #pingTimer: NodeJS.Timeout | null = null;
  #lastPingRound = performance.now();
  #stopping = false;
  #fatal = false;

  constructor(options: SupervisorOptions) {
    this.#config = options.config;
    this.#log = options.log.child({ component: 'supervisor' });
    this.#mainLinks = options.mainLinks;
    this.#onFatal = options.onFatal;
    for (const spec of options.specs ?? defaultSpecs(options.config)) {
      if (this.#children.has(spec.id)) throw new TypeError(`specs: duplicate child id ${spec.id}`);
      if (!(spec.shutdownMs > 0)) throw new TypeError(`specs.${spec.id}.shutdownMs must be a positive number`);
      this.#children.set(spec.id, {
        spec,
        worker: null,
        control: null,
        controlPort: null,
        incarnation: 0,
        ready: false,
        started: false,
        restartTimes: [],
        consecutiveFailures: 0,
        restarts: 0,
        lastExit: null,
        lastAnswerAt: null,
        downSince: null,
        downReason: null,
        lastRestartReason: null,
        startTimer: null,
        stuckCalls: 0,
        inFlight: new Set(),
      });
    }
  }

  /** Starts every child in order (each is pinged once it is ready); rejects if one fails during its first start-up. */
  async start(): Promise<void> {
    this.#lastPingRound = performance.now();
    this.#pingTimer = setInterval(() => this.#pingRound(), this.#config.supervisor.pingIntervalMs);
    this.#pingTimer.unref();
    for (const child of this.#children.values()) {
      if (child.spec.id === 'registry') await this.#awaitSpoolReplay();
      await this.#startChild(child);
    }
  }

  /**
   * The registry rebuilds from bot_status: a spool waiting for replay must land first, or the
   * rebuild sees the state from before it. Bounded (startTimeoutMs / 2): a database locked at
   * start must not keep the bots unserved; the registry then starts anyway and a warn says so.
   */
  async #awaitSpoolReplay(): Promise<void> {
    const boundMs = this.#config.supervisor.startTimeoutMs / 2;
    const started = performance.now();
    // The writer bounds the wait itself: a call cut short here would count as stuck until it settles.
    const done = await this.call('db', (c) => c.spoolReplayed(boundMs), boundMs + CONTROL_SLACK_MS);
    const waitedMs = Math.round(performance.now() - started);
    if (done) {
      if (waitedMs > 100) this.#log.info({ waited_ms: waitedMs }, 'spool replayed; starting the registry');
    } else {
      this.#log.warn(
        { waited_ms: waitedMs, bound_ms: boundMs },
        'spool not replayed in time (database locked, or the writer down): the registry starts anyway and may rebuild from bot_status older than the spool',
      );
    }
  }

  /**
   * Every actor proves liveness: it is up and answered a ping within the last ping interval (+1 s),
   * or it is being restarted and went down less than startTimeoutMs + backoffMaxMs + terminateTimeoutMs
   * ago (one full restart attempt). A hung actor fails this until the supervisor restarts it.
   */
  liveness(): Liveness {
    const now = performance.now();
    const { startTimeoutMs, backoffMaxMs, terminateTimeoutMs } = this.#config.supervisor;
    const failing: string[] = [];
    for (const child of this.#children.values()) {
      if (child.ready) {
        if (!this.#answering(child, now))
          failing.push(`${child.spec.id}: no answer for ${((now - child.lastAnswerAt!) / 1000).toFixed(1)} s`);
      } else {
        const downMs = now - (child.downSince ?? now);
        if (downMs > startTimeoutMs + backoffMaxMs + terminateTimeoutMs)
          failing.push(`${child.spec.id}: down for ${(downMs / 1000).toFixed(1)} s`);
      }
    }
    return { alive: failing.length === 0, failing };
  }

  /** Up, and its last pong is at most one ping interval (+1 s slack) old. */
  #answering(child: Child, now = performance.now()): boolean {
    return (
      child.ready &&
      child.lastAnswerAt !== null &&
      now - child.lastAnswerAt <= this.#config.supervisor.pingIntervalMs + ANSWER_SLACK_MS
    );
  }

  /** True once the restart intensity was exceeded: no actor is restarted any more. */
  get gaveUp(): boolean {
    return this.#fatal;
  }

  /** The comlink proxy of a running actor, or null while it is down or restarting. */
  control<Id extends ActorName>(id: Id): Comlink.Remote<ControlOf<Id>> | null {
    const child = this.#children.get(id);
    return child?.ready ? (child.control as unknown as Comlink.Remote<ControlOf<Id>>) : null;
  }

  /**
   * Calls `fn` on an actor's control proxy with a time limit; null when it is down, goes down
   * meanwhile (at once, not at the limit), or does not answer in time. A call that outlives its
   * limit is counted in `stuckCalls` until it settles.
   */
  async call<Id extends ActorName, T>(
    id: Id,
    fn: (c: Comlink.Remote<ControlOf<Id>>) => Promise<T>,
    timeoutMs = 2_000,
  ): Promise<T | null> {
    const child = this.#children.get(id);
    const control = this.control(id);
    if (!child || !control) return null;
    let timer: NodeJS.Timeout | undefined;
    let wentDown!: () => void;
    const cutShort = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), timeoutMs);
      wentDown = () => resolve(null);
    });
    child.inFlight.add(wentDown);
    const incarnation = child.incarnation;
    let settled = false;
    const answer = fn(control).finally(() => {
      settled = true;
    });
    try {
      return await Promise.race([answer, cutShort]);
    } catch (err) {
      this.#log.warn({ actor: id, err }, 'control call failed');
      return null;
    } finally {
      clearTimeout(timer);
      child.inFlight.delete(wentDown);
      if (!settled && child.ready && child.incarnation === incarnation) {
        child.stuckCalls++;
        const release = () => {
          if (child.incarnation === incarnation) child.stuckCalls--;
        };
        answer.then(release, release);
      }
    }
  }

  /**
   * Health of every actor; one that is down, restarting or not answering is reported `up: false`
   * at once. An actor that missed its last ping, or still owes the answer to an earlier call past
   * its limit, is not asked: health never waits on a hung actor, and calls to it do not pile up.
   */
  async health(): Promise<SupervisedHealth[]> {
    return Promise.all(
      [...this.#children.values()].map(async (child): Promise<SupervisedHealth> => {
        const now = performance.now();
        const lastAnswerMsAgo = child.lastAnswerAt === null ? null : Math.round(now - child.lastAnswerAt);
        const ask = this.#answering(child, now) && child.stuckCalls === 0;
        const health = ask ? await this.call(child.spec.id, (c) => c.health()) : null;
        const supervised = {
          restarts: child.restarts,
          last_answer_ms_ago: lastAnswerMsAgo,
          last_restart_reason: child.lastRestartReason,
        };
        if (health) return { ...health, ...supervised, up: true };
        return {
          actor: child.spec.id,
          processed: 0,
          queue_depth: 0,
          dropped: 0,
          loop_lag_p99_ms: 0,
          loop_lag_max_ms: 0,
          heap_used_mb: 0,
          heap_limit_mb: 0,
          uptime_s: 0,
          ...supervised,
          up: false,
          detail: { state: stateOf(child), last_exit: child.lastExit },
        };
      }),
    );
  }

  /** Fault injection: asks an actor to crash or hang (it refuses unless faults are enabled). */
  async fault(id: ActorName, kind: 'crash' | 'hang'): Promise<void> {
    const control = this.control(id);
    if (!control) throw new Error(`actor ${id} is not running`);
    await (kind === 'crash' ? control.crash() : control.hang());
  }

  /**
   * Graceful stop in dependency order: producers first (sampler, registry), the writer last, so
   * every row they flush is committed or spooled. Each actor gets shutdownMs (less if `deadlineAt`,
   * ms since the epoch, comes first), then is terminated. The writer closes its database inside
   * shutdown(), so a writer that answered is never terminated inside a native SQLite call (that
   * aborts the process); only one that did not answer is.
   */
  async stop(deadlineAt = Infinity): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    // The alerter after the registry (its last transitions), before the writer (it has its own connection).
    for (const id of ['sampler', 'registry', 'alerter', 'db'] as ActorName[]) {
      const child = this.#children.get(id);
      const worker = child?.worker;
      if (!child || !worker) continue;
      const timeoutMs = Math.max(100, Math.min(child.spec.shutdownMs, deadlineAt - Date.now()));
      const done = await this.call(id, (c) => c.shutdown().then(() => true), timeoutMs);
      if (!done)
        this.#log.warn({ actor: id, shutdown_ms: timeoutMs }, 'actor did not shut down in time: terminating it');
      child.ready = false;
      if (!(await this.#terminate(worker))) {
        this.#log.error(
          { actor: id, terminate_timeout_ms: this.#config.supervisor.terminateTimeoutMs },
          'actor thread did not stop (stuck in native code?): leaving it behind',
        );
        this.#abandon(worker);
      }
      child.worker = null;
    }
    if (this.#pingTimer) clearInterval(this.#pingTimer);
    for (const link of Object.values(this.#mainLinks)) link?.detach();
  }

  /**
   * One liveness round: declare hung whoever has not answered for hungAfterMs, ping the others.
   * While stopping, actors are still pinged (health stays true) but none is restarted.
   */
  #pingRound(): void {
    if (this.#fatal) return;
    const now = performance.now();
    const { pingIntervalMs, hungAfterMs } = this.#config.supervisor;
    // The main thread itself did not run (SIGSTOP, starvation): pongs may still sit in its queue,
    // so the stall is not counted against the actors.
    const stalledMs = now - this.#lastPingRound - pingIntervalMs;
    this.#lastPingRound = now;
    for (const child of this.#children.values()) {
      if (!child.ready || !child.worker || child.lastAnswerAt === null) continue;
      if (stalledMs > MAIN_STALL_MS) child.lastAnswerAt = Math.min(now, child.lastAnswerAt + stalledMs);
      const silentMs = now - child.lastAnswerAt;
      if (silentMs > hungAfterMs && !this.#stopping) {
        child.lastExit = `hung: no answer for ${Math.round(silentMs)} ms`;
        this.#log.error(
          {
            actor: child.spec.id,
            incarnation: child.incarnation,
            silent_ms: Math.round(silentMs),
            hung_after_ms: hungAfterMs,
          },
          'actor not answering: terminating it (hung)',
        );
        this.#takeDown(child, 'hung');
      } else {
        child.worker.postMessage({ type: 'ping' } satisfies SupervisorToActor);
      }
    }
  }

  /**
   * Terminates the current incarnation; its exit then restarts it like a crash, counted with
   * `reason`. If the thread does not stop (stuck in native code) it is abandoned and the restart
   * goes ahead anyway.
   */
  #takeDown(child: Child, reason: RestartReason): void {
    const worker = child.worker;
    if (!worker) return;
    child.ready = false;
    child.downReason = reason;
    child.downSince ??= performance.now();
    void this.#terminate(worker).then((stopped) => {
      if (stopped || child.worker !== worker) return;
      this.#log.error(
        {
          actor: child.spec.id,
          incarnation: child.incarnation,
          terminate_timeout_ms: this.#config.supervisor.terminateTimeoutMs,
        },
        'actor thread did not stop (stuck in native code?): abandoning it and starting a new one',
      );
      this.#abandon(worker);
      this.#down(child, worker, `${reason}, thread abandoned`);
    });
  }

  #abandon(worker: Worker): void {
    worker.unref();
    this.#abandoned.add(worker);
    worker.once('exit', () => this.#abandoned.delete(worker));
  }

  /** Threads left behind because terminate() did not stop them; while any is left, the process cannot exit normally. */
  get abandonedThreads(): number {
    return this.#abandoned.size;
  }

  /** worker.terminate() within terminateTimeoutMs: true once the thread has stopped, false if it did not in time. */
  async #terminate(worker: Worker): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const tooLong = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), this.#config.supervisor.terminateTimeoutMs);
    });
    try {
      return await Promise.race([worker.terminate().then(() => true), tooLong]);
    } finally {
      clearTimeout(timer);
    }
  }

  #startChild(child: Child): Promise<void> {
    const { spec } = child;
    child.incarnation++;
    child.ready = false;
    const worker = new Worker(spec.file, { name: `kissmon-${spec.id}`, resourceLimits: spec.resourceLimits });
    const { port1, port2 } = new MessageChannel();
    child.worker = worker;
    child.controlPort = port1;
    child.control = Comlink.wrap<ActorControl>(nodeEndpoint(port1));
    const incarnation = child.incarnation;
    const log = openLogChannel();
    const init: SupervisorToActor = {
      type: 'init',
      name: spec.id,
      config: this.#config,
      incarnation,
      control: port2,
      log,
      links: {},
    };
    worker.postMessage(init, [port2, log.port]);
    if (child.started) {
      // A restart that never becomes ready would leave the actor down for good.
      const { startTimeoutMs } = this.#config.supervisor;
      child.startTimer = setTimeout(() => {
        if (child.worker !== worker || child.ready) return;
        child.lastExit = `not ready within ${startTimeoutMs} ms`;
        this.#log.error(
          { actor: spec.id, incarnation, start_timeout_ms: startTimeoutMs },
          'restarted actor did not become ready: terminating it',
        );
        this.#takeDown(child, 'start_timeout');
      }, startTimeoutMs);
      child.startTimer.unref();
    }

    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const bootFailed = (why: string) => {
        if (settled) return;
        settled = true;
        reject(new Error(`actor ${spec.id} failed during start-up: ${why}`));
      };
      worker.on('message', (msg: ActorToSupervisor) => {
        if (child.worker !== worker) return; // an abandoned incarnation
        switch (msg.type) {
          case 'pong':
            child.lastAnswerAt = performance.now();
            return;
          case 'ready':
            if (settled) return;
            settled = true;
            clearTimeout(child.startTimer ?? undefined);
            child.ready = true;
            child.started = true;
            child.lastAnswerAt = performance.now();
            child.downSince = null;
            this.#log.info({ actor: spec.id, incarnation, thread_id: worker.threadId }, 'actor ready');
            this.#rewire();
            resolve();
            return;
          case 'init_failed':
            child.lastExit = msg.error.split('\n')[0];
            bootFailed(msg.error);
            void worker.terminate();
            return;
          default:
            this.#log.warn(
              { actor: spec.id, type: (msg as { type?: unknown }).type },
              'unexpected message from an actor: ignored',
            );
        }
      });
      worker.on('error', (err: Error & { code?: string }) => {
        if (child.worker !== worker) return;
        if (err?.code === 'ERR_WORKER_OUT_OF_MEMORY') child.downReason ??= 'out_of_memory';
        child.lastExit = String(err?.message ?? err);
        this.#log.error({ actor: spec.id, incarnation, err }, 'actor crashed');
      });
      worker.on('exit', (code) => {
        bootFailed(`exited with code ${code} before it was ready`);
        this.#down(child, worker, `exit code ${code}`);
      });
    });
  }

  /** The incarnation `worker` is gone (exited, or abandoned): release it and restart unless stopping. */
  #down(child: Child, worker: Worker, why: string): void {
    if (child.worker !== worker) return; // an older incarnation we already replaced
    clearTimeout(child.startTimer ?? undefined);
    child.startTimer = null;
    child.ready = false;
    child.worker = null;
    child.control = null;
    child.controlPort?.close();
    child.controlPort = null;
    child.lastAnswerAt = null;
    child.downSince ??= performance.now();
    child.stuckCalls = 0;
    for (const settle of child.inFlight) settle();
    child.inFlight.clear();
    const reason = child.downReason ?? 'crashed';
    child.downReason = null;
    if (this.#stopping || !child.started) return;
    child.lastExit ??= why;
    const byUs = reason === 'hung' || reason === 'start_timeout';
    this.#log.error(
      { actor: child.spec.id, incarnation: child.incarnation, reason, exit: why },
      byUs ? 'actor terminated by the supervisor' : 'actor exited unexpectedly',
    );
    this.#scheduleRestart(child, reason);
  }

  #scheduleRestart(child: Child, reason: RestartReason): void {
    if (this.#fatal) return;
    child.lastRestartReason = reason;
    const now = Date.now();
    const { intensity, periodMs, backoffInitialMs, backoffMaxMs } = this.#config.supervisor;
    child.restartTimes = child.restartTimes.filter((t) => now - t < periodMs);
    child.restartTimes.push(now);
    if (child.restartTimes.length > intensity) {
      this.#fatal = true;
      const error = new SupervisorError(
        `actor ${child.spec.id} restarted more than ${intensity} times in ${periodMs / 1000} s; giving up so the service manager can restart the monitor`,
        child.spec.id,
      );
      this.#log.fatal(
        { actor: child.spec.id, reason, restarts: child.restarts, intensity, period_ms: periodMs },
        error.message,
      );
      this.#onFatal(error);
      return;
    }
    const delay = Math.min(backoffMaxMs, backoffInitialMs * 2 ** child.consecutiveFailures);
    child.consecutiveFailures++;
    child.restarts++;
    this.#log.warn(
      { actor: child.spec.id, reason, restart_in_ms: delay, restarts: child.restarts },
      'restarting actor',
    );
    setTimeout(
      () =>
        void (async () => {
          if (this.#stopping || this.#fatal) return;
          // A restarted registry rebuilds from bot_status and skips re-sent ingest batches up to the
          // cursor stored with their rows: let the writer commit what the dead one sent first, so the
          // rebuild sees it. Only a saving: batches it applies again store nothing twice (the writer
          // skips 'caused' items by that cursor), so a locked database need not keep it down long.
          if (child.spec.id === 'registry') {
            await this.#awaitSpoolReplay();
            await this.call('db', (c) => c.flush(), REGISTRY_REBUILD_FLUSH_MS);
          }
          if (this.#stopping || this.#fatal) return;
          this.#startChild(child).then(
            () => {
              child.lastExit = null;
              // A child that stays up for a full period starts its backoff from scratch again.
              setTimeout(() => {
                if (child.ready) child.consecutiveFailures = 0;
              }, periodMs).unref();
            },
            // Its exit handler schedules the next attempt, which counts against the intensity limit.
            (err: Error) => this.#log.error({ actor: child.spec.id, err }, 'actor restart failed'),
          );
        })(),
      delay,
    ).unref();
  }

  /** Gives every link whose two ends are ready, but were wired for other incarnations, a new channel. */
  #rewire(): void {
    for (const [a, b] of LINKS) {
      const incarnations = `${this.#incarnationOf(a)}/${this.#incarnationOf(b)}`;
      if (incarnations.includes('-') || this.#wired.get(`${a}-${b}`) === incarnations) continue;
      const { port1, port2 } = new MessageChannel();
      this.#deliver(a, b, port1);
      this.#deliver(b, a, port2);
      this.#wired.set(`${a}-${b}`, incarnations);
    }
  }

  #incarnationOf(peer: PeerName): string {
    if (peer === 'ingest') return '0';
    const child = this.#children.get(peer);
    return child?.ready ? String(child.incarnation) : '-';
  }

  /** Hands `port` (its end of the link to `peer`) to `owner`. */
  #deliver(owner: PeerName, peer: PeerName, port: MessagePort): void {
    if (owner === 'ingest') {
      const link = this.#mainLinks[peer as ActorName];
      if (link) link.attach(port);
      else port.close();
      return;
    }
    const worker = this.#children.get(owner)?.worker;
    worker?.postMessage({ type: 'link', peer, port } satisfies SupervisorToActor, [port]);
  }
}
