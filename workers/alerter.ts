// Alerter actor: turns transitions, budget levels and the monitor's own trouble into alerts
// (src/alerts/engine.ts), delivers their notifications (src/alerts/delivery.ts) and mirrors its
// state into SQLite (src/alerts/store.ts).
//
// Inputs:  'registry' Link<_, AlerterInput>  bot transitions
//          'db'       Link<_, AlerterInput>  budget levels, digests
//          'ingest'   Link<_, AlerterInput>  monitor alerts from the main thread
//
//   batch ─▶ engine (memory) ─▶ ack once the store has committed what it changed
//   every TICK_MS: engine timers (group flushes, flap damping, missing) ─▶ notifications ─▶ queues
//                  store write (one transaction; locked database: kept and retried next tick)
//
// No sender waits on this: the links hold what is unacknowledged (bounded) and re-send it to a
// restarted alerter, which applies it over the state it reloads from the store.
import type { MessagePort } from 'node:worker_threads';
import { runActor, type ActorContext, type ActorInstance, type PeerName } from '../src/actors/actor-host.js';
import { Link } from '../src/actors/link.js';
import { Deliveries, type QueuedDelivery } from '../src/alerts/delivery.js';
import { AlertEngine } from '../src/alerts/engine.js';
import { loadExpected } from '../src/alerts/expected.js';
import type { Notification } from '../src/alerts/model.js';
import { AlertStore, type LocalTablesCreator, type StoreChanges } from '../src/alerts/store.js';
import { readRebuildState } from '../src/actors/rebuild-read.js';
import { isPostgresUrl } from '../src/config.js';
import { RateLimitedLog } from '../src/log.js';
import type { AlerterControlExtra, AlerterInput, NewSilence } from '../src/actors/alerter-messages.js';

/** Timer resolution of grouping, flap damping and missing channels; and how often the store is written. */
const TICK_MS = 100;
/** A database that could not be opened is tried again this often. */
const REOPEN_MS = 1_000;
/** Start-up waits this long for a locked database before it starts with an empty state (merged in later). */
const OPEN_BUSY_MS = 2_000;

