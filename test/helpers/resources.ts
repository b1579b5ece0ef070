// Tests that need something beyond Node (python3, rustc/cargo, go, chromium, PostgreSQL, many file
// descriptors) check it themselves with `requireResource`: present → the test runs; missing → under
// CI=true the test fails loudly (a CI box must provide it), elsewhere it is skipped with the reason
// in the test output. Never a silent pass, never a failure that only says "ENOENT".
import { spawnSync } from 'node:child_process';
import { readdirSync, readlinkSync } from 'node:fs';
import type { TestContext } from 'node:test';
import { openFilesLimit } from '../../src/proc.js';

/**
 * `missing` says why `resource` is not available here (undefined: it is). Returns true when the
 * test may go on; false after marking it skipped — the caller returns at once. `optional`: a thing
 * the CI machine does not promise (go), skipped visibly even under CI.
 */
export function requireResource(
  t: TestContext,
  resource: string,
  missing: string | undefined,
  options: { optional?: boolean } = {},
): boolean {
  if (missing === undefined) return true;
  const message = `needs ${resource}: ${missing}`;
  if (process.env.CI === 'true' && !options.optional)
    throw new Error(`${message} (CI=true: the CI machine must provide it)`);
  t.skip(message);
  return false;
}

/** Why `command args` cannot run here, or undefined when it runs and exits 0. */
export function commandMissing(command: string, args: string[] = ['--version']): string | undefined {
  const r = spawnSync(command, args, { stdio: 'ignore', timeout: 60_000 });
  if (r.error) return `${command} cannot be run (${(r.error as NodeJS.ErrnoException).code ?? r.error.message})`;
  if (r.status !== 0) return `\`${command} ${args.join(' ')}\` exited with ${r.status ?? r.signal}`;
  return undefined;
}

/** This process's open-file limits (ulimit -n / ulimit -Hn); Infinity when /proc cannot say. */
export function openFileLimits(): { soft: number; hard: number } {
  return openFilesLimit() ?? { soft: Infinity, hard: Infinity };
}

/**
 * Why a child cannot get `n` open files, or undefined. A child started through `withOpenFiles`
 * raises its soft limit itself, so only the hard limit counts.
 */
export function openFilesMissing(n: number): string | undefined {
  const { hard } = openFileLimits();
  return hard >= n
    ? undefined
    : `the hard limit (ulimit -Hn) is ${hard}; raise it (e.g. LimitNOFILE= for the CI service)`;
}

/**
 * The command line that runs `command args` with its soft open-file limit raised to `n` (which
 * must not exceed the hard limit: check `openFilesMissing` first). Node cannot call setrlimit,
 * so the shell does it and then execs the command: the pid stays the command's.
 */
export function withOpenFiles(n: number, command: string, args: string[]): { command: string; args: string[] } {
  if (openFileLimits().soft >= n) return { command, args };
  return { command: '/bin/sh', args: ['-c', `ulimit -n ${n} && exec "$0" "$@"`, command, ...args] };
}

/** The fds of this process (every thread's) open on a /proc/<pid>/stat, by pid. */
export function procStatFds(): Map<number, number[]> {
  const byPid = new Map<number, number[]>();
  for (const fd of readdirSync('/proc/self/fd')) {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // the fd of readdirSync itself, or one closed meanwhile
    }
    const match = /^\/proc\/(\d+)\/stat$/.exec(target);
    if (!match) continue;
    const pid = Number(match[1]);
    byPid.set(pid, [...(byPid.get(pid) ?? []), Number(fd)]);
  }
  return byPid;
}
