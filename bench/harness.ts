// Pieces the benchmark driver (bench/run.ts) is made of: the monitor and the raw baseline as real
// child processes, their CPU and RSS read from /proc (the same way for both), the llm_usage row
// count, and `kissmon loadtest` run through the real CLI. Every process started here is tracked and
// ended by pid in killAll() (also on exit and SIGINT).
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { controlSocketFor } from '../src/config.js';
import { requestControl } from '../src/http/control-client.js';
import { LAUNCH_ENV, LAUNCH_NODE_FLAGS } from '../src/launch-settings.js';
import { CLOCK_TICKS_PER_S, readProcStat } from '../src/proc.js';
import type { LoadtestReport } from '../src/loadtest/run.js';
import { vmRssMb, type TestDir } from '../test/helpers/monitor-process.js';
import { waitFor } from '../test/helpers/wait.js';

export const CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url));
const BASELINE = fileURLToPath(new URL('./raw-baseline.js', import.meta.url));

const started = new Set<ChildProcess>();

export function killAll(): void {
  for (const child of started) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    try {
      process.kill(child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}
process.on('exit', killAll);

function track(child: ChildProcess): Promise<number | null> {
  started.add(child);
  return new Promise((resolve) =>
    child.once('exit', (code) => {
      started.delete(child);
      resolve(code);
    }),
  );
}

/** A server under test: the monitor or the raw baseline. */
export interface Server {
  name: string;
  pid: number;
  socket: string;
  db: string;
  stop(): Promise<void>;
}

/**
 * `kissmon start` as a child process, launched as bin/kissmon.js launches it (src/launch-settings.ts),
 * so the bench measures the product; `cpuProfDir` runs it under `node --cpu-prof` (every thread).
 */
export async function startMonitor(
  dir: TestDir,
  args: string[] = [],
  cpuProfDir?: string,
  /** Another build's CLI (e.g. a copy of dist from before a change), for before/after runs. */
  cli = CLI,
): Promise<Server & { control: string }> {
  const nodeArgs = [...LAUNCH_NODE_FLAGS, ...(cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', cpuProfDir] : [])];
  const child = spawn(
    process.execPath,
    [...nodeArgs, cli, 'start', '--socket', dir.socket, '--db', dir.db, '--log-level', 'warn', ...args],
    { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...LAUNCH_ENV } },
  );
  const exited = track(child);
  const control = controlSocketFor(dir.socket);
  const answered = await waitFor(
    'the monitor to answer',
    () => (child.exitCode !== null ? 'exited' : requestControl(control, 'GET', '/status', 1_000).then(() => 'up')),
    90_000, // on the shared 2-core box at load average 30+ a start took over 30 s
    100,
  );
  if (answered === 'exited') throw new Error(`monitor exited with ${child.exitCode} during start-up`);
  return {
    name: 'monitor',
    pid: child.pid!,
    socket: dir.socket,
    db: dir.db,
    control,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

export async function startBaseline(dir: TestDir): Promise<Server> {
  const child = spawn(process.execPath, [BASELINE, dir.socket, dir.db], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = track(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (c: Buffer) => c.toString().includes('ready') && resolve());
    void exited.then((code) => reject(new Error(`raw baseline exited with ${code}`)));
  });
  return {
    name: 'raw baseline',
    pid: child.pid!,
    socket: dir.socket,
    db: dir.db,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** CPU time (all threads, user + system, ms) and RSS (MB) of a process, from /proc. */
export function procStats(pid: number): { cpuMs: number; rssMb: number } {
  const stat = readProcStat(pid);
  if (typeof stat !== 'object') throw new Error(`cannot read /proc/${pid}/stat (${stat})`);
  return { cpuMs: ((stat.utimeTicks + stat.stimeTicks) * 1000) / CLOCK_TICKS_PER_S, rssMb: vmRssMb(pid) };
}

/** Rows in llm_usage so far (max rowid: O(log n), no table scan; nothing is ever deleted in a bench). */
export class RowCounter {
  readonly #db: Database.Database;
  readonly #stmt: Database.Statement;
  constructor(path: string) {
    this.#db = new Database(path, { readonly: true, fileMustExist: true });
    this.#db.pragma('busy_timeout = 5000');
    this.#stmt = this.#db.prepare('SELECT coalesce(max(rowid), 0) AS n FROM llm_usage');
  }
  count(): number {
    return (this.#stmt.get() as { n: number }).n;
  }
  close(): void {
    this.#db.close();
  }
}

/** `kissmon loadtest … --json` through the real CLI; the exit code is returned, not thrown. */
export async function runLoadtestCli(
  args: string[],
): Promise<{ code: number | null; report: LoadtestReport; command: string }> {
  const child = spawn(process.execPath, [CLI, 'loadtest', ...args, '--json'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = track(child);
  let stdout = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  const code = await exited;
  try {
    return { code, report: JSON.parse(stdout) as LoadtestReport, command: `kissmon loadtest ${args.join(' ')} --json` };
  } catch {
    throw new Error(`kissmon loadtest ${args.join(' ')} exited ${code} without a JSON report: ${stdout}`);
  }
}

/**
 * CPU time of the whole machine and of our own process tree, in clock ticks, so that a measurement
 * can say how much *other* work shared the machine with it. Our tree's CPU is Σ (utime + stime +
 * cutime + cstime) over this process and every live descendant: a descendant that exits and is
 * reaped moves its totals into its parent's cutime/cstime, so nothing is lost or counted twice.
 */
export interface CpuSnapshot {
  at: number;
  machineBusy: number;
  ours: number;
}

export function cpuSnapshot(): CpuSnapshot {
  const at = performance.now();
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  const machineBusy = total - fields[3] - (fields[4] ?? 0); // minus idle and iowait
  const parent = new Map<number, number>();
  const ticks = new Map<number, number>();
  const buf = Buffer.allocUnsafe(4096);
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readProcStat(Number(name), buf);
    if (typeof stat !== 'object') continue; // exited meanwhile
    parent.set(Number(name), stat.ppid);
    ticks.set(Number(name), stat.utimeTicks + stat.stimeTicks + stat.cutimeTicks + stat.cstimeTicks);
  }
  const ourTree = new Set([process.pid]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, ppid] of parent) {
      if (!ourTree.has(pid) && ourTree.has(ppid)) {
        ourTree.add(pid);
        grew = true;
      }
    }
  }
  let ours = 0;
  for (const pid of ourTree) ours += ticks.get(pid) ?? 0;
  return { at, machineBusy, ours };
}

/** Other work on the machine between two snapshots, % of one core. */
export function otherWorkPct(a: CpuSnapshot, b: CpuSnapshot): number {
  const other = b.machineBusy - a.machineBusy - (b.ours - a.ours);
  const seconds = (b.at - a.at) / 1000;
  return Math.max(0, Math.round((other / CLOCK_TICKS_PER_S / Math.max(0.001, seconds)) * 100));
}
