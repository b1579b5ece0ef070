// N real, idle processes for sampler tests and benchmarks: `sleep`s forked by one shell.
import { spawn, type ChildProcess } from 'node:child_process';

/** N sleeping processes (pids read from the shell's output); `kill()` ends every one by pid and waits for the shell that reaps them. */
export async function spawnSleepers(n: number): Promise<{ pids: number[]; kill(): Promise<void> }> {
  const sh: ChildProcess = spawn('sh', ['-c', `i=0; while [ $i -lt ${n} ]; do sleep 3600 & echo $!; i=$((i+1)); done; echo done; wait`], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const pids: number[] = [];
  const killAll = () => {
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    if (sh.exitCode === null) sh.kill('SIGKILL');
  };
  process.on('exit', killAll);
  const exited = new Promise<void>((resolve) => sh.once('exit', () => resolve()));
  let text = '';
  await new Promise<void>((resolve, reject) => {
    sh.once('error', reject);
    sh.once('exit', () => reject(new Error('the sleeper shell exited early')));
    sh.stdout!.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      let nl: number;
      while ((nl = text.indexOf('\n')) >= 0) {
        const line = text.slice(0, nl);
        text = text.slice(nl + 1);
        if (line === 'done') return resolve();
        pids.push(Number(line));
      }
    });
  });
  return {
    pids,
    async kill() {
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await exited; // the shell's `wait` reaps every sleeper, then it exits
      process.off('exit', killAll);
    },
  };
}

