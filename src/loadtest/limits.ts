// Open-file limits, as the OS states them in /proc/<pid>/limits (Linux). Node cannot call
// setrlimit, so the loadtest raises its bot processes' soft limit to the hard one through the shell
// that starts them (`ulimit -S -n`), and checks beforehand that every process involved — each bot
// process and the monitor itself — may open as many sockets as the run needs.
import { readFileSync } from 'node:fs';

export interface OpenFilesLimit {
  soft: number;
  hard: number;
}

/** `Max open files` of a process (ours by default); null when /proc is not there or not readable. */
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

/** Files a process needs besides its sockets: node itself, stdio, pipes, libuv (measured ≈ 20). */
export const FD_OVERHEAD = 64;

/**
 * The shell line that starts `node script` with the soft open-file limit raised to the hard one.
 * `unlimited` hard limits are not valid soft limits for RLIMIT_NOFILE (capped by fs.nr_open): the
 * raise is then skipped and the child reports the limit it really got.
 */
export function raisedLimitCommand(): string {
  return 'h=$(ulimit -H -n); [ "$h" = unlimited ] || ulimit -S -n "$h" 2>/dev/null; exec "$0" "$@"';
}

/** Default bot processes: one per this many bots, at least 2 (so the sampler sees several pids). */
export const BOTS_PER_PROCESS = 2_500;

export function defaultProcesses(bots: number): number {
  return Math.min(bots, Math.max(2, Math.ceil(bots / BOTS_PER_PROCESS)));
}
