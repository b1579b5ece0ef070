// Registry actor: the live state machine of every bot (states drawn in src/protocol/states.ts).
//
// Inputs:  'ingest'  Link<_, BotSignal>   register/heartbeat/unregister from the socket, + pulses
//          'sampler' signals (SampleRoundSignal) cpu/rss per bot, and pids that are gone; applied
//                    SAMPLE_SLICE per event-loop turn so heartbeat batches are not held back
// Outputs: 'db'      Link<WriteItem>      bot_status upserts and bot_events rows
//          'sampler' Link<WatchItem>      which pids to watch
//          'alerter' Link<AlerterInput>   every transition (fire-and-forget: nothing here waits for its acks)
//
// Time: staleness is measured on a "live clock" that only advances while the monitor itself is
// running normally. A gap in this thread's own timer (SIGSTOP, starvation) or late pulses from
// the ingest thread (main thread blocked, so heartbeats sit unread in the kernel) are not counted
// against the bots: a paused monitor never produces a false stale.
import os from 'node:os';
import { createHistogram, performance, type RecordableHistogram } from 'node:perf_hooks';
import type { MessagePort } from 'node:worker_threads';
import { existsSync } from 'node:fs';
import { runActor, type ActorContext, type ActorInstance, type PeerName } from '../src/actors/actor-host.js';
import { round2 } from '../src/actors/health.js';
import { fromColumns, Link } from '../src/actors/link.js';
import { processStartTime } from '../src/proc.js';
import { isPostgresUrl } from '../src/config-defaults.js';
import { redactUrl } from '../src/db/backend-url.js';
import { spoolUnacknowledged } from '../src/db/spool.js';
import { RateLimitedLog } from '../src/log.js';
import type { Features } from '../src/protocol/messages.js';
import type { BotStatus, TransitionReason } from '../src/protocol/states.js';
import type { AlerterInput } from '../src/actors/alerter-messages.js';
import type { RowItem, WriteItem } from '../src/actors/db-writer-messages.js';
import type {
  BotSignal,
  BotSnapshot,
  FeedChanges,
  IngestPulse,
  KnownConnections,
  LatencySummary,
  RegistryControlExtra,
  RegistryLatency,
} from '../src/actors/registry-messages.js';
import type { SampleResult, SampleRoundSignal, WatchItem } from '../src/actors/sampler-messages.js';
import { readRebuildState } from '../src/actors/rebuild-read.js';
import { encodeBot } from '../src/http/feed-format.js';

interface Bot {
  channel: string;
  pid: number;
  status: BotStatus;
  features: Features | null;
  featuresJson: string | null;
  registeredAt: number;
  lastSeen: number;
  lastHeartbeat: number | null;
  /** Live-clock time of the last heartbeat (or of the fresh window given after a pause/restart). */
  heartbeatLive: number;
  /** Start time of the process `pid` (bot_status.start_time): with the pid, which process this bot is. */
  startTime: number | null;
  cpuPct: number | null;
  cpuPctMachine: number | null;
  rssMb: number | null;
  sampledAt: number | null;
  /** Changed since its last bot_status row and waiting for the next flush (in Registry#dirty once). */
  dirty: boolean;
}

/** Heartbeat-only changes reach bot_status at most this often; transitions are written at once. */
const STATUS_FLUSH_MS = 5_000;
/**
 * At shutdown the writer has already committed or spooled what it was sent (Monitor.stop waits for
 * that); rows it has not acknowledged this long after are spooled here.
 */
const SHUTDOWN_DRAIN_MS = 1_000;
/** A timer gap beyond this is the monitor having been paused, not time the bots were silent. */
const MAX_CREDITED_STEP_MS = 1_000;
/** Ingest pulses arrive every 250 ms; this late and the ingest thread is considered stalled. */
const PULSE_GRACE_MS = 1_000;
/**
 * Samples applied per event-loop turn, so ingest batches get in between. A 10,000-pid round used to
 * hold this thread for one task of 16–19 ms CPU (12–13.5 ms deserialising 10,000 objects, 3–6 ms
 * applying them): heartbeat p99 45 ms with rounds every 2 s against 9 ms without. Now: 4.6–5.9 ms
 * to receive the columns, then slices of ~0.3 ms (docs/PERFORMANCE.md, "Sampler").
 */
const SAMPLE_SLICE = 500;
/**
 * Status rows written per event-loop turn by the periodic flush, for the same reason: 10,000
 * heartbeating bots made it one task of 10,000 rows every STATUS_FLUSH_MS.
 */
