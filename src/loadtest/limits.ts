// Open-file limits (read by openFilesLimit in src/proc.ts from /proc/<pid>/limits). Node cannot call
// setrlimit, so the loadtest raises its bot processes' soft limit to the hard one through the shell
// that starts them (`ulimit -S -n`), and checks beforehand that every process involved — each bot
// process and the monitor itself — may open as many sockets as the run needs.

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
