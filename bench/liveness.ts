// Time to detect and to restart a hung actor, as an operator sees it through GET /health:
//
//   node dist/bench/liveness.js [--repeats 3] [--bots 200]
//
// A monitor with the default liveness settings (ping every 1 s, hung after 5 s) runs under a
// `kissmon loadtest`; each actor is hung `repeats` times with POST /fault/hang while /health is
// polled every 20 ms. detected = health no longer says "not answering" (the supervisor declared it
// hung and is terminating it); ready = up again with one more restart. The loadtest's own checks
// (rows lost, false stale) come last.
import { adminSocketFor } from '../src/config.js';
import { requestControl } from '../src/http/control-client.js';
import type { HealthReport } from '../src/monitor.js';
import { TestDir } from '../test/helpers/monitor-process.js';
import { sleep } from '../test/helpers/wait.js';
import { runLoadtestCli, startMonitor } from './harness.js';

const args = process.argv.slice(2);
const argValue = (flag: string, fallback: number) => {
  const i = args.indexOf(flag);
  return i === -1 ? fallback : Number(args[i + 1]);
};
const repeats = argValue('--repeats', 3);
const bots = argValue('--bots', 200);
const ACTORS = ['registry', 'db', 'sampler'] as const;

for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130)); // 'exit' kills every child by pid

const dir = new TestDir();
const monitor = await startMonitor(dir, ['--enable-faults', '--stale-after', '10']);
const health = async (actor: string) => {
  const { actors } = await requestControl<{ actors: HealthReport }>(monitor.control, 'GET', '/health');
  return actors.find((a) => a.actor === actor)!;
};
async function until<T>(what: string, fn: () => Promise<T | false>, timeoutMs: number): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== false) return value;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

try {
  // Long enough for every drill plus the pauses between them.
  const durationS = ACTORS.length * repeats * 10 + 10;
  const loadtest = runLoadtestCli([
    '--socket',
    dir.socket,
    '--db',
    dir.db,
    '--bots',
    String(bots),
    '--duration',
    String(durationS),
    '--heartbeat-interval',
    '1',
    '--llm-rate',
    '200',
  ]);
  await until(
    'bots online',
    async () => (await requestControl<unknown[]>(monitor.control, 'GET', '/status')).length >= bots || false,
    60_000,
  );
  await sleep(2_000);
  const rows: { actor: string; run: number; detectedMs: number; readyMs: number }[] = [];
  for (let run = 1; run <= repeats; run++) {
    for (const actor of ACTORS) {
      const before = await health(actor);
      const t0 = performance.now();
      await requestControl(adminSocketFor(dir.socket), 'POST', `/fault/hang?actor=${actor}`);
      const detectedMs = await until(
        `${actor} detected`,
        async () => {
          const h = await health(actor);
          return (
            (h.restarts > before.restarts || (!h.up && h.detail.state !== 'not answering')) && performance.now() - t0
          );
        },
        30_000,
      );
      const readyMs = await until(
        `${actor} ready`,
        async () => {
          const h = await health(actor);
          return h.up && h.restarts > before.restarts && performance.now() - t0;
        },
        30_000,
      );
      rows.push({ actor, run, detectedMs: Math.round(detectedMs), readyMs: Math.round(readyMs) });
      process.stderr.write(
        `[liveness] ${actor} run ${run}: detected ${Math.round(detectedMs)} ms, ready ${Math.round(readyMs)} ms\n`,
      );
      await sleep(2_000);
    }
  }
  const { report, command } = await loadtest;
  process.stdout.write(
    '| actor | detected after fault hang, ms (each run) | restarted and ready, ms (each run) |\n| --- | --- | --- |\n',
  );
  for (const actor of ACTORS) {
    const mine = rows.filter((r) => r.actor === actor);
    process.stdout.write(
      `| ${actor} | ${mine.map((r) => r.detectedMs).join(', ')} | ${mine.map((r) => r.readyMs).join(', ')} |\n`,
    );
  }
  process.stdout.write(
    `\nunder \`${command}\`: ${report.llm_rows_expected} llm_usage rows written, ${report.lost} lost, ${report.false_stale} false stale, ${report.ok ? 'PASS' : `FAIL: ${report.problems.join('; ')}`}\n`,
  );
} finally {
  await monitor.stop();
  dir.remove();
}
