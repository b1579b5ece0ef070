// The process sampler actor: every `sampleIntervalMs`, one time-boxed round samples every watched
// pid — state, start time, cpu and rss from /proc/<pid>/stat (pidusage where there is no /proc) — and
// reports the round to the registry (one unacknowledged signal, the samples column-wise) and one
// metric row per sample to the db writer.
//
//   registry ──watch/unwatch (Link, acked at once)──▶ sampler ──SampleRoundSignal──▶ registry
//                                                        └───── metric rows (Link) ───▶ db
//
// One round at a time, never stacked:
//
//   tick ─▶ running ──every chunk sampled──▶ published   (signal + rows; gone pids are unwatched)
//              │
//              └──time box──▶ abandoned                   (counted; nothing published)
//
//   The time box is sampleTimeoutMs, clamped below the interval, so a round is over before the next
//   tick. Ticks stay on their schedule whatever a round does; ticks missed while the thread or the
//   process was stopped are counted, not replayed. Only one stats call is ever in flight: a round
//   that finds the call of an abandoned round still running waits for it inside its own time box
//   (and is abandoned in turn if it never returns), so hung calls cannot pile up.
//
// Results. A failed read is "no data" (the pid is absent from `samples`), never 0 % / 0 MB. No such
// pid, or a zombie (pidusage counts it alive) → gone 'process_exited'; a start time other than the
// one seen first or given in the watch item → gone 'pid_reused'. After reporting gone the pid is
// not watched until a new watch item arrives. cpu is % of one core like pidusage's (may exceed 100),
// from the cpu time used between two rounds: the first read of a pid is a baseline only, so the
// first cpu figure comes one round later.
//
// Where the numbers come from. On Linux one read of /proc/<pid>/stat per pid gives everything:
// state (zombie?), start time (pid reused?), utime + stime and rss. The fd is held open from round
// to round (HeldStatFds: one pread per pid, within an fd budget that leaves the bot connections
// their share; pids over it are opened, read and closed) and closed once the pid is not watched. A
// held fd stays bound to its process: once that exits, the read fails (ESRCH) and the pid is read
// again by path, so a reused pid is judged by its start time as before. A crashed or terminated
// thread leaves none behind: Node closes a worker's fs.open fds when it exits (trackUnmanagedFds,
// on by default). pidusage is the portable
// path (no /proc: macOS, BSD): it would cost a second render of the same file per pid on Linux and
// keeps one fd per pid open for `maxage`, whose clean-up it does not expose (pidusage#127). Why and
// what it costs at 10k pids: docs/PERFORMANCE.md, "Sampler".
import { createRequire } from 'node:module';
import os from 'node:os';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { isMainThread, type MessagePort } from 'node:worker_threads';
import { RateLimitedLog, type Logger } from '../src/log.js';
import { runActor, type ActorStats, type PeerName } from '../src/actors/actor-host.js';
import { round2 } from '../src/actors/health.js';
import { Link, toColumns } from '../src/actors/link.js';
import { HeldStatFds, hasExited, pidAlive, procAvailable, procUnits, statPath, type ProcUnits } from '../src/proc.js';
import type { WriteItem } from '../src/actors/db-writer-messages.js';
import type { SampleResult, SampleRound, SampleRoundSignal, WatchItem } from '../src/actors/sampler-messages.js';

const pidusage = createRequire(import.meta.url)('pidusage') as typeof import('pidusage');

/**
 * Pids per stats call. With /proc the thread yields to its event loop between chunks (so the time
 * box, health calls and watch updates are served during a long round); with pidusage it bounds the
 * burst of work queued on libuv's threadpool, which every thread of the process shares.
 */
const CHUNK = 256;
/** Without /proc, start times come from pidusage's elapsed (1 s steps with ps): compare with slack. */
const PORTABLE_START_SLACK_S = 2;
const STAT_BUF = Buffer.allocUnsafe(4096);

export type MetricRow = Extract<WriteItem, { type: 'metric' }>;

export interface ProcessSamplerOptions {
  intervalMs: number;
  /** Time box of one round; clamped below the interval. */
  timeoutMs: number;
  /** Fault injection: every stats call first waits this long. */
  faultDelayMs?: number;
  log: Logger;
  onRound: (round: SampleRound) => void;
  /** One row per successful sample; false = refused (counted by the caller). */
  onMetric: (row: MetricRow) => unknown;
  /** Defaults: /proc is used when readable; pids per stats call. */
  useProc?: boolean;
  chunkSize?: number;
}

