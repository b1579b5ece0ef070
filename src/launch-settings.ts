// How the monitor's process is launched: set before node starts, so they reach every thread.
// bin/kissmon.js's shebang carries the same (a shebang cannot import; test/launch-settings.test.ts
// keeps the two equal), and the bench harness launches the monitor with them. Measured in
// docs/PERFORMANCE.md, Findings 9.

/** Node flags; V8's are process-wide, so every worker's isolate is configured with them as well. */
export const LAUNCH_NODE_FLAGS: readonly string[] = [
  // V8's default lets each isolate's young generation grow to 3 × 16 MB under a burst and keep it
  // committed; 2 MB semi-spaces hold it to 6 MB per thread.
  '--max-semi-space-size=2',
];

/** Environment read before main(): glibc's malloc creates its arenas (up to 8 per core) from it. */
export const LAUNCH_ENV: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: '2',
};

/** The shebang line of bin/kissmon.js that applies these settings (env -S: GNU coreutils ≥ 8.30, BSD). */
export function launchShebang(): string {
  const env = Object.entries(LAUNCH_ENV).map(([k, v]) => `${k}=${v}`);
  return `#!/usr/bin/env -S ${[...env, 'node', ...LAUNCH_NODE_FLAGS].join(' ')}`;
}
