// Small synchronous readers of /proc (Linux). The sampler reads process state (zombie?), start time
// (pid reused?), CPU time and RSS from one read of /proc/<pid>/stat (through HeldStatFds); the
// registry reads start times; the loadtest reads open-file limits.
//
// Synchronous on purpose: a pread through a held fd (or one open+pread+close) is cheap
// (docs/PERFORMANCE.md, "Sampler") and done on the sampler's own thread, where async fs would queue
// a hop per syscall on libuv's threadpool, which is shared by every thread of the process (main
// thread and the other actors included).
import { execFile } from 'node:child_process';
import { closeSync, constants, openSync, readdirSync, readFileSync, readSync } from 'node:fs';
import { promisify } from 'node:util';
import type { Logger } from './log.js';

/** USER_HZ: the unit of the tick counts in /proc/<pid>/stat on Linux (100 on every common architecture). */
export const CLOCK_TICKS_PER_S = 100;

/** The units of /proc/<pid>/stat: clock ticks per second and bytes per page. */
export interface ProcUnits {
  ticksPerS: number;
  pageBytes: number;
}

/** Reads the units from `getconf CLK_TCK` and `getconf PAGESIZE`, as pidusage does; a failure falls back (logged). */
export async function procUnits(log: Pick<Logger, 'warn'>): Promise<ProcUnits> {
  const conf = async (name: string, fallback: number): Promise<number> => {
    try {
      const value = Number((await promisify(execFile)('getconf', [name], { timeout: 5_000 })).stdout.trim());
      if (Number.isSafeInteger(value) && value > 0) return value;
      log.warn({ name, value }, 'getconf gave no usable value: using the common default');
    } catch (err) {
      log.warn({ name, err: String(err) }, 'getconf failed: using the common default');
    }
    return fallback;
  };
  return { ticksPerS: await conf('CLK_TCK', CLOCK_TICKS_PER_S), pageBytes: await conf('PAGESIZE', 4096) };
}

export interface ProcStat {
  /** Field 3: R running, S sleeping, D disk sleep, Z zombie, T stopped, X dead, … */
  state: string;
  /** Field 4. */
  ppid: number;
  /** Field 22: start time in clock ticks since boot; with the pid, it names one process for good. */
  startTime: number;
  /** Fields 14 and 15, in clock ticks. */
  utimeTicks: number;
  stimeTicks: number;
  /** Fields 16 and 17: CPU of children that exited and were reaped, in clock ticks. */
  cutimeTicks: number;
  cstimeTicks: number;
  /** Field 24, in pages. */
  rssPages: number;
}

/** `gone`: no such process (ENOENT, or ESRCH through an fd whose process has exited). `error`: any other failure — "no data", not "gone". */
export type StatRead = ProcStat | 'gone' | 'error';

const STAT_BYTES = 4096; // a stat line is ~300 bytes; comm is at most 64 bytes even for kernel threads

/** True when /proc/<pid>/stat can be read for this process (Linux, /proc mounted). */
export function procAvailable(): boolean {
  return typeof readProcStat(process.pid) === 'object';
}

/** The path of a pid's stat file; the sampler builds it once per watched pid, not once per read. */
export function statPath(pid: number): string {
  return `/proc/${pid}/stat`;
}

/**
 * Opens /proc/<pid>/stat. The fd stays bound to that process: after it exits, reads fail with ESRCH
 * even if the pid is reused. `fd_limit`: EMFILE/ENFILE, the process (or the system) has no fd to spare.
 */
export function openStat(path: string): number | 'gone' | 'error' | 'fd_limit' {
  try {
    // The numeric flag skips fs's flag-string parsing (O_RDONLY is 0 on every platform with /proc).
    return openSync(path, constants.O_RDONLY);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException)?.code;
    if (code === 'EMFILE' || code === 'ENFILE') return 'fd_limit';
    return isGone(err) ? 'gone' : 'error';
  }
}

/** Reads and parses the stat line through an fd from `openStat` (pread at offset 0: the kernel renders it afresh). */
export function readStat(fd: number, buf: Buffer): StatRead {
  let n: number;
  try {
    n = readSync(fd, buf, 0, buf.length, 0);
  } catch (err) {
    return isGone(err) ? 'gone' : 'error';
  }
  return parseStat(buf, n) ?? 'error';
}