export interface RoundOutcome {
  status: 'published' | 'abandoned';
  duration_ms: number;
  samples: number;
}

interface Watched {
  channel: string;
  pid: number;
  /** `/proc/<pid>/stat`, built once per watch rather than once per read. */
  statPath: string;
  /** Linux: clock ticks since boot; without /proc: epoch seconds. Null until first seen. */
  startTime: number | null;
  /** The previous usage read, for the cpu delta; null until the first (baseline) read. */
  baseline: { ctimeMs: number; at: number } | null;
}

type Observation =
  | { type: 'gone' }
  | { type: 'unknown' }
  | {
      type: 'alive';
      startTime: number | null;
      usage: { ctimeMs: number; rssBytes: number; startS: number | null } | null;
    };

interface Round {
  at: number;
  startedAt: number;
  watched: number;
  abandoned: boolean;
  finished: boolean;
  timer: NodeJS.Timeout | null;
  samples: SampleResult[];
  rows: MetricRow[];
  gone: Watched[];
  settle: (outcome: RoundOutcome) => void;
}

const GONE: Observation = { type: 'gone' };
const UNKNOWN: Observation = { type: 'unknown' };
const noop = () => {};

export class ProcessSampler {
  readonly #intervalMs: number;
  readonly #timeoutMs: number;
  readonly #faultDelayMs: number;
  readonly #chunk: number;
  readonly #cores = os.availableParallelism();
  readonly #log: Logger;
  readonly #warn: RateLimitedLog;
  readonly #onRound: ProcessSamplerOptions['onRound'];
  readonly #onMetric: ProcessSamplerOptions['onMetric'];
  readonly #useProc: boolean;
  /** Linux units of /proc/<pid>/stat (getconf CLK_TCK and PAGESIZE), read once in init(). */
  #units: ProcUnits = { ticksPerS: 100, pageBytes: 4096 };
  /** Linux: the fds held on watched pids' stat files. */
  readonly #statFds: HeldStatFds | null;
  #entries = new Map<string, Watched>();
  #current: Round | null = null;
  /** The stats call in flight, if any (single flight; see the header). */
  #inFlight: Promise<void> | null = null;
  #timer: NodeJS.Timeout | null = null;
  #nextTickAt = 0;
  #stopped = false;
  #fdLimitLogged = false;
  #processed = 0;
  #rounds = 0;
  #roundsAbandoned = 0;
  #ticksMissed = 0;
  #goneReported = 0;
  #lastRoundMs: number | null = null;
  #lastRoundAt: number | null = null;

  constructor(options: ProcessSamplerOptions) {
    if (!(options.intervalMs > 0)) throw new TypeError('options.intervalMs must be a positive number');
    if (!(options.timeoutMs > 0)) throw new TypeError('options.timeoutMs must be a positive number');
    this.#intervalMs = options.intervalMs;
    // Clamped below the interval so a round is always over before the next tick.
    this.#timeoutMs = Math.max(1, Math.min(options.timeoutMs, Math.floor(options.intervalMs * 0.9)));
    this.#faultDelayMs = options.faultDelayMs ?? 0;
    this.#chunk = options.chunkSize ?? CHUNK;
    this.#log = options.log;
    this.#warn = new RateLimitedLog(options.log);
    this.#onRound = options.onRound;
    this.#onMetric = options.onMetric;
    this.#useProc = options.useProc ?? procAvailable();
    this.#statFds = this.#useProc ? new HeldStatFds() : null;
  }

  /** Linux: reads the units of /proc/<pid>/stat. Without /proc: warms pidusage (its first call runs `getconf` twice). */
  async init(): Promise<void> {
    if (this.#faultDelayMs > 0)
      this.#log.warn({ delay_ms: this.#faultDelayMs }, 'fault injection: every stats call is delayed');
    if (this.#useProc) {
      this.#units = await procUnits(this.#log);
      return;
    }
    this.#log.warn(
      'no /proc: sampling through pidusage alone; zombies are not detected and pid reuse only by start time to the second',
    );
    await pidusage([process.pid]).catch(noop);
  }

  /** Starts the schedule: the first round one interval from now. */
  start(): void {
    this.#stopped = false;
    this.#nextTickAt = performance.now() + this.#intervalMs;
    this.#arm();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#current) this.#abandon(this.#current, false);
    this.#statFds?.closeAll();
  }

