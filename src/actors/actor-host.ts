// Worker-side bootstrap shared by every actor: the start-up handshake with the supervisor, the
// comlink control plane, re-wiring of peer ports, and the common health fields.
//
//   supervisor ──init{config, control port, link ports}──▶ actor starts ──ready──▶ supervisor
//   supervisor ──link{peer, port}──▶ actor.attach(peer, port)     (a peer was restarted)
//   supervisor ──ping──▶ bootstrap ──pong──▶ supervisor           (liveness, every pingIntervalMs)
//
// The ping is answered here, on the worker's own port and not through comlink: it proves that this
// thread's event loop turns, and a hung actor leaves nothing pending behind on the supervisor's side.
// Why these raw messages, comlink and Links all exist: docs/ARCHITECTURE.md, "Three messaging mechanisms".
import { parentPort, type MessagePort } from 'node:worker_threads';
import * as Comlink from 'comlink';
import { nodeEndpoint } from './comlink-endpoint.js';
import type { MonitorConfig } from '../config.js';
import { createLogger, type LogChannel, type Logger } from '../log.js';
import { heapLimitMb, heapUsedMb, loopLagMeter, type ActorHealth } from './health.js';

export type ActorName = 'registry' | 'db' | 'sampler' | 'alerter';
/** The main thread's end of the data plane (socket ingest, supervisor health rows). */
export type PeerName = ActorName | 'ingest';

export type SupervisorToActor =
  | {
      type: 'init';
      name: ActorName;
      config: MonitorConfig;
      incarnation: number;
      control: MessagePort;
      log: LogChannel;
      links: Partial<Record<PeerName, MessagePort>>;
    }
  | { type: 'link'; peer: PeerName; port: MessagePort }
  | { type: 'ping' };

export type ActorToSupervisor = { type: 'ready' } | { type: 'init_failed'; error: string } | { type: 'pong' };

export interface ActorContext {
  config: MonitorConfig;
  log: Logger;
  /** 1 for the first start, +1 per restart. */
  incarnation: number;
}

export type ActorStats = Pick<ActorHealth, 'processed' | 'queue_depth' | 'dropped' | 'detail'>;

export interface ActorInstance<Extra extends object = object> {
  attach(peer: PeerName, port: MessagePort): void;
  stats(): ActorStats;
  /** Make everything held durable (or handed on); resolves when done. */
  flush(): Promise<void>;
  /** Flush and release resources; the supervisor terminates the thread afterwards. */
  shutdown(): Promise<void>;
  /** Actor-specific control-plane calls (snapshot, …). */
  control?: Extra;
}

export interface ActorControl {
  health(): ActorHealth;
  flush(): Promise<void>;
  shutdown(): Promise<void>;
  /** Fault injection (only with --enable-faults): throws on the actor's thread, which kills it. */
  crash(): void;
  /** Fault injection (only with --enable-faults): the actor's thread spins forever in a synchronous loop. */
  hang(): void;
}

export function runActor<Extra extends object>(
  start: (ctx: ActorContext) => Promise<ActorInstance<Extra>> | ActorInstance<Extra>,
): void {
  if (!parentPort) throw new Error('actors run in worker threads');
  const supervisor = parentPort;
  // A failed start rejects unhandled on purpose: the thread dies and the supervisor sees it exit.
  supervisor.once(
    'message',
    (init: SupervisorToActor) =>
      void (async () => {
        if (init.type !== 'init') return;
        const log = createLogger(init.config.logLevel, { thread: init.name }, init.log);
        const startedAt = Date.now();
        const lag = loopLagMeter();
        let instance: ActorInstance<Extra>;
        try {
          instance = await start({ config: init.config, log, incarnation: init.incarnation });
        } catch (err) {
          log.error({ err }, 'actor failed to start');
          supervisor.postMessage({
            type: 'init_failed',
            error: String((err as Error)?.stack ?? err),
          } satisfies ActorToSupervisor);
          return;
        }
        const faultsAllowed = () => {
          if (!init.config.faults.enabled)
            throw new Error('fault injection is off (start the monitor with --enable-faults)');
        };
        const control: ActorControl & Extra = {
          ...(instance.control ?? ({} as Extra)),
          health(): ActorHealth {
            const loop = lag.read();
            return {
              actor: init.name,
              ...instance.stats(),
              loop_lag_p99_ms: loop.p99,
              loop_lag_max_ms: loop.max,
              heap_used_mb: heapUsedMb(),
              heap_limit_mb: heapLimitMb(),
              uptime_s: Math.round((Date.now() - startedAt) / 1000),
            };
          },
          flush: () => instance.flush(),
          shutdown: () => instance.shutdown(),
          crash(): void {
            faultsAllowed();
            log.warn('fault injection: crashing this actor');
            setImmediate(() => {
              throw new Error(`fault injection: ${init.name} crashed on request`);
            });
          },
          hang(): void {
            faultsAllowed();
            log.warn('fault injection: this actor hangs now (endless loop)');
            // After this call has been answered; only terminate() gets the thread out of here.
            setImmediate(() => {
              for (;;);
            });
          },
        };

        Comlink.expose(control, nodeEndpoint(init.control));
        for (const [peer, port] of Object.entries(init.links)) if (port) instance.attach(peer as PeerName, port);
        supervisor.on('message', (msg: SupervisorToActor) => {
          switch (msg.type) {
            case 'ping':
              supervisor.postMessage({ type: 'pong' } satisfies ActorToSupervisor);
              return;
            case 'link':
              instance.attach(msg.peer, msg.port);
              return;
            default:
              log.warn({ type: msg.type }, 'unexpected message from the supervisor: ignored');
          }
        });
        supervisor.postMessage({ type: 'ready' } satisfies ActorToSupervisor);
      })(),
  );
}
