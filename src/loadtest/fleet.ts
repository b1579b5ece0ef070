// The parent side of the loadtest's bot processes: spawns K children (fleet-child.ts) with their
// open-file limit raised, splits the bots and the llm_usage rate between them, sums their counts,
// and ends every one of them by pid — on request, on error, and when this process exits.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { raisedLimitCommand } from './limits.js';
import {
  emptyCounters,
  type ChildConfig,
  type ChildCounters,
  type ChildReport,
  type ParentCommand,
} from './fleet-messages.js';

const CHILD_SCRIPT = fileURLToPath(new URL('./fleet-child.js', import.meta.url));

export type FleetMode = 'persistent' | 'oneshot' | 'mixed';

export interface FleetOptions {
  socket: string;
  prefix: string;
  bots: number;
  mode: FleetMode;
  processes: number;
  heartbeatMs: number;
  /** One pid per bot (index order) instead of the bot processes' own pids. */
  pids?: number[];
  token?: string;
  /** Per process; default 128. */
  oneshotConcurrency?: number;
}

function sum(all: ChildCounters[]): ChildCounters {
  const total = emptyCounters();
  for (const c of all) for (const key of Object.keys(total) as (keyof ChildCounters)[]) total[key] += c[key];
  return total;
}

/** How many persistent and one-shot bots a mode makes of N. */
export function splitMode(bots: number, mode: FleetMode): { persistent: number; oneshot: number } {
  const persistent = mode === 'persistent' ? bots : mode === 'oneshot' ? 0 : Math.ceil(bots / 2);
  return { persistent, oneshot: bots - persistent };
}

/** n split into k near-equal integer parts. */
function shares(n: number, k: number): number[] {
  return Array.from({ length: k }, (_, i) => Math.floor(n / k) + (i < n % k ? 1 : 0));
}

type Phase = Exclude<ChildReport['type'], 'progress' | 'ready'>;

class BotProcess {
  readonly child: ChildProcess;
  readonly bots: number;
  counters: ChildCounters = emptyCounters();
  openFilesLimit: number | null = null;
  failedBots: number[] = [];
  readonly #seen = new Set<ChildReport['type']>();
  readonly #waiters = new Map<ChildReport['type'], { resolve: () => void; reject: (err: Error) => void }[]>();
  #exitError: Error | null = null;