  /** Applies one batch of watch/unwatch items from the registry. */
  apply(items: WatchItem[]): void {
    for (const item of items) {
      switch (item.type) {
        case 'watch': {
          if (!Number.isSafeInteger(item.pid) || item.pid <= 0 || typeof item.channel !== 'string') {
            this.#warn.warn(
              'bad_watch_item',
              { channel: item.channel, pid: item.pid },
              'watch item with an invalid pid or channel ignored',
            );
            break;
          }
          const given = typeof item.start_time === 'number' ? item.start_time : null;
          const entry = this.#entries.get(item.channel);
          if (entry && entry.pid === item.pid) {
            // The registry re-sends every watch after each attach: keep what we know of the process.
            if (given !== null && given !== entry.startTime) {
              // The registry's start time names the process the bot registered with; if ours
              // differs, the next round reports pid_reused.
              entry.startTime = given;
              entry.baseline = null;
            }
          } else {
            this.#entries.set(item.channel, {
              channel: item.channel,
              pid: item.pid,
              statPath: statPath(item.pid),
              startTime: given,
              baseline: null,
            });
          }
          break;
        }
        case 'unwatch': {
          const entry = this.#entries.get(item.channel);
          if (entry && entry.pid === item.pid) this.#entries.delete(item.channel);
          break;
        }
        default:
          this.#warn.warn(
            'unknown_watch_item',
            { type: (item as { type?: unknown }).type },
            'unknown watch item ignored',
          );
      }
    }
  }

  /** Runs one round now (time-boxed like a scheduled one); abandons a round still running. */
  sampleNow(): Promise<RoundOutcome> {
    if (this.#current) this.#abandon(this.#current);
    this.#rounds++;
    return new Promise<RoundOutcome>((settle) => {
      const round: Round = {
        at: Date.now(),
        startedAt: performance.now(),
        watched: this.#entries.size,
        abandoned: false,
        finished: false,
        timer: null,
        samples: [],
        rows: [],
        gone: [],
        settle,
      };
      this.#current = round;
      round.timer = setTimeout(() => this.#abandon(round), this.#timeoutMs);
      this.#run(round).then(
        () => this.#publish(round),
        (err: unknown) => {
          this.#log.error({ err }, 'sample round failed');
          this.#abandon(round);
        },
      );
    });
  }

  get watched(): number {
    return this.#entries.size;
  }

  stats(): ActorStats {
    return {
      processed: this.#processed,
      queue_depth: this.#entries.size,
      dropped: 0,
      detail: {
        watched: this.#entries.size,
        /** Rounds started, including abandoned ones. */
        rounds: this.#rounds,
        rounds_abandoned: this.#roundsAbandoned,
        ticks_missed: this.#ticksMissed,
        last_round_ms: this.#lastRoundMs,
        last_round_at: this.#lastRoundAt,
        gone_reported: this.#goneReported,
        usage_source: this.#useProc ? 'proc' : 'pidusage',
        /** Linux: fds held on /proc/<pid>/stat, and EMFILE/ENFILE met opening one (each gave every held fd back). */
        held_fds: this.#statFds?.held ?? 0,
        fd_limit_hits: this.#statFds?.limitHits ?? 0,
      },
    };
  }

  #arm(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => this.#tick(), Math.max(0, this.#nextTickAt - performance.now()));
  }

  #tick(): void {
    this.#timer = null;
    const now = performance.now();
    this.#nextTickAt += this.#intervalMs;
    if (this.#nextTickAt <= now) {
      // The thread or the whole process was stopped: skip to the schedule, do not replay rounds.
      const missed = Math.floor((now - this.#nextTickAt) / this.#intervalMs) + 1;
      this.#ticksMissed += missed;
      this.#nextTickAt += missed * this.#intervalMs;
    }
    this.#arm();
    void this.sampleNow();
  }

  async #run(round: Round): Promise<void> {
    // A stats call of an abandoned round may still be running: wait for it (inside our time box).
    while (this.#inFlight) {
      await this.#inFlight;
      if (round.abandoned) return;
    }
    // Entries that share a pid (bots of one process) cost one read.
    const byPid = new Map<number, Watched[]>();
    for (const entry of this.#entries.values()) {
      const same = byPid.get(entry.pid);
      if (same) same.push(entry);
      else byPid.set(entry.pid, [entry]);
    }
    this.#statFds?.beginRound(byPid);
    const groups = [...byPid.values()];
    for (let i = 0; i < groups.length; i += this.#chunk) {
      if (round.abandoned) return;
      const chunk = groups.slice(i, i + this.#chunk);
      const call = this.#statsCall(chunk);
      const settled = call.then(noop, noop);
      this.#inFlight = settled;
      void settled.then(() => {
        if (this.#inFlight === settled) this.#inFlight = null;
      });
      const { observed, at } = await call;
      if (round.abandoned) return; // late results of an abandoned round are not used, not even as a baseline
      for (let j = 0; j < chunk.length; j++) for (const entry of chunk[j]) this.#judge(round, entry, observed[j], at);
    }
  }

  /**
   * One stats call for a chunk of pids (each group: the entries of one pid): what /proc (or, without
   * it, pidusage) says about each, in chunk order. Never rejects.
   */
  async #statsCall(chunk: Watched[][]): Promise<{ observed: Observation[]; at: number }> {
    if (this.#faultDelayMs > 0) await delay(this.#faultDelayMs);
    const observed: Observation[] = new Array<Observation>(chunk.length);
    const statFds = this.#statFds;
    if (statFds) {
      await yieldToLoop(); // the reads are synchronous: let the time box and control calls in between chunks
      // Stopped meanwhile: its fds are closed, and no read may open new ones.
      if (this.#stopped) return { observed: observed.fill(UNKNOWN), at: performance.now() };
      for (let j = 0; j < chunk.length; j++) observed[j] = this.#readProc(statFds, chunk[j][0]);
      const hits = statFds.limitHits;
      if (hits > 0 && !this.#fdLimitLogged) {
        this.#fdLimitLogged = true;
        this.#log.warn(
          { fd_limit_hits: hits },
          'sampler: out of fds (EMFILE/ENFILE); released its held /proc fds and reads by open + close until fds are free (logged once; stats: fd_limit_hits)',
        );
      }
      return { observed, at: performance.now() };
    }
    const pids = chunk.map((group) => group[0].pid);
    let usage: Record<string, import('pidusage').Status | null | undefined> = {};
    try {
      usage = await pidusage(pids);
    } catch (err) {
      // A one-pid call rejects when that pid fails (longer calls report null instead): no data.
      if (pids.length > 1)
        this.#warn.warn('pidusage_failed', { err: String(err) }, 'pidusage call failed; no data for this chunk');
    }
    const at = performance.now();
    for (let j = 0; j < pids.length; j++) {
      const pid = pids[j];
      const u = usage[pid];
      const startS = u ? Math.round((u.timestamp - u.elapsed) / 1000) : null;
      if (u) observed[j] = { type: 'alive', startTime: null, usage: { ctimeMs: u.ctime, rssBytes: u.memory, startS } };
      else observed[j] = pidAlive(pid) ? { type: 'alive', startTime: null, usage: null } : GONE;
    }
    return { observed, at };
  }

  /** One read of /proc/<pid>/stat: state, start time, cpu time and rss (the figures pidusage reads). */
  #readProc(statFds: HeldStatFds, entry: Watched): Observation {
    const stat = statFds.read(entry.pid, entry.statPath, STAT_BUF);
    if (stat === 'gone' || (typeof stat === 'object' && hasExited(stat.state))) return GONE;
    if (stat === 'error') return UNKNOWN;
    const ctimeMs = ((stat.utimeTicks + stat.stimeTicks) * 1000) / this.#units.ticksPerS;
    const rssBytes = stat.rssPages * this.#units.pageBytes;
    return { type: 'alive', startTime: stat.startTime, usage: { ctimeMs, rssBytes, startS: null } };
  }

  #judge(round: Round, entry: Watched, o: Observation, at: number): void {
    if (this.#entries.get(entry.channel) !== entry) return; // unwatched (or another pid) meanwhile
    if (o.type === 'unknown') return;
    if (o.type === 'gone') {
      round.samples.push({ channel: entry.channel, pid: entry.pid, gone: 'process_exited' });
      round.gone.push(entry);
      return;
    }
    const startTime = this.#useProc ? o.startTime : (o.usage?.startS ?? null);
    if (startTime === null) return;
    if (entry.startTime === null) entry.startTime = startTime;
    else if (
      this.#useProc ? entry.startTime !== startTime : Math.abs(entry.startTime - startTime) > PORTABLE_START_SLACK_S
    ) {
      round.samples.push({ channel: entry.channel, pid: entry.pid, gone: 'pid_reused' });
      round.gone.push(entry);
      return;
    }
    if (!o.usage) return; // pidusage had nothing for it: no data this round
    const previous = entry.baseline;
    entry.baseline = { ctimeMs: o.usage.ctimeMs, at };
    if (!previous) return; // first read: a baseline, not a sample
    const elapsed = at - previous.at;
    const used = o.usage.ctimeMs - previous.ctimeMs;
    if (!(elapsed > 0) || used < 0) return;
    const cpu = round2((used / elapsed) * 100);
    const rss = round2(o.usage.rssBytes / 1048576);
    round.samples.push({
      channel: entry.channel,
      pid: entry.pid,
      cpu_pct: cpu,
      rss_mb: rss,
      start_time: entry.startTime,
    });
    round.rows.push({
      type: 'metric',
      at: round.at,
      channel: entry.channel,
      pid: entry.pid,
      rss_mb: rss,
      cpu_pct: cpu,
      cpu_pct_machine: round2(cpu / this.#cores),
    });
  }

  #publish(round: Round): void {
    if (round.finished) return;
    round.finished = true;
    if (round.timer) clearTimeout(round.timer);
    if (this.#current === round) this.#current = null;
    const duration = round2(performance.now() - round.startedAt);
    for (const entry of round.gone) if (this.#entries.get(entry.channel) === entry) this.#entries.delete(entry.channel);
    this.#onRound({ round: { at: round.at, duration_ms: duration, watched: round.watched }, samples: round.samples });
    for (const row of round.rows) this.#onMetric(row);
    this.#processed += round.rows.length;
    this.#goneReported += round.gone.length;
    this.#lastRoundMs = duration;
    this.#lastRoundAt = round.at;
    round.settle({ status: 'published', duration_ms: duration, samples: round.rows.length });
  }

  #abandon(round: Round, count = true): void {
    if (round.finished) return;
    round.finished = true;
    round.abandoned = true;
    if (round.timer) clearTimeout(round.timer);
    if (this.#current === round) this.#current = null;
    const duration = round2(performance.now() - round.startedAt);
    if (count) {
      this.#roundsAbandoned++;
      this.#warn.warn(
        'round_abandoned',
        { time_box_ms: this.#timeoutMs, watched: round.watched, abandoned: this.#roundsAbandoned },
        'sample round overran its time box and was abandoned',
      );
    }
    round.settle({ status: 'abandoned', duration_ms: duration, samples: 0 });
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

// ---- the actor ------------------------------------------------------------------------------

if (!isMainThread) {
  runActor(async ({ config, log }) => {
    const db = new Link<WriteItem>('sampler', { maxPending: config.limits.maxPendingPerLink });
    let sampler: ProcessSampler | null = null;
    const registry = new Link<never, WatchItem>('sampler', {
      onBatch: (items, ack) => {
        sampler?.apply(items);
        ack(); // applied in full, synchronously: nothing to re-deliver after a restart of ours
      },
    });
    sampler = new ProcessSampler({
      intervalMs: config.sampleIntervalMs,
      timeoutMs: config.sampleTimeoutMs,
      faultDelayMs: config.faults.enabled ? config.faults.samplerDelayMs : 0,
      log,
      onRound: (round) =>
        registry.signal({ round: round.round, samples: toColumns(round.samples) } satisfies SampleRoundSignal),
      onMetric: (row) => db.send(row),
    });
    await sampler.init();
    sampler.start();
    const s = sampler;
    return {
      attach(peer: PeerName, port: MessagePort): void {
        if (peer === 'registry') registry.attach(port);
        else if (peer === 'db') db.attach(port);
        else {
          log.warn({ peer }, 'no link to this peer; port closed');
          port.close();
        }
      },
      stats(): ActorStats {
        const base = s.stats();
        const dbStats = db.stats();
        return { ...base, dropped: dbStats.dropped, detail: { ...base.detail, db_pending: dbStats.pending } };
      },
      // Resolve once the writer has committed the metric rows, so a stop loses none.
      async flush(): Promise<void> {
        await db.drained(config.supervisor.shutdownMs);
      },
      async shutdown(): Promise<void> {
        s.stop();
        await db.drained(config.supervisor.shutdownMs);
      },
    };
  });
}
