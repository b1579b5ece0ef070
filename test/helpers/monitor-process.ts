// Test fixtures with real parts: a real monitor as a child process (the same CLI users run), real
// Unix sockets in a temp dir, bots as real child processes. Everything started here is tracked and
// ended by pid in `killStarted()`. Waiting: ./wait.ts; resources a test needs: ./resources.ts.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { adminSocketFor, controlSocketFor } from '../../src/config.js';
import { requestControl } from '../../src/http/control-client.js';
import type { HealthReport } from '../../src/monitor.js';
import { CLOCK_TICKS_PER_S, readProcStat } from '../../src/proc.js';
import type { BotSnapshot } from '../../src/actors/registry-messages.js';
import { withOpenFiles } from './resources.js';
import { waitFor } from './wait.js';

// The one waitFor/sleep, re-exported here because most tests import everything from this module.
export { sleep, waitFor } from './wait.js';

export const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
/** The installed entry point: executed as a file, its shebang applies the launch settings (src/launch-settings.ts). */
export const BIN = fileURLToPath(new URL('../../../bin/kissmon.js', import.meta.url));
export const BOT_FIXTURE = fileURLToPath(new URL('../fixtures/bot.js', import.meta.url));

export class TestDir {
  readonly path = mkdtempSync(join(tmpdir(), 'kissmon-'));
  readonly socket = join(this.path, 'm.sock');
  readonly db = join(this.path, 'm.db');
  remove(): void {
    rmSync(this.path, { recursive: true, force: true });
  }
}

/** Temp dirs for a suite that needs a fresh one per test: `create()` in the test, `removeAll()` in `after`. */
export class TestDirs {
  readonly #dirs: TestDir[] = [];
  create(): TestDir {
    const dir = new TestDir();
    this.#dirs.push(dir);
    return dir;
  }
  removeAll(): void {
    for (const dir of this.#dirs.splice(0)) dir.remove();
  }
}

export interface MonitorProcess {
  child: ChildProcess;
  pid: number;
  socket: string;
  control: string;
  /** The admin socket (flush, latency reset, faults). */
  admin: string;
  db: string;
  /** Everything the monitor printed (pino JSON lines). */
  output: () => string;
  exited: Promise<number | null>;
}

const started = new Set<ChildProcess>();

export interface StartOptions {
  /** Environment of the monitor (default: this process's). */
  env?: NodeJS.ProcessEnv;
  /** false: no --socket/--db flags (a config file or env names dir.socket and dir.db instead). */
  pathFlags?: boolean;
  /** 'unread': stdout is a pipe nobody reads (a wedged journald); output() then has stderr only. */
  stdout?: 'read' | 'unread';
  /** Raise the monitor's soft open-file limit to this (check `openFilesMissing` first). */
  openFiles?: number;
  /** How long to wait for the control API (default 60 s, for a loaded box; a spool replay takes longer). */
  readyTimeoutMs?: number;
  /** 'bin': execute bin/kissmon.js as a file, as npm's bin link and the systemd unit do (default: `node` + the CLI). */
  launch?: 'bin';
}

/** Runs `kissmon start` and waits until its control API answers. */
export async function startMonitor(
  dir: TestDir,
  args: string[] = [],
  options: StartOptions = {},
): Promise<MonitorProcess> {
  const paths = options.pathFlags === false ? [] : ['--socket', dir.socket, '--db', dir.db];
  const [command, entry] = options.launch === 'bin' ? [BIN, []] : [process.execPath, [CLI]];
  const argv = [...entry, 'start', ...paths, '--log-level', 'info', ...args];
  const run = options.openFiles ? withOpenFiles(options.openFiles, command, argv) : { command, args: argv };
  const child = spawn(run.command, run.args, { stdio: ['ignore', 'pipe', 'pipe'], env: options.env ?? process.env });
  started.add(child);
  let output = '';
  if (options.stdout === 'unread') child.stdout.pause();
  else child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      started.delete(child);
      resolve(code);
    }),
  );
  const control = controlSocketFor(dir.socket);
  const early = exited.then((code) => {
    throw new Error(`monitor exited with ${code} during start-up:\n${output}`);
  });
  await Promise.race([
    waitFor(
      'monitor control socket',
      () => requestControl(control, 'GET', '/status').then(() => true),
      options.readyTimeoutMs ?? 60_000,
    ),
    early,
  ]);
  early.catch(() => {});
  return {
    child,
    pid: child.pid!,
    socket: dir.socket,
    control,
    admin: adminSocketFor(dir.socket),
    db: dir.db,
    output: () => output,
    exited,
  };
}

/** Runs `kissmon ARGS` to completion (a client command, a bad usage, --print-config). */
export function runKissmon(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    started.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('exit', (code) => {
      started.delete(child);
      resolve({ code, stdout, stderr });
    });
  });
}

/** SIGTERM and wait for exit; returns the exit code. */
export async function stopMonitor(m: MonitorProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  if (m.child.exitCode !== null || m.child.signalCode !== null) return m.child.exitCode;
  m.child.kill(signal);
  return m.exited;
}