/** open + pread + close of one stat file, by pid or by a path from `statPath`: no fd outlives the call. */
export function readProcStat(pid: number | string, buf: Buffer = Buffer.allocUnsafe(STAT_BYTES)): StatRead {
  const fd = openStat(typeof pid === 'number' ? statPath(pid) : pid);
  if (typeof fd !== 'number') return fd === 'gone' ? 'gone' : 'error';
  try {
    return readStat(fd, buf);
  } finally {
    closeSync(fd);
  }
}

export interface OpenFilesLimit {
  soft: number;
  hard: number;
}

/** `Max open files` of a process (ours by default; Node raises its soft limit to the hard one at start-up); null when /proc is not there or not readable. */
export function openFilesLimit(pid: number | 'self' = 'self'): OpenFilesLimit | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/limits`, 'utf8');
  } catch {
    return null;
  }
  const match = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text);
  if (!match) return null;
  const value = (s: string) => (s === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(s));
  return { soft: value(match[1]), hard: value(match[2]) };
}

/** Fds open in this process, every thread's (readdir of /proc/self/fd, less its own fd): ~1 µs per fd. */
export function countOpenFds(): number {
  return readdirSync('/proc/self/fd').length - 1;
}

/** Rounds between two counts of the process's fds (the budget of held fds) when no count is due sooner. */
const BUDGET_RECOUNT_ROUNDS = 10;

/**
 * One fd held open per sampled pid on /proc/<pid>/stat, re-read each round with a pread at offset 0
 * (the kernel renders the line afresh): one syscall per pid instead of open + pread + close.
 *
 * Fd budget. Held fds count against the process's RLIMIT_NOFILE, which the main thread's bot
 * connections share, and connections come first: held fds never take the process above
 * `limit - reserve` (reserve: a quarter of the limit, at least 1,024). The process's fds are counted
 * (/proc/self/fd, ~1 µs per fd) before the first round, every BUDGET_RECOUNT_ROUNDS rounds, and
 * when half a reserve has been opened since the last count while more was free; fds over the budget
 * are closed. Pids without a held fd are read by open + pread + close. EMFILE/ENFILE on an open
 * releases every held fd (`limitHits`), and nothing is held again until the next scheduled count.
 */
export class HeldStatFds {
  readonly #fds = new Map<number, number>();
  readonly #limit: number | null;
  readonly #reserve: number;
  /** Fds that may be opened and held before the next count. */
  #allowance = 0;
  /** The last count found more free than the allowance it gave. */
  #moreFree = false;
  #roundsSinceCount = Infinity;
  #limitHits = 0;

  /** `limit`: the soft RLIMIT_NOFILE; null (unknown): no fd is held. */
  constructor(limit: number | null = openFilesLimit()?.soft ?? null) {
    this.#limit = limit;
    this.#reserve = limit === null ? 0 : Math.max(1024, Math.floor(limit / 4));
  }

  get held(): number {
    return this.#fds.size;
  }

  /** EMFILE/ENFILE met while opening (each released every held fd). */
  get limitHits(): number {
    return this.#limitHits;
  }

  /** Before a round: closes the fds of pids not in `pids`, and counts the budget when due. */
  beginRound(pids: { has(pid: number): boolean }): void {
    for (const [pid, fd] of this.#fds)
      if (!pids.has(pid)) {
        closeSync(fd);
        this.#fds.delete(pid);
      }
    this.#roundsSinceCount++;
    const due = this.#roundsSinceCount >= BUDGET_RECOUNT_ROUNDS || (this.#allowance === 0 && this.#moreFree);
    if (!due || this.#limit === null) return;
    this.#roundsSinceCount = 0;
    let free = this.#limit - this.#reserve - countOpenFds();
    for (const [pid, fd] of this.#fds) {
      if (free >= 0) break;
      // Over budget (the connections grew): give fds back; those pids are read by path again.
      closeSync(fd);
      this.#fds.delete(pid);
      free++;
    }
    const step = Math.floor(this.#reserve / 2);
    this.#allowance = Math.max(0, Math.min(free, step));
    this.#moreFree = free > step;
  }

  /** The stat line of `pid` (`path`: its statPath) through its held fd, or opened now — and held while the budget allows. */
  read(pid: number, path: string, buf: Buffer): StatRead {
    const held = this.#fds.get(pid);
    if (held !== undefined) {
      const stat = readStat(held, buf);
      if (stat !== 'gone') return stat;
      // ESRCH: the process this fd is bound to has exited. The pid may name a new process by now:
      // read it by path, as a pid seen for the first time, so pid reuse is judged by start time.
      closeSync(held);
      this.#fds.delete(pid);
    }
    if (this.#allowance <= 0) return readProcStat(path, buf);
    const fd = openStat(path);
    if (fd === 'fd_limit') {
      this.#release();
      return readProcStat(path, buf); // with the held fds given back, one open + close fits
    }
    if (typeof fd !== 'number') return fd;
    const stat = readStat(fd, buf);
    if (typeof stat === 'object') {
      this.#fds.set(pid, fd);
      this.#allowance--;
    } else closeSync(fd);
    return stat;
  }

  /** Closes every held fd. */
  closeAll(): void {
    for (const fd of this.#fds.values()) closeSync(fd);
    this.#fds.clear();
  }

  #release(): void {
    this.#limitHits++;
    this.closeAll();
    this.#allowance = 0;
    this.#moreFree = false;
    this.#roundsSinceCount = 0;
  }
}

const CLOSE_PAREN = 0x29;
const SPACE = 0x20;
const NEWLINE = 0x0a;
const MINUS = 0x2d;
const DIGIT_0 = 0x30;

/**
 * Parses the first `length` bytes of `buf` as a /proc/<pid>/stat line. Field 2 (comm) is in
 * parentheses and may itself contain spaces and parentheses ("(my (bot) 1)"), so fields are
 * counted from the LAST ')': after it come a space, field 3 (state), then numbers.
 *
 * Straight from the bytes: decoding the line and splitting it into ~50 strings cost ~5 µs per pid,
 * a third of a whole round at 10,000 pids (docs/PERFORMANCE.md, "Sampler").
 */
export function parseStat(buf: Buffer, length: number): ProcStat | null {
  const close = buf.lastIndexOf(CLOSE_PAREN, length - 1);
  if (close < 0 || close + 4 >= length || buf[close + 1] !== SPACE || buf[close + 3] !== SPACE) return null;
  const state = String.fromCharCode(buf[close + 2]);
  let ppid = 0;
  let utime = 0;
  let stime = 0;
  let cutime = 0;
  let cstime = 0;
  let start = 0;
  let field = 4;
  let value = 0;
  let negative = false;
  let digits = 0;
  for (let i = close + 4; i < length; i++) {
    const c = buf[i];
    if (c === SPACE || c === NEWLINE) {
      if (digits === 0) return null;
      if (negative) value = -value;
      switch (field) {
        case 4:
          ppid = value;
          break;
        case 14:
          utime = value;
          break;
        case 15:
          stime = value;
          break;
        case 16:
          cutime = value;
          break;
        case 17:
          cstime = value;
          break;
        case 22:
          start = value;
          break;
        case 24:
          // The last field we need: the rest of the line is not looked at.
          return Number.isSafeInteger(start) && state !== ' '
            ? {
                state,
                ppid,
                startTime: start,
                utimeTicks: utime,
                stimeTicks: stime,
                cutimeTicks: cutime,
                cstimeTicks: cstime,
                rssPages: value,
              }
            : null;
      }
      field++;
      value = 0;
      negative = false;
      digits = 0;
    } else if (c === MINUS && digits === 0 && !negative)
      negative = true; // priority and nice may be negative
    else {
      const d = c - DIGIT_0;
      if (d < 0 || d > 9) return null;
      value = value * 10 + d;
      digits++;
    }
  }
  return null; // cut short before field 24
}

/** Zombie (exited, not yet reaped by its parent) or dead: the process is over, whatever pidusage says. */
export function hasExited(state: string): boolean {
  return state === 'Z' || state === 'X' || state === 'x';
}

function isGone(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException)?.code;
  return code === 'ENOENT' || code === 'ESRCH';
}

const SCRATCH = Buffer.allocUnsafe(STAT_BYTES);

/**
 * Which process has this pid now: its start time (field 22); 'gone' when none does or it is a
 * zombie; null when one runs but /proc cannot say which (no /proc, hidepid): then kill(pid, 0).
 */
export function processStartTime(pid: number): number | 'gone' | null {
  const stat = readProcStat(pid, SCRATCH);
  if (stat === 'gone') return 'gone';
  if (stat === 'error') return pidAlive(pid) ? null : 'gone';
  return hasExited(stat.state) ? 'gone' : stat.startTime;
}

/** kill(pid, 0): does a process with this pid exist (EPERM: yes, owned by someone else)? */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
