// Waiting in tests: on an observable condition with a deadline, never a fixed sleep before an
// assert. `sleep` is for pacing a stimulus (a drip, a retry), not for "long enough".
import { readProcStat } from '../../src/proc.js';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

type Truthy<T> = Exclude<T, false | null | undefined | 0 | ''>;

/**
 * Polls `fn` until it returns a truthy value or `timeoutMs` passes (then throws with `what`). A
 * deadline, not a bound: generous by default, so a loaded box only makes a passing test slower.
 */
export async function waitFor<T>(
  what: string,
  fn: () => T | Promise<T>,
  timeoutMs = 20_000,
  everyMs = 50,
): Promise<Truthy<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value as Truthy<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`,
      );
    await sleep(everyMs);
  }
}

/** SIGSTOPs `pid` and resolves once the kernel shows it stopped (state T), not just signalled. */
export async function stopProcess(pid: number): Promise<void> {
  process.kill(pid, 'SIGSTOP');
  await waitFor(
    `pid ${pid} stopped`,
    () => {
      const stat = readProcStat(pid);
      return typeof stat === 'object' && stat.state === 'T';
    },
    10_000,
    5,
  );
}
