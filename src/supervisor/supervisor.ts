// Supervisor: starts the actors, wires their MessagePorts, restarts a crashed one (backoff +
// OTP-style intensity limit) and asks each for its health. Runs on the main thread.
//
//   child lifecycle:  starting ──ready──▶ running ──exit/error──▶ down ──backoff──▶ starting
//                        │ init_failed / exit before ready                 │
//                        ▼                                                 ▼ more than `intensity`
//              (first start: fatal)                                      restarts in `periodMs`:
//                                                                        onFatal → exit non-zero
//
// Wiring happens only between ready actors: whenever one becomes ready, every link whose two ends
// are ready but were wired for other incarnations gets a fresh MessageChannel. The main thread's
// end of a link is a Link object that re-sends its unacknowledged batches on attach, which is
// how messages in flight to a crashed actor are re-delivered.
import { createRequire } from 'node:module';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import * as Comlink from 'comlink';
import type { ActorControl, ActorName, ActorToSupervisor, PeerName, SupervisorToActor } from '../actors/actor-host.js';
import type { SupervisedHealth } from '../actors/health.js';
import { Link } from '../actors/link.js';
import type { MonitorConfig } from '../config.js';
import { openLogChannel, type Logger } from '../log.js';
import type { DbWriterControlExtra } from '../../workers/db-writer-messages.js';
import type { RegistryControlExtra } from '../../workers/registry-messages.js';

/** How long a registry restart waits for the writer to commit the dead registry's rows. */
const REGISTRY_REBUILD_FLUSH_MS = 2_000;

const nodeEndpoint = createRequire(import.meta.url)('comlink/dist/umd/node-adapter.js') as (p: MessagePort) => Comlink.Endpoint;

export interface ChildSpec {
  id: ActorName;
  file: URL;
  /** permanent: always restarted (the only kind the monitor uses today). */
  restart: 'permanent';
  shutdownMs: number;
}

/** Which peers talk directly. 'ingest' is the main thread. */
const LINKS: readonly [PeerName, PeerName][] = [
  ['ingest', 'registry'],
  ['ingest', 'db'],
  ['registry', 'db'],
  ['registry', 'sampler'],
  ['sampler', 'db'],
];

export type ControlOf<Id extends ActorName> = ActorControl & (Id extends 'registry' ? RegistryControlExtra : Id extends 'db' ? DbWriterControlExtra : object);

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
}

export class SupervisorError extends Error {
  readonly code = 'ERR_SUPERVISOR_INTENSITY';
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
  const shutdownMs = config.supervisor.shutdownMs;
  // Order matters: the writer runs migrations before the registry rebuilds from bot_status.
  return [
    { id: 'db', file: file('db-writer'), restart: 'permanent', shutdownMs },
    { id: 'registry', file: file('registry'), restart: 'permanent', shutdownMs },
    { id: 'sampler', file: file('sampler'), restart: 'permanent', shutdownMs },
  ];
}