export interface BotProcess {
  child: ChildProcess;
  pid: number;
  exited: Promise<number | null>;
}

/**
 * A bot as a real process (test/fixtures/bot.ts): registers `channel` with its own pid over one
 * persistent connection and heartbeats every `heartbeatMs`. SIGSTOP it to make it hang; SIGTERM to
 * make it unregister and exit; SIGKILL to make it vanish.
 */
export function startBot(socket: string, channel: string, heartbeatMs = 200, extra: string[] = []): BotProcess {
  return startProcess([BOT_FIXTURE, socket, channel, String(heartbeatMs), ...extra]);
}

/** `node ...args` as a child that `killStarted()` ends. */
export function startProcess(args: string[]): BotProcess {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  started.add(child);
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      started.delete(child);
      resolve(code);
    }),
  );
  return { child, pid: child.pid!, exited };
}

/** Ends every process this module started (by pid), SIGCONT first in case a test stopped it. */
export async function killStarted(): Promise<void> {
  const waits: Promise<unknown>[] = [];
  for (const child of started) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    waits.push(new Promise((r) => child.once('exit', r)));
    try {
      process.kill(child.pid!, 'SIGCONT');
      process.kill(child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await Promise.all(waits);
}

/** Sends lines over one connection (persistent style) and closes it after they are written. */
export function sendLines(socket: string, lines: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const conn = net.connect(socket, () => {
      conn.end(lines.map((l) => `${l}\n`).join(''), () => resolve());
    });
    conn.on('error', reject);
  });
}

/** One connection per message, as the old Python bots do. */
export async function sendOneShot(socket: string, line: string): Promise<void> {
  await sendLines(socket, [line]);
}

export async function status(m: Pick<MonitorProcess, 'control'>): Promise<BotSnapshot[]> {
  return requestControl<BotSnapshot[]>(m.control, 'GET', '/status');
}

export async function botStatus(m: Pick<MonitorProcess, 'control'>, channel: string): Promise<BotSnapshot | undefined> {
  return (await status(m)).find((b) => b.channel === channel);
}

/** One actor's entry in GET /health. */
export async function actorHealth(m: Pick<MonitorProcess, 'control'>, actor: string): Promise<HealthReport[number]> {
  const { actors } = await requestControl<{ actors: HealthReport }>(m.control, 'GET', '/health');
  const health = actors.find((a) => a.actor === actor);
  if (!health) throw new Error(`no actor ${actor} in /health`);
  return health;
}

/** Asks the monitor to commit everything it has received so far. */
export async function flush(m: Pick<MonitorProcess, 'admin'>): Promise<void> {
  const { flushed } = await requestControl<{ flushed: boolean }>(m.admin, 'POST', '/flush', 20_000);
  if (!flushed) throw new Error('monitor could not flush');
}

/** A read-only look at the monitor's database. */
export function query<T = Record<string, unknown>>(dbPath: string, sql: string, ...params: unknown[]): T[] {
  const db = new Database(dbPath, { readonly: true });
  try {
    db.pragma('busy_timeout = 5000');
    return db.prepare(sql).all(...params) as T[];
  } finally {
    db.close();
  }
}

/** Another connection holding the database's SQLite write lock (BEGIN IMMEDIATE) until `release()`. */
export function lockDatabase(dbPath: string): { release(): void } {
  const locker = new Database(dbPath);
  locker.exec('BEGIN IMMEDIATE');
  return {
    release() {
      if (!locker.open) return;
      locker.exec('ROLLBACK');
      locker.close();
    },
  };
}

export function line(obj: Record<string, unknown>): string {
  return JSON.stringify(obj);
}

/**
 * An independent CPU figure for a process, from its own /proc/<pid>/stat ticks: call the result
 * to get the % of one core it used since the meter was made (the unit of `cpu_pct`). Lets a test
 * check the sampler against what the process really got on this box, busy or not.
 */
export function cpuMeter(pid: number): () => number {
  const ticks = () => {
    const stat = readProcStat(pid);
    if (typeof stat !== 'object') throw new Error(`pid ${pid}: ${stat}`);
    return stat.utimeTicks + stat.stimeTicks;
  };
  const t0 = performance.now();
  const ticks0 = ticks();
  return () => (((ticks() - ticks0) / CLOCK_TICKS_PER_S) * 100_000) / (performance.now() - t0);
}

/** Resident memory of a process in MiB, all threads, as `ps` shows it (VmRSS in /proc/<pid>/status). */
export function vmRssMb(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Math.round(Number(match[1]) / 1024);
}

/**
 * One number from an actor's health detail: the sampler's `rounds` (its own clock, for "N rounds
 * later" waits), the registry's `pauses_detected`, …
 */
export async function actorDetail(m: Pick<MonitorProcess, 'control'>, actor: string, key: string): Promise<number> {
  const { actors } = await requestControl<{ actors: { actor: string; detail: Record<string, unknown> }[] }>(
    m.control,
    'GET',
    '/health',
  );
  return Number(actors.find((a) => a.actor === actor)?.detail[key] ?? 0);
}
