// N real, idle processes: `--pid-per-bot` gives each simulated bot one, so the monitor's sampler
// watches N distinct pids as it would for a real fleet (bots that share their bot process's pid
// cost the sampler one read per process, not per bot); the sampler tests and bench use them too.
//
// One `sh` forks N `cat` processes and prints their pids. Each cat reads the pipe on our fd 3 (the
// explicit `<&3` overrides the /dev/null a background job would otherwise get): when this process
// goes away for any reason, SIGKILL included, the pipe closes and every cat exits by itself.
// `kill()` ends them by pid at once.
import { spawn } from 'node:child_process';
import type { Writable } from 'node:stream';

export interface Placeholders {
  pids: number[];
  kill(): Promise<void>;
}

export async function startPlaceholders(n: number): Promise<Placeholders> {
  const sh = spawn(
    'sh',
    [
      '-c',
      'i=0; while [ $i -lt "$1" ]; do cat <&3 >/dev/null & echo $!; i=$((i+1)); done; echo done; wait',
      'sh',
      String(n),
    ],
    {
      stdio: ['ignore', 'pipe', 'inherit', 'pipe'],
    },
  );
  const lifeline = sh.stdio[3] as Writable;
  lifeline.on('error', () => {});
  const pids: number[] = [];
  const killCats = () => {
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  };
  const killAll = () => {
    killCats();
    if (sh.exitCode === null && sh.signalCode === null) sh.kill('SIGKILL');
  };
  process.on('exit', killAll);
  const exited = new Promise<void>((resolve) => sh.once('exit', () => resolve()));
  let text = '';
  try {
    await new Promise<void>((resolve, reject) => {
      sh.once('error', reject);
      sh.once('exit', () =>
        reject(new Error(`the shell starting ${n} placeholder processes exited after ${pids.length}`)),
      );
      sh.stdout!.setEncoding('utf8');
      sh.stdout!.on('data', (chunk: string) => {
        text += chunk;
        let nl: number;
        while ((nl = text.indexOf('\n')) !== -1) {
          const line = text.slice(0, nl);
          text = text.slice(nl + 1);
          if (line === 'done') return resolve();
          pids.push(Number(line));
        }
      });
    });
  } catch (err) {
    killAll();
    process.off('exit', killAll);
    throw err;
  }
  return {
    pids,
    async kill() {
      killCats();
      lifeline.destroy();
      // The shell's `wait` reaps every cat, then it exits; should it not, it is killed too.
      const timer = setTimeout(killAll, 10_000);
      await exited;
      clearTimeout(timer);
      process.off('exit', killAll);
    },
  };
}