const STATUS_SLICE = 500;

class LiveClock {
  #live = 0;
  #lastReal = performance.now();
  #lastPulse = performance.now();
  pausesDetected = 0;
  pausedMs = 0;
  #onPause: (ms: number, why: string) => void;

  constructor(onPause: (ms: number, why: string) => void) {
    this.#onPause = onPause;
  }

  pulse(): void {
    this.#lastPulse = performance.now();
  }

  /** Advances by the real time elapsed, except what the monitor spent paused or stalled. */
  now(): number {
    const real = performance.now();
    const delta = real - this.#lastReal;
    this.#lastReal = real;
    const ingestStalledFor = real - this.#lastPulse - PULSE_GRACE_MS;
    if (delta > MAX_CREDITED_STEP_MS) {
      this.#notCounted(delta - MAX_CREDITED_STEP_MS, 'registry thread did not run');
      this.#live += MAX_CREDITED_STEP_MS;
    } else if (ingestStalledFor > 0) {
      this.#notCounted(Math.min(delta, ingestStalledFor), 'ingest thread sent no pulse');
      this.#live += Math.max(0, delta - ingestStalledFor);
    } else {
      this.#live += delta;
    }
    return this.#live;
  }

  #notCounted(ms: number, why: string): void {
    this.pausedMs += ms;
    if (ms >= 500) {
      this.pausesDetected++;
      this.#onPause(ms, why);
    }
  }
}

/** What the live feed was last told about a bot (feedChanges). */
interface FeedSent {
  status: BotStatus;
  pid: number;
  features: string | null;
  hb: number | null;
  cpu: number | null;
  rss: number | null;
}

/** A value as the dashboard shows it (0.1): a sample that moves less is no change to send. */
const shown = (n: number | null) => (n === null ? null : Math.round(n * 10));