  constructor(config: ChildConfig) {
    this.bots = config.persistent + config.oneshot;
    this.child = spawn('sh', ['-c', raisedLimitCommand(), process.execPath, CHILD_SCRIPT], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    this.child.stdin!.on('error', () => {}); // a child that died: its exit is reported, not EPIPE
    this.child.stdin!.write(`${JSON.stringify(config)}\n`);
    let text = '';
    this.child.stdout!.setEncoding('utf8');
    this.child.stdout!.on('data', (chunk: string) => {
      text += chunk;
      let nl: number;
      while ((nl = text.indexOf('\n')) !== -1) {
        const line = text.slice(0, nl);
        text = text.slice(nl + 1);
        if (line) this.#onReport(JSON.parse(line) as ChildReport);
      }
    });
    this.child.once('exit', (code, signal) => {
      if (!this.#seen.has('ended'))
        this.#exitError = new Error(
          `loadtest bot process ${this.child.pid} exited (${signal ?? `code ${code}`}) before it was told to`,
        );
      for (const [, list] of this.#waiters)
        for (const w of list) w.reject(this.#exitError ?? new Error('bot process ended'));
      this.#waiters.clear();
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  send(cmd: ParentCommand): void {
    if (!this.exited) this.child.stdin!.write(`${JSON.stringify(cmd)}\n`);
  }

  wait(t: ChildReport['type']): Promise<void> {
    if (this.#seen.has(t)) return Promise.resolve();
    if (this.#exitError) return Promise.reject(this.#exitError);
    return new Promise((resolve, reject) => {
      const list = this.#waiters.get(t) ?? [];
      list.push({ resolve, reject });
      this.#waiters.set(t, list);
    });
  }

  /** Phases that happen more than once (burst) are waited for afresh. */
  forget(t: Phase): void {
    this.#seen.delete(t);
  }

  #onReport(report: ChildReport): void {
    if (report.type === 'ready') this.openFilesLimit = report.open_files_limit;
    else this.counters = report.counters;
    if (report.type === 'ended') this.failedBots = report.failed_bots;
    this.#seen.add(report.type);
    for (const w of this.#waiters.get(report.type) ?? []) w.resolve();
    this.#waiters.delete(report.type);
  }
}

/** Resolves with the promise's value, or with `onTimeout` after ms. */
async function within<T>(promise: Promise<T>, ms: number, onTimeout: () => T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<T>((resolve, reject) => {
      timer = setTimeout(() => {
        try {
          resolve(onTimeout());
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      }, ms);
    });
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export class Fleet {
  readonly #processes: BotProcess[];
  readonly #killOnExit = () => this.kill();

  private constructor(processes: BotProcess[]) {
    this.#processes = processes;
    process.on('exit', this.#killOnExit);
  }

  /** Spawns the bot processes and waits until each has read its config (they then start connecting). */
  static async start(options: FleetOptions): Promise<Fleet> {
    const k = Math.max(1, Math.min(options.processes, options.bots));
    const { persistent, oneshot } = splitMode(options.bots, options.mode);
    const persistentShares = shares(persistent, k);
    const oneshotShares = shares(oneshot, k);
    const processes: BotProcess[] = [];
    let firstIndex = 0;
    for (let i = 0; i < k; i++) {
      const count = persistentShares[i] + oneshotShares[i];
      processes.push(
        new BotProcess({
          socket: options.socket,
          prefix: options.prefix,
          firstIndex,
          persistent: persistentShares[i],
          oneshot: oneshotShares[i],
          heartbeatMs: options.heartbeatMs,
          pids: options.pids?.slice(firstIndex, firstIndex + count),
          token: options.token,
          oneshotConcurrency: options.oneshotConcurrency ?? 128,
        }),
      );
      firstIndex += count;
    }
    const fleet = new Fleet(processes);
    try {
      await within(Promise.all(processes.map((p) => p.wait('ready'))), 15_000, () => {
        throw new Error('loadtest bot processes did not start within 15 s');
      });
    } catch (err) {
      fleet.kill();
      throw err;
    }
    return fleet;
  }

  get pids(): number[] {
    return this.#processes.map((p) => p.pid);
  }

  /** The lowest open-file limit any bot process got (null when /proc is not there). */
  get openFilesLimit(): number | null {
    const limits = this.#processes.map((p) => p.openFilesLimit).filter((l): l is number => l !== null);
    return limits.length ? Math.min(...limits) : null;
  }

  counters(): ChildCounters {
    return sum(this.#processes.map((p) => p.counters));
  }

  /** True once every bot has connected (persistent) and its register line is written. */
  async waitConnected(timeoutMs: number): Promise<boolean> {
    return within(
      Promise.all(this.#processes.map((p) => p.wait('connected'))).then(() => true),
      timeoutMs,
      () => false,
    );
  }

  /** Starts llm_usage at `rate` lines/s in total, split by each process's share of the bots. */
  llm(rate: number): void {
    const bots = this.#processes.reduce((n, p) => n + p.bots, 0);
    for (const p of this.#processes) p.send({ cmd: 'llm', rate: (rate * p.bots) / bots });
  }

  /** Sends `rows` llm_usage lines as fast as the monitor reads them; resolves once all are written (or failed). */
  async burst(rows: number, timeoutMs: number): Promise<boolean> {
    const parts = shares(rows, this.#processes.length);
    for (const p of this.#processes) p.forget('burst_done');
    this.#processes.forEach((p, i) => p.send({ cmd: 'burst', rows: parts[i] }));
    return within(
      Promise.all(this.#processes.map((p) => p.wait('burst_done'))).then(() => true),
      timeoutMs,
      () => false,
    );
  }

  /** Stops llm_usage; true once every line in flight is written or failed (counts are then final). */
  async stopLlm(timeoutMs: number): Promise<boolean> {
    for (const p of this.#processes) p.send({ cmd: 'stop_llm' });
    return within(
      Promise.all(this.#processes.map((p) => p.wait('llm_stopped'))).then(() => true),
      timeoutMs,
      () => false,
    );
  }

  /**
   * Every bot unregisters and every process exits; after `timeoutMs` the rest are killed by pid.
   * Returns the global indices of bots that had a register or heartbeat fail.
   */
  async end(timeoutMs = 8_000): Promise<number[]> {
    for (const p of this.#processes) p.send({ cmd: 'end' });
    const exits = this.#processes.map((p) =>
      p.exited ? Promise.resolve() : new Promise<void>((resolve) => p.child.once('exit', () => resolve())),
    );
    await within(
      Promise.all(exits).then(() => true),
      timeoutMs,
      () => false,
    );
    this.kill();
    await Promise.all(exits);
    process.off('exit', this.#killOnExit);
    return this.#processes.flatMap((p) => p.failedBots);
  }

  /** SIGKILL every bot process still running, by pid. Synchronous: safe in 'exit' handlers. */
  kill(): void {
    for (const p of this.#processes) {
      if (p.exited) continue;
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}