export class Supervisor {
  readonly #config: MonitorConfig;
  readonly #log: Logger;
  readonly #mainLinks: SupervisorOptions['mainLinks'];
  readonly #onFatal: SupervisorOptions['onFatal'];
  readonly #children = new Map<ActorName, Child>();
  readonly #wired = new Map<string, string>();
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
        spec, worker: null, control: null, controlPort: null, incarnation: 0, ready: false, started: false,
        restartTimes: [], consecutiveFailures: 0, restarts: 0, lastExit: null,
      });
    }
  }

  /** Starts every child in order; rejects if one fails during its first start-up. */
  async start(): Promise<void> {
    for (const child of this.#children.values()) await this.#startChild(child);
  }

  /** The comlink proxy of a running actor, or null while it is down or restarting. */
  control<Id extends ActorName>(id: Id): Comlink.Remote<ControlOf<Id>> | null {
    const child = this.#children.get(id);
    return child?.ready ? (child.control as unknown as Comlink.Remote<ControlOf<Id>>) : null;
  }

  /** Calls `fn` on an actor's control proxy with a time limit; null when down or not answering. */
  async call<Id extends ActorName, T>(id: Id, fn: (c: Comlink.Remote<ControlOf<Id>>) => Promise<T>, timeoutMs = 2_000): Promise<T | null> {
    const control = this.control(id);
    if (!control) return null;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), timeoutMs);
    });
    try {
      return await Promise.race([fn(control), timeout]);
    } catch (err) {
      this.#log.warn({ actor: id, err }, 'control call failed');
      return null;
    } finally {
      clearTimeout(timer);
    }
  }


  /** Health of every actor; one that is down or does not answer in time is reported as such. */
  async health(): Promise<SupervisedHealth[]> {
    return Promise.all(
      [...this.#children.values()].map(async (child) => {
        const health = await this.call(child.spec.id, (c) => c.health());
        if (health) return { ...health, restarts: child.restarts, up: true };
        return {
          actor: child.spec.id, processed: 0, queue_depth: 0, dropped: 0, loop_lag_p99_ms: 0, loop_lag_max_ms: 0,
          heap_used_mb: 0, uptime_s: 0, restarts: child.restarts, up: false,
          detail: { state: child.ready ? 'not answering' : 'down', last_exit: child.lastExit },
        };
      }),
    );
  }

  /** Fault injection: asks an actor to crash itself (it refuses unless faults are enabled). */
  async crash(id: ActorName): Promise<void> {
    const control = this.control(id);
    if (!control) throw new Error(`actor ${id} is not running`);
    await control.crash();
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
    for (const id of ['sampler', 'registry', 'db'] as ActorName[]) {
      const child = this.#children.get(id);
      if (!child?.worker) continue;
      const timeoutMs = Math.max(100, Math.min(child.spec.shutdownMs, deadlineAt - Date.now()));
      const done = await this.call(id, (c) => c.shutdown().then(() => true), timeoutMs);
      if (!done) this.#log.warn({ actor: id, shutdown_ms: timeoutMs }, 'actor did not shut down in time: terminating it');
      child.ready = false;
      await child.worker.terminate();
      child.worker = null;
    }
    for (const link of Object.values(this.#mainLinks)) link?.detach();
  }

  #startChild(child: Child): Promise<void> {
    const { spec } = child;
    child.incarnation++;
    child.ready = false;
    const worker = new Worker(spec.file, { name: `kissmon-${spec.id}` });
    const { port1, port2 } = new MessageChannel();
    child.worker = worker;
    child.controlPort = port1;
    child.control = Comlink.wrap<ActorControl>(nodeEndpoint(port1));
    const incarnation = child.incarnation;
    const log = openLogChannel();
    const init: SupervisorToActor = { type: 'init', name: spec.id, config: this.#config, incarnation, control: port2, log, links: {} };
    worker.postMessage(init, [port2, log.port]);

    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const bootFailed = (why: string) => {
        if (settled) return;
        settled = true;
        reject(new Error(`actor ${spec.id} failed during start-up: ${why}`));
      };
      worker.on('message', (msg: ActorToSupervisor) => {
        if (msg.type === 'ready' && !settled) {
          settled = true;
          child.ready = true;
          child.started = true;
          this.#log.info({ actor: spec.id, incarnation, thread_id: worker.threadId }, 'actor ready');
          this.#rewire();
          resolve();
        } else if (msg.type === 'init_failed') {
          child.lastExit = msg.error.split('\n')[0];
          bootFailed(msg.error);
          void worker.terminate();
        }
      });
      worker.on('error', (err) => {
        child.lastExit = String(err?.message ?? err);
        this.#log.error({ actor: spec.id, incarnation, err }, 'actor crashed');
      });
      worker.on('exit', (code) => {
        bootFailed(`exited with code ${code} before it was ready`);
        if (child.worker !== worker) return; // an older incarnation we already replaced
        child.ready = false;
        child.worker = null;
        child.control = null;
        child.controlPort?.close();
        child.controlPort = null;
        if (this.#stopping || !child.started) return;
        child.lastExit ??= `exit code ${code}`;
        this.#log.error({ actor: spec.id, incarnation, exit_code: code }, 'actor exited unexpectedly');
        this.#scheduleRestart(child);
      });
    });
  }

  #scheduleRestart(child: Child): void {
    if (this.#fatal) return;
    const now = Date.now();
    const { intensity, periodMs, backoffInitialMs, backoffMaxMs } = this.#config.supervisor;
    child.restartTimes = child.restartTimes.filter((t) => now - t < periodMs);
    child.restartTimes.push(now);
    if (child.restartTimes.length > intensity) {
      this.#fatal = true;
      const error = new SupervisorError(`actor ${child.spec.id} restarted more than ${intensity} times in ${periodMs / 1000} s; giving up so the service manager can restart the monitor`);
      this.#log.fatal({ actor: child.spec.id, restarts: child.restarts, intensity, period_ms: periodMs }, error.message);
      this.#onFatal(error);
      return;
    }
    const delay = Math.min(backoffMaxMs, backoffInitialMs * 2 ** child.consecutiveFailures);
    child.consecutiveFailures++;
    child.restarts++;
    this.#log.warn({ actor: child.spec.id, restart_in_ms: delay, restarts: child.restarts }, 'restarting actor');
    setTimeout(async () => {
      if (this.#stopping || this.#fatal) return;
      // A restarted registry rebuilds from bot_status and skips re-sent ingest batches up to the
      // cursor stored with their rows: let the writer commit what the dead one sent first, so the
      // rebuild sees it (bounded: a locked database must not keep the registry down).
      if (child.spec.id === 'registry') await this.call('db', (c) => c.flush(), REGISTRY_REBUILD_FLUSH_MS);
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
    }, delay).unref();
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