class Alerter {
  readonly #ctx: ActorContext;
  readonly #createLocalTables: LocalTablesCreator | null;
  readonly #engine: AlertEngine;
  readonly #deliveries: Deliveries;
  readonly #links = new Map<PeerName, Link<never, AlerterInput>>();
  readonly #rateLog: RateLimitedLog;
  #store: AlertStore | null = null;
  #storeProblem: string | null = 'not opened yet';
  #nextOpenAt = 0;
  #loaded = false;
  /** Acks of applied batches, sent once the store holds their effect. */
  #pendingAcks: (() => void)[] = [];
  readonly #dirtyDeliveries = new Map<string, QueuedDelivery | null>();
  readonly #timer: NodeJS.Timeout;
  readonly #counters = {
    processed: 0,
    bad_inputs: 0,
    notifications: 0,
    store_writes: 0,
    store_busy: 0,
    store_errors: 0,
  };
  #stopping = false;

  constructor(ctx: ActorContext, createLocalTables: LocalTablesCreator | null) {
    this.#ctx = ctx;
    this.#createLocalTables = createLocalTables;
    this.#rateLog = new RateLimitedLog(ctx.log);
    const { alerts, staleAfterMs } = ctx.config;
    this.#engine = new AlertEngine(
      {
        groupWaitMs: alerts.groupWaitMs,
        groupIntervalMs: alerts.groupIntervalMs,
        repeatIntervalMs: alerts.repeatIntervalMs,
        flapWindowMs: alerts.flap.windowMs,
        flapMaxTransitions: alerts.flap.maxTransitions,
        missingGraceMs: alerts.missingGraceMs ?? staleAfterMs,
        staleAfterMs,
        host: ctx.config.hostName,
      },
      (n) => this.#notification(n),
    );
    this.#deliveries = new Deliveries(
      ctx.config,
      {
        attempted: (d, result, at) => {
          if (d.notification.type !== 'alerts') return;
          const outcome = {
            at: new Date(at).toISOString(),
            receiver: d.receiver,
            ok: result.ok,
            ...(result.error && !result.ok ? { error: result.error } : {}),
          };
          this.#engine.delivered(
            d.notification.alerts.map((a) => a.fingerprint),
            outcome,
          );
        },
        changed: (id, d) => this.#dirtyDeliveries.set(id, d),
      },
      ctx.log,
    );
    try {
      this.#engine.setExpected(loadExpected(ctx.config.expected), Date.now());
    } catch (err) {
      ctx.log.error({ err }, 'expected fleet not loaded: no BotMissing until it is fixed and the monitor gets SIGHUP');
    }
    this.#timer = setInterval(() => this.#tick(), TICK_MS);
  }

  /**
   * PostgreSQL as the store: the local alert file has no bot_status, so the channels the registry
   * knows (this host's rows of the shared bot_status) are read through the rebuild reader thread.
   * Until that answers no BotMissing fires; if the store cannot be read, the fleet counts as empty
   * (the grace of every expected channel runs from the alerter's start).
   */
  #loadPresentFromStore(): void {
    const { dbPath, hostName } = this.#ctx.config;
    readRebuildState(dbPath, hostName).then(
      ({ rows }) => {
        this.#engine.setPresent(rows.map((r) => r.channel));
        this.#ctx.log.info({ channels: rows.length }, 'known channels read from the store');
      },
      (err: unknown) => {
        this.#engine.setPresent([]);
        this.#ctx.log.warn({ err }, 'known channels not readable from the store: expected bots count as missing');
      },
    );
  }

  /** First open; a locked or unmigrated database is not fatal (retried every REOPEN_MS). */
  start(): void {
    this.#open(OPEN_BUSY_MS);
    if (this.#deliveries.receivers.length === 0)
      this.#ctx.log.info('no alert receivers configured: alerts are kept and shown (kissmon alerts), not sent');
  }

  #open(busyMs: number): void {
    const now = Date.now();
    this.#nextOpenAt = now + REOPEN_MS;
    let store: AlertStore;
    try {
      store = AlertStore.openFor(this.#ctx.config, busyMs, this.#createLocalTables);
    } catch (err) {
      const why = (err as Error).message;
      if (why !== this.#storeProblem)
        this.#ctx.log.warn({ why }, 'alert store not available yet: alerts are kept in memory, retrying');
      this.#storeProblem = why;
      return;
    }
    try {
      if (!this.#loaded) {
        const state = store.load();
        this.#engine.load(state.alerts, state.groups, state.silences, now);
        this.#deliveries.load(state.deliveries);
        if (isPostgresUrl(this.#ctx.config.dbPath)) this.#loadPresentFromStore();
        else this.#engine.setPresent(state.channels);
        // A new monitor process: the last one's Monitor* alerts are over (the main thread re-raises what still holds).
        if (this.#ctx.incarnation === 1) this.#engine.resolveMonitorAlerts(now);
        this.#loaded = true;
        this.#ctx.log.info(
          { alerts: state.alerts.length, silences: state.silences.length, queued: state.deliveries.length },
          'alert state loaded',
        );
      }
      store.setBusyTimeout(this.#ctx.config.writer.busyTimeoutMs);
    } catch (err) {
      store.close();
      this.#storeProblem = (err as Error).message;
      this.#ctx.log.warn({ err }, 'alert store could not be read yet: retrying');
      return;
    }
    this.#store = store;
    this.#storeProblem = null;
  }

  attach(peer: PeerName, port: MessagePort): void {
    let link = this.#links.get(peer);
    if (!link) {
      link = new Link<never, AlerterInput>(`alerter<-${peer}`, { onBatch: (items, ack) => this.#receive(items, ack) });
      this.#links.set(peer, link);
    }
    link.attach(port);
  }

  #receive(items: AlerterInput[], ack: () => void): void {
    const now = Date.now();
    for (const item of items) {
      this.#counters.processed++;
      try {
        this.#engine.apply(item, now);
      } catch (err) {
        this.#counters.bad_inputs++;
        this.#rateLog.warn(
          'bad_input',
          { err, type: (item as { type?: unknown })?.type },
          'alerter skipped an input it cannot use',
        );
      }
    }
    this.#pendingAcks.push(ack);
  }

  #notification(n: Notification): void {
    this.#counters.notifications++;
    if (n.type === 'alerts') {
      this.#ctx.log.info(
        { group: n.groupKey, status: n.status, alerts: n.alerts.length, receivers: this.#deliveries.receivers.length },
        'alert notification',
      );
    }
    this.#deliveries.enqueue(n, Date.now());
  }

  #tick(): void {
    if (this.#stopping) return;
    this.#engine.tick(Date.now());
    this.#persist();
  }

  /** Writes what changed in one transaction; acks the batches applied before it once it committed. */
  #persist(): boolean {
    if (!this.#store) {
      if (Date.now() >= this.#nextOpenAt) this.#open(this.#ctx.config.writer.busyTimeoutMs);
      if (!this.#store) return false;
    }
    const { dirty } = this.#engine;
    if (dirty.alerts.size + dirty.groups.size + dirty.silences.size + this.#dirtyDeliveries.size === 0) {
      this.#ackAll();
      return true;
    }
    const changes: StoreChanges = {
      alerts: [...dirty.alerts].map((fp) => [fp, this.#engine.alert(fp)]),
      groups: [...dirty.groups].map((key) => [key, this.#engine.group(key)]),
      silences: [...dirty.silences].map((id) => [id, this.#engine.silence(id)]),
      deliveries: [...this.#dirtyDeliveries],
    };
    try {
      this.#store.write(changes);
    } catch (err) {
      const busy = /^SQLITE_(BUSY|LOCKED)/.test((err as { code?: string }).code ?? '');
      if (busy) this.#counters.store_busy++;
      else {
        this.#counters.store_errors++;
        this.#rateLog.warn('store_error', { err }, 'alert store write failed: kept, retrying');
      }
      return false;
    }
    this.#counters.store_writes++;
    dirty.alerts.clear();
    dirty.groups.clear();
    dirty.silences.clear();
    this.#dirtyDeliveries.clear();
    this.#ackAll();
    return true;
  }

  #ackAll(): void {
    for (const ack of this.#pendingAcks.splice(0)) ack();
  }

  stats() {
    let firing = 0;
    let pending = 0;
    for (const { state, count } of this.#engine.counts()) {
      if (state === 'firing') firing += count;
      else if (state === 'pending') pending += count;
    }
    const receivers = this.#deliveries.stats();
    return {
      processed: this.#counters.processed,
      queue_depth: receivers.reduce((n, r) => n + r.queued, 0),
      dropped: receivers.reduce((n, r) => n + r.dropped + r.abandoned, 0),
      detail: {
        alerts_firing: firing,
        alerts_pending: pending,
        receivers: receivers.length,
        delivered: receivers.reduce((n, r) => n + r.delivered, 0),
        delivery_failures: receivers.reduce((n, r) => n + r.failed, 0),
        delivery_abandoned: receivers.reduce((n, r) => n + r.abandoned, 0),
        ...this.#counters,
        unacked_batches: this.#pendingAcks.length,
        store: this.#storeProblem ?? 'open',
      },
    };
  }

  control(): AlerterControlExtra {
    return {
      alerts: () => this.#engine.alertViews(Date.now()),
      silences: () => this.#engine.silenceViews(Date.now()),
      addSilence: (s: NewSilence) => {
        const view = this.#engine.addSilence(s, Date.now());
        this.#ctx.log.info({ silence: view }, 'silence added');
        this.#persist();
        return view;
      },
      removeSilence: (id: string) => {
        const removed = this.#engine.removeSilence(id, Date.now());
        if (removed) this.#ctx.log.info({ id }, 'silence removed');
        this.#persist();
        return removed;
      },
      test: () => this.#deliveries.test(Date.now()),
      setExpected: (channels: string[]) => this.#engine.setExpected(channels, Date.now()),
      deliverNow: async (timeoutMs: number) => {
        this.#engine.flushAll(Date.now());
        this.#persist();
        await this.#deliveries.idle(timeoutMs);
        this.#persist();
      },
      metrics: () => ({ alerts: this.#engine.counts(), receivers: this.#deliveries.stats() }),
    };
  }

  async flush(): Promise<void> {
    this.#persist();
  }

  async shutdown(): Promise<void> {
    this.#stopping = true;
    clearInterval(this.#timer);
    this.#deliveries.stop();
    // What is still queued (or in flight) stays in the store and is sent after the next start.
    if (!this.#persist())
      this.#ctx.log.warn(
        { store: this.#storeProblem ?? 'locked' },
        'alert state not written at shutdown (database unavailable): the last changes are lost',
      );
    this.#store?.close();
    this.#store = null;
  }
}

runActor<AlerterControlExtra>(async (ctx): Promise<ActorInstance<AlerterControlExtra>> => {
  // kysely only builds the local alert tables' DDL (PostgreSQL as the store); a SQLite monitor's
  // alerter thread never loads it (docs/PERFORMANCE.md, "Numbers behind code choices").
  const createLocalTables = isPostgresUrl(ctx.config.dbPath)
    ? (await import('../src/db/schema.js')).ensureLocalAlertTables
    : null;
  const alerter = new Alerter(ctx, createLocalTables);
  alerter.start();
  return {
    attach: (peer, port) => alerter.attach(peer, port),
    stats: () => alerter.stats(),
    flush: () => alerter.flush(),
    shutdown: () => alerter.shutdown(),
    control: alerter.control(),
  };
});