class Registry {
  readonly #ctx: ActorContext;
  readonly #bots = new Map<string, Bot>();
  /** null until the live feed first asks (no dashboard open since start: nothing kept). */
  #feedSent: Map<string, FeedSent> | null = null;
  /**
   * Bots marked dirty since the last flush began, each once (Bot.dirty says whether it still is: a
   * transition writes its row at once and clears the mark). An array and a flag rather than a Set:
   * a heartbeat then costs one property test on the bot it already holds, no hashing.
   */
  #dirty: Bot[] = [];
  /** The flush under way: bots still to write from `#flushNext` on, STATUS_SLICE per turn. */
  #flushing: Bot[] = [];
  #flushNext = 0;
  #flushSlice: NodeJS.Immediate | null = null;
  /**
   * Live-clock time before which no online bot can be stale: the oldest online heartbeat at the
   * last walk, plus staleAfterMs. A bot's heartbeatLive only moves forward and a bot turns online
   * with heartbeatLive = now (≥ that oldest), lowering it at most to its own due time, so until then
   * #markStale need not walk the bots (it did every tick: 10,000 bots each second).
   */
  #staleCheckAt = -Infinity;
  readonly #db: Link<WriteItem>;
  readonly #sampler: Link<WatchItem>;
  readonly #alerter: Link<AlerterInput>;
  readonly #ingest: Link<never, BotSignal>;
  readonly #clock: LiveClock;
  readonly #rateLog: RateLimitedLog;
  readonly #cores = os.availableParallelism();
  /** client send → visible here, and main-thread read → visible here; microseconds. */
  readonly #sentToVisible: RecordableHistogram = createHistogram();
  readonly #readToVisible: RecordableHistogram = createHistogram();
  readonly #counters = {
    processed: 0,
    pid_mismatch: 0,
    implicit_registers: 0,
    exited_before_register: 0,
    refused_max_bots: 0,
    unknown_unregister: 0,
    heartbeat_unknown_dead_pid: 0,
    heartbeat_after_unregister: 0,
    transitions: 0,
  };
  readonly #timers: NodeJS.Timeout[] = [];
  /**
   * Start times read while applying one batch, by pid. Bots of one process share its pid (a fleet
   * of 10,000 channels from 4 processes registers with 4 pids), so a batch of registers reads
   * /proc once per process, not once per message. Cleared after every batch: a pid that exits
   * between batches is seen at the next one, as before.
   */
  readonly #startTimes = new Map<number, number | 'gone' | null>();
  /** While an ingest batch is applied: the rows it causes, sent as one 'caused' item afterwards. */
  #caused: RowItem[] | null = null;
  /** Sample rounds received and not yet applied in full (SAMPLE_SLICE per turn), oldest first. */
  readonly #unappliedSamples: { at: number; samples: SampleResult[]; next: number }[] = [];
  #sampleSlice: NodeJS.Immediate | null = null;

  constructor(ctx: ActorContext) {
    this.#ctx = ctx;
    this.#rateLog = new RateLimitedLog(ctx.log);
    const maxPending = ctx.config.limits.maxPendingPerLink;
    this.#db = new Link('registry-to-db', { maxPending });
    this.#sampler = new Link('registry-to-sampler', {
      maxPending,
      onSignal: (body) => this.#receiveSamples(body as SampleRoundSignal),
    });
    // Its acks gate nothing: an alerter that is down or slow only makes this link hold (bounded,
    // re-sent when it is back), never the ingest acks or the writer.
    this.#alerter = new Link('registry-to-alerter', { maxPending });
    this.#ingest = new Link('registry-to-ingest', {
      // The batch is acknowledged only once the rows it caused are with the writer (committed or
      // spooled): a registry crash before that gets it re-sent. Those rows go as one 'caused' item
      // keyed by the batch's (sender, seq), which the writer stores only once however often a
      // restarted registry applies the batch again. A batch that caused no row (heartbeats only:
      // timestamps the next heartbeat re-derives) sends nothing and waits only for the batches
      // before it, acks being cumulative.
      onBatch: (signals, ack, from, seq) => {
        const caused: RowItem[] = [];
        this.#caused = caused;
        try {
          this.#apply(signals);
        } finally {
          this.#caused = null;
        }
        if (caused.length > 0) this.#db.send({ type: 'caused', sender: from, seq, items: caused });
        this.#db.whenAcknowledged(ack);
      },
      onSignal: (body) => {
        if ((body as IngestPulse).pulse !== undefined) this.#clock.pulse();
      },
    });
    this.#clock = new LiveClock((ms, why) =>
      ctx.log.warn(
        { not_counted_ms: Math.round(ms), why },
        'monitor pause detected: the bots get this time back, nobody turns stale for it',
      ),
    );
    const tickMs = Math.min(1_000, Math.max(50, ctx.config.staleAfterMs / 8));
    this.#timers.push(setInterval(() => this.#markStale(), tickMs));
    this.#timers.push(setInterval(() => this.#flushDirty(), STATUS_FLUSH_MS));
  }

  /**
   * After a restart of this actor or of the monitor: every known bot gets a fresh stale window,
   * a live one whose pid is gone, or now names another process, is dead before anything samples it,
   * and ingest batches whose rows are already stored are skipped when re-sent. A database that
   * cannot be read yet (locked before its first migration, missing) is not fatal: the registry
   * starts empty and bots come back with their next register or heartbeat. The read runs in a
   * thread of its own (src/actors/rebuild-reader.ts), so this one never loads the database driver.
   */
  async rebuild(): Promise<void> {
    const { dbPath, hostName } = this.#ctx.config;
    // First start on SQLite: no file, nothing to rebuild (PostgreSQL: the reader finds no rows).
    if (!isPostgresUrl(dbPath) && !existsSync(dbPath)) return;
    try {
      const { rows, cursors } = await readRebuildState(dbPath, hostName);
      for (const { sender, seq } of cursors) this.#ingest.markDelivered(sender, seq);
      const live = this.#clock.now();
      let died = 0;
      for (const row of rows) {
        const { channel, pid, status, registered_at, last_seen, last_heartbeat } = row;
        const bot = newBot(
          {
            channel,
            pid,
            status,
            registeredAt: registered_at,
            lastSeen: last_seen,
            lastHeartbeat: last_heartbeat,
            heartbeatLive: live,
          },
          row.features,
          row.start_time,
        );
        this.#bots.set(channel, bot);
        if (isLive(bot.status) && !this.#stillSameProcess(bot)) died++;
      }
      this.#staleCheckAt = -Infinity; // bots came online without a transition: walk them at the next tick
      this.#ctx.log.info(
        { bots: rows.length, died, incarnation: this.#ctx.incarnation },
        'registry rebuilt from bot_status',
      );
    } catch (err) {
      this.#ctx.log.warn(
        { err, db: redactUrl(this.#ctx.config.dbPath) },
        'registry cannot read bot_status yet: starting empty; bots reappear with their next register or heartbeat',
      );
    }
  }

  /** Rebuild's check of a live bot; false when it turned it dead. */
  #stillSameProcess(bot: Bot): boolean {
    const now = processStartTime(bot.pid);
    if (now === 'gone') {
      this.#transition(bot, 'dead', 'process_exited');
      return false;
    }
    if (bot.startTime !== null && now !== null && now !== bot.startTime) {
      this.#transition(bot, 'dead', 'pid_reused');
      return false;
    }
    if (bot.startTime === null && now !== null) {
      // A row from before start times were stored: nothing to compare with, so from now on this is the process.
      bot.startTime = now;
      this.#markDirty(bot);
    }
    return true;
  }

  attach(peer: PeerName, port: MessagePort): void {
    switch (peer) {
      case 'ingest':
        this.#ingest.attach(port);
        return;
      case 'db':
        this.#db.attach(port);
        return;
      case 'sampler':
        this.#sampler.attach(port);
        // A (re)started sampler knows nothing: tell it every pid to watch.
        for (const bot of this.#bots.values()) if (isLive(bot.status)) this.#watch(bot);
        return;
      case 'alerter':
        this.#alerter.attach(port);
        return;
      default:
        this.#ctx.log.warn({ peer }, 'registry has no link to this peer');
    }
  }

  #apply(signals: BotSignal[]): void {
    const live = this.#clock.now();
    // Fractional ms: heartbeat latencies are often below one millisecond.
    const now = performance.timeOrigin + performance.now();
    const known: number[] = [];
    this.#startTimes.clear();
    for (const signal of signals) {
      this.#counters.processed++;
      switch (signal.type) {
        case 'register':
          this.#register(signal, live);
          break;
        case 'heartbeat':
          this.#heartbeat(signal, live);
          break;
        case 'unregister':
          this.#unregister(signal);
          break;
        default:
          this.#rateLog.warn('unknown_signal', { signal }, 'registry ignored a signal of unknown type');
          continue;
      }
      if (signal.conn !== undefined) {
        const bot = this.#bots.get(signal.channel);
        if (bot && bot.pid === signal.pid && isLive(bot.status)) known.push(signal.conn);
      }
      if (signal.sent_at !== undefined)
        this.#sentToVisible.record(Math.max(1, Math.round((now - signal.sent_at) * 1000)));
      this.#readToVisible.record(Math.max(1, Math.round((now - signal.at) * 1000)));
    }
    this.#startTimes.clear();
    if (known.length > 0) this.#ingest.signal({ known } satisfies KnownConnections);
  }

  #startTimeOf(pid: number): number | 'gone' | null {
    let startTime = this.#startTimes.get(pid);
    if (startTime === undefined) this.#startTimes.set(pid, (startTime = processStartTime(pid)));
    return startTime;
  }

  // One /proc read per process per batch of registers; heartbeats of known bots make no system call.
  #register(signal: BotSignal, live: number): void {
    const startTime = this.#startTimeOf(signal.pid);
    const features = signal.features ?? null;
    const bot = this.#bots.get(signal.channel);
    const livePid = bot !== undefined && bot.pid === signal.pid && isLive(bot.status);
    if (startTime === 'gone') {
      // A short script (or a doc example) may exit before its register is read: it is stored, dead.
      this.#counters.exited_before_register++;
      if (livePid) {
        if (features) setFeatures(bot, features);
        bot.lastSeen = signal.at;
        this.#unwatch(bot);
        this.#transition(bot, 'dead', 'process_exited');
      } else {
        if (bot && isLive(bot.status)) this.#unwatch(bot);
        this.#start(signal, features ?? bot?.features ?? null, live, 'dead', 'exited_before_register', null);
      }
      return;
    }
    if (livePid && (bot.startTime === null || startTime === null || bot.startTime === startTime)) {
      // The same process registering again (client reconnect, monitor restart): refresh, no new life.
      bot.startTime ??= startTime;
      this.#touch(bot, signal, live);
      if (features && JSON.stringify(features) !== bot.featuresJson) {
        setFeatures(bot, features);
        bot.dirty = false;
        this.#write(statusRow(bot)); // new features are written at once, not with the heartbeat flush
      }
      if (bot.status === 'stale') this.#transition(bot, 'online', 'heartbeat_resumed');
      return;
    }
    const reason: TransitionReason = bot && isLive(bot.status) ? 'replaced' : 'registered';
    if (bot && isLive(bot.status) && bot.pid !== signal.pid) this.#unwatch(bot);
    this.#start(signal, features ?? bot?.features ?? null, live, 'online', reason, startTime);
  }

  #heartbeat(signal: BotSignal, live: number): void {
    const bot = this.#bots.get(signal.channel);
    if (bot && isLive(bot.status)) {
      if (bot.pid !== signal.pid) {
        this.#counters.pid_mismatch++;
        this.#rateLog.warn(
          'pid_mismatch',
          { channel: signal.channel, registered_pid: bot.pid, heartbeat_pid: signal.pid },
          'heartbeat ignored: pid differs from the registered one',
        );
        return;
      }
      this.#touch(bot, signal, live);
      if (bot.status === 'stale') this.#transition(bot, 'online', 'heartbeat_resumed');
      return;
    }
    if (bot?.status === 'offline' && bot.pid === signal.pid) {
      // A heartbeat that raced its own unregister (e.g. sent on another connection): the bot said
      // goodbye, so this does not bring it back.
      this.#counters.heartbeat_after_unregister++;
      return;
    }
    // Unknown or dead channel, or a new pid for an offline one: a heartbeat from a live pid means
    // the bot is running and the monitor missed its register (e.g. the monitor restarted).
    const startTime = this.#startTimeOf(signal.pid);
    if (startTime === 'gone') {
      this.#counters.heartbeat_unknown_dead_pid++;
      this.#rateLog.warn(
        'heartbeat_unknown_dead_pid',
        { channel: signal.channel, pid: signal.pid },
        'heartbeat from an unknown channel whose pid is not alive: ignored',
      );
      return;
    }
    this.#counters.implicit_registers++;
    this.#start(signal, bot?.features ?? null, live, 'online', 'implicit_register', startTime);
  }

  #unregister(signal: BotSignal): void {
    const bot = this.#bots.get(signal.channel);
    // A dead bot's own goodbye (a script that exited before the monitor read its lines, or whose
    // exit the sampler saw first) still means it ended cleanly: offline.
    const deadSamePid = bot?.status === 'dead' && bot.pid === signal.pid;
    if (!bot || !(isLive(bot.status) || deadSamePid)) {
      this.#counters.unknown_unregister++;
      return;
    }
    if (bot.pid !== signal.pid) {
      this.#counters.pid_mismatch++;
      this.#rateLog.warn(
        'pid_mismatch',
        { channel: signal.channel, registered_pid: bot.pid, unregister_pid: signal.pid },
        'unregister ignored: pid differs from the registered one',
      );
      return;
    }
    bot.lastSeen = signal.at;
    if (isLive(bot.status)) this.#unwatch(bot);
    this.#transition(bot, 'offline', 'unregistered', bot.status, signal.reason);
  }

  /** A new life for the channel: online and watched, or (its process already gone) dead at once. */
  #start(
    signal: BotSignal,
    features: Features | null,
    live: number,
    to: 'online' | 'dead',
    reason: TransitionReason,
    startTime: number | null,
  ): void {
    const previous = this.#bots.get(signal.channel);
    if (!previous && !this.#makeRoom()) {
      this.#counters.refused_max_bots++;
      this.#rateLog.warn(
        'refused_max_bots',
        { channel: signal.channel, max_bots: this.#ctx.config.limits.maxBots },
        'register refused: the registry holds maxBots live bots',
      );
      return;
    }
    // The old life's pending heartbeat row would overwrite the new one's (written at once below).
    if (previous) previous.dirty = false;
    const { channel, pid, at } = signal;
    const bot = newBot(
      {
        channel,
        pid,
        status: previous?.status ?? 'offline',
        registeredAt: at,
        lastSeen: at,
        lastHeartbeat: at,
        heartbeatLive: live,
      },
      features,
      startTime,
    );
    this.#bots.set(bot.channel, bot);
    this.#transition(bot, to, reason, previous ? previous.status : null);
    if (to === 'online') this.#watch(bot);
  }

  /**
   * Keeps the registry within limits.maxBots: when full, the offline or dead bot seen least recently
   * is forgotten (its bot_status row stays). Full of live bots: no room, the caller refuses.
   */
  #makeRoom(): boolean {
    if (this.#bots.size < this.#ctx.config.limits.maxBots) return true;
    let oldest: Bot | null = null;
    for (const bot of this.#bots.values()) {
      if (!isLive(bot.status) && (!oldest || bot.lastSeen < oldest.lastSeen)) oldest = bot;
    }
    if (!oldest) return false;
    this.#bots.delete(oldest.channel);
    oldest.dirty = false;
    return true;
  }

  #touch(bot: Bot, signal: BotSignal, live: number): void {
    bot.lastSeen = signal.at;
    bot.lastHeartbeat = signal.at;
    bot.heartbeatLive = live;
    this.#markDirty(bot);
  }

  #markDirty(bot: Bot): void {
    if (bot.dirty) return;
    bot.dirty = true;
    this.#dirty.push(bot);
  }

  /** `stopReason`: an unregister's own reason (a planned stop), passed to the alerter. */
  #transition(
    bot: Bot,
    to: BotStatus,
    reason: TransitionReason,
    from: BotStatus | null = bot.status,
    stopReason?: string,
  ): void {
    bot.status = to;
    if (to === 'online')
      this.#staleCheckAt = Math.min(this.#staleCheckAt, bot.heartbeatLive + this.#ctx.config.staleAfterMs);
    this.#counters.transitions++;
    const at = Date.now();
    this.#write({ type: 'event', at, channel: bot.channel, pid: bot.pid, from, to, reason });
    bot.dirty = false;
    this.#write(statusRow(bot));
    const planned = stopReason !== undefined;
    this.#alerter.send({
      type: 'transition',
      at,
      channel: bot.channel,
      pid: bot.pid,
      from,
      to,
      reason: stopReason ?? reason,
      planned,
    });
    this.#ctx.log.info(
      { channel: bot.channel, pid: bot.pid, from, to, reason, ...(planned ? { stop_reason: stopReason } : {}) },
      'bot status changed',
    );
  }

  /** A row for the writer: part of the ingest batch being applied, if any. */
  #write(row: RowItem): void {
    if (this.#caused) this.#caused.push(row);
    else this.#db.send(row);
  }

  #markStale(): void {
    const live = this.#clock.now();
    if (live <= this.#staleCheckAt) return;
    const staleAfter = this.#ctx.config.staleAfterMs;
    let oldest = Infinity;
    for (const bot of this.#bots.values()) {
      if (bot.status !== 'online') continue;
      if (live - bot.heartbeatLive > staleAfter) this.#transition(bot, 'stale', 'no_heartbeat');
      else if (bot.heartbeatLive < oldest) oldest = bot.heartbeatLive;
    }
    this.#staleCheckAt = oldest + staleAfter;
  }

  /** Starts writing the dirty bots' rows, STATUS_SLICE per turn (one still under way is finished first). */
  #flushDirty(): void {
    this.#writeDirtySlice(Infinity);
    this.#flushing = this.#dirty;
    this.#dirty = [];
    this.#writeDirtySlice(STATUS_SLICE);
  }

  /** Everything dirty, now (flush and shutdown). */
  #flushAllDirty(): void {
    this.#flushDirty();
    this.#writeDirtySlice(Infinity);
  }

  /**
   * Writes up to `budget` rows of the flush under way, the rest one turn later. A bot touched again
   * before its turn is written once, with what it is then; one touched after it joins the next flush.
   */
  #writeDirtySlice(budget: number): void {
    if (this.#flushSlice) clearImmediate(this.#flushSlice);
    this.#flushSlice = null;
    const bots = this.#flushing;
    const end = Math.min(bots.length, this.#flushNext + budget);
    for (let i = this.#flushNext; i < end; i++) {
      const bot = bots[i];
      if (!bot.dirty) continue; // written by a transition meanwhile, or forgotten
      bot.dirty = false;
      this.#write(statusRow(bot));
    }
    this.#flushNext = end;
    if (end < bots.length) {
      this.#flushSlice = setImmediate(() => this.#writeDirtySlice(STATUS_SLICE));
    } else {
      this.#flushing = [];
      this.#flushNext = 0;
    }
  }

  #watch(bot: Bot): void {
    this.#sampler.send({ type: 'watch', channel: bot.channel, pid: bot.pid, start_time: bot.startTime });
  }

  #unwatch(bot: Bot): void {
    this.#sampler.send({ type: 'unwatch', channel: bot.channel, pid: bot.pid });
  }

  /** A stop applies what it was told (a gone pid's 'dead' row is written before the flush). */
  #applyAllSamples(): void {
    if (this.#sampleSlice) clearImmediate(this.#sampleSlice);
    this.#applySampleSlice(Infinity);
  }

  #receiveSamples(signal: SampleRoundSignal): void {
    const samples = fromColumns(signal.samples) as SampleResult[];
    this.#unappliedSamples.push({ at: signal.round.at, samples, next: 0 });
    this.#sampleSlice ??= setImmediate(() => this.#applySampleSlice(SAMPLE_SLICE));
  }

  /** Applies up to `budget` samples, oldest round first; the rest one turn later (every one: Infinity). */
  #applySampleSlice(budget: number): void {
    this.#sampleSlice = null;
    const queue = this.#unappliedSamples;
    while (budget > 0 && queue.length > 0) {
      const round = queue[0];
      const end = Math.min(round.samples.length, round.next + budget);
      for (let i = round.next; i < end; i++) this.#applySample(round.samples[i], round.at);
      budget -= end - round.next;
      round.next = end;
      if (end === round.samples.length) queue.shift();
    }
    if (queue.length > 0) this.#sampleSlice = setImmediate(() => this.#applySampleSlice(SAMPLE_SLICE));
  }

  #applySample(sample: SampleResult, at: number): void {
    const bot = this.#bots.get(sample.channel);
    if (!bot || bot.pid !== sample.pid || !isLive(bot.status)) return; // a late report about an old life
    if ('gone' in sample) {
      bot.cpuPct = bot.cpuPctMachine = bot.rssMb = null;
      this.#transition(bot, 'dead', sample.gone);
      return;
    }
    if (bot.startTime === null) {
      bot.startTime = sample.start_time; // register could not read it (no /proc): the sampler's is the first
      this.#markDirty(bot);
    }
    bot.cpuPct = sample.cpu_pct;
    bot.cpuPctMachine = round2(sample.cpu_pct / this.#cores);
    bot.rssMb = sample.rss_mb;
    bot.sampledAt = at;
  }

  snapshot(): BotSnapshot[] {
    const live = this.#clock.now();
    return [...this.#bots.values()].map((bot) => this.#row(bot, live));
  }

  /**
   * The dashboard's live feed (one consumer): only the bots that changed since the last call, so
   * 10,000 quiet bots cost a walk here and almost nothing across the thread boundary. `reset`
   * makes the current state the base and answers no rows; so does the first call after this actor
   * (re)started, with `lost: true` — the feed then sends its clients a fresh snapshot.
   */
  feedChanges(reset: boolean): FeedChanges {
    const live = this.#clock.now();
    const lost = !reset && this.#feedSent === null;
    const base = reset || lost;
    const sent = base ? new Map<string, FeedSent>() : this.#feedSent!;
    const changes: FeedChanges = { lost, status: [], numbers: [], removed: [] };
    for (const bot of this.#bots.values()) {
      const before = sent.get(bot.channel);
      // Compared before anything is allocated: a quiet bot costs a lookup, no garbage.
      const cpu = shown(bot.cpuPct);
      const rss = shown(bot.rssMb);
      if (base) {
        // the base: recorded below, no rows answered
      } else if (
        !before ||
        before.status !== bot.status ||
        before.pid !== bot.pid ||
        before.features !== bot.featuresJson
      ) {
        changes.status.push(this.#row(bot, live));
      } else if (before.hb !== bot.lastHeartbeat || before.cpu !== cpu || before.rss !== rss) {
        changes.numbers.push(this.#row(bot, live));
      } else {
        continue;
      }
      sent.set(bot.channel, {
        status: bot.status,
        pid: bot.pid,
        features: bot.featuresJson,
        hb: bot.lastHeartbeat,
        cpu,
        rss,
      });
    }
    if (!base) {
      for (const channel of sent.keys()) {
        if (this.#bots.has(channel)) continue;
        sent.delete(channel);
        changes.removed.push(channel);
      }
    }
    this.#feedSent = sent;
    return changes;
  }

  /** Every bot as the feed's snapshot rows, already JSON: one string crosses the thread, not 10,000 objects. */
  feedSnapshot(): string {
    const live = this.#clock.now();
    return JSON.stringify([...this.#bots.values()].map((bot) => encodeBot(this.#row(bot, live))));
  }

  #row(bot: Bot, live: number): BotSnapshot {
    return {
      channel: bot.channel,
      pid: bot.pid,
      status: bot.status,
      features: bot.features,
      registered_at: bot.registeredAt,
      last_seen: bot.lastSeen,
      last_heartbeat: bot.lastHeartbeat,
      heartbeat_age_s: isLive(bot.status) ? round2((live - bot.heartbeatLive) / 1000) : null,
      start_time: bot.startTime,
      cpu_pct: bot.cpuPct,
      cpu_pct_machine: bot.cpuPctMachine,
      rss_mb: bot.rssMb,
      sampled_at: bot.sampledAt,
    };
  }

  latency(): RegistryLatency {
    const summary = (h: RecordableHistogram): LatencySummary => ({
      count: h.count,
      p50_ms: h.count ? round2(h.percentile(50) / 1000) : 0,
      p95_ms: h.count ? round2(h.percentile(95) / 1000) : 0,
      p99_ms: h.count ? round2(h.percentile(99) / 1000) : 0,
      max_ms: h.count ? round2(h.max / 1000) : 0,
    });
    return { sent_to_visible: summary(this.#sentToVisible), read_to_visible: summary(this.#readToVisible) };
  }

  resetLatency(): void {
    this.#sentToVisible.reset();
    this.#readToVisible.reset();
  }

  stats() {
    const byStatus: Record<BotStatus, number> = { online: 0, stale: 0, dead: 0, offline: 0 };
    for (const bot of this.#bots.values()) byStatus[bot.status]++;
    const db = this.#db.stats();
    const sampler = this.#sampler.stats();
    const alerter = this.#alerter.stats();
    return {
      processed: this.#counters.processed,
      queue_depth: db.pending + sampler.pending + alerter.pending,
      dropped: db.dropped + sampler.dropped + alerter.dropped,
      detail: {
        ...byStatus,
        ...this.#counters,
        pauses_detected: this.#clock.pausesDetected,
        paused_ms_total: Math.round(this.#clock.pausedMs),
        heartbeat_p99_ms: this.#sentToVisible.count ? round2(this.#sentToVisible.percentile(99) / 1000) : null,
      },
    };
  }

  async flush(): Promise<void> {
    this.#applyAllSamples();
    this.#flushAllDirty();
    await this.#db.drained(this.#ctx.config.supervisor.shutdownMs);
  }

  /** Flush; what the writer has not acknowledged shortly after is spooled by this thread (the writer is not answering). */
  async shutdown(): Promise<void> {
    for (const timer of this.#timers) clearInterval(timer);
    this.#applyAllSamples();
    this.#flushAllDirty();
    this.#alerter.flush(); // posted, not awaited: the alerter stops after this actor
    if (await this.#db.drained(SHUTDOWN_DRAIN_MS)) return;
    spoolUnacknowledged(this.#db, this.#ctx.config, this.#ctx.log);
  }
}

/** A bot as first seen (register, implicit register, or rebuilt from bot_status); no sample yet. */
function newBot(
  known: Pick<Bot, 'channel' | 'pid' | 'status' | 'registeredAt' | 'lastSeen' | 'lastHeartbeat' | 'heartbeatLive'>,
  features: Features | null,
  startTime: number | null,
): Bot {
  const bot: Bot = {
    ...known,
    features: null,
    featuresJson: null,
    startTime,
    cpuPct: null,
    cpuPctMachine: null,
    rssMb: null,
    sampledAt: null,
    dirty: false,
  };
  if (features) setFeatures(bot, features);
  return bot;
}

function setFeatures(bot: Bot, features: Features): void {
  bot.features = features;
  bot.featuresJson = JSON.stringify(features);
}

function isLive(status: BotStatus): boolean {
  return status === 'online' || status === 'stale';
}

function statusRow(bot: Bot): RowItem {
  return {
    type: 'status',
    channel: bot.channel,
    pid: bot.pid,
    status: bot.status,
    features_json: bot.featuresJson,
    registered_at: bot.registeredAt,
    last_seen: bot.lastSeen,
    last_heartbeat: bot.lastHeartbeat,
    start_time: bot.startTime,
  };
}

runActor<RegistryControlExtra>(async (ctx): Promise<ActorInstance<RegistryControlExtra>> => {
  const registry = new Registry(ctx);
  await registry.rebuild();
  return {
    attach: (peer, port) => registry.attach(peer, port),
    stats: () => registry.stats(),
    flush: () => registry.flush(),
    shutdown: () => registry.shutdown(),
    control: {
      snapshot: () => registry.snapshot(),
      feedChanges: (reset: boolean) => registry.feedChanges(reset),
      feedSnapshot: () => registry.feedSnapshot(),
      latency: () => registry.latency(),
      resetLatency: () => registry.resetLatency(),
    },
  };
});
