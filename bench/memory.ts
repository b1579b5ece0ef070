// Where the monitor's memory is during and after a burst: one fresh monitor, N persistent bots,
// one burst of llm_usage rows, then 30 s of quiet with the fleet still connected. Printed at each
// step: the process RSS split into anonymous memory (V8 heaps, malloc arenas, buffers) and file
// pages (the node binary and libraries), from /proc/<pid>/smaps_rollup, and every thread's V8
// heap in use (`GET /health`). RSS minus the heaps in use is what V8 keeps committed (young
// generation, pages not yet given back) plus native allocations.
//
// Run: npx tsc -p . && node dist/bench/memory.js [--bots N] [--rows N] [--cli OTHER_DIST/src/cli.js]
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { requestControl } from '../src/http/control-client.js';
import type { HealthReport } from '../src/monitor.js';
import { Fleet } from '../src/loadtest/fleet.js';
import { TestDir } from '../test/helpers/monitor-process.js';
import { sleep } from '../test/helpers/wait.js';
import { CLI, procStats, RowCounter, startMonitor } from './harness.js';

const args = process.argv.slice(2);
const argValue = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const bots = Number(argValue('--bots') ?? 1_000);
const rows = Number(argValue('--rows') ?? 400_000);
const cli = argValue('--cli') ?? CLI;

function smapsMb(pid: number): { rss: number; anon: number; file: number } {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? 0);
  const rss = Math.round(kb('Rss') / 1024);
  const anon = Math.round(kb('Anonymous') / 1024);
  return { rss, anon, file: rss - anon };
}

const dir = new TestDir();
const monitor = await startMonitor(dir, [], undefined, cli);
let fleet: Fleet | null = null;
let counter: RowCounter | null = null;
const line = async (label: string) => {
  const m = smapsMb(monitor.pid);
  const { actors } = await requestControl<{ actors: HealthReport }>(monitor.control, 'GET', '/health');
  const heaps = actors.map((a) => `${a.actor} ${a.heap_used_mb}`).join(', ');
  console.log(
    `${label.padEnd(22)} RSS ${m.rss} MB (anonymous ${m.anon}, file ${m.file}) · V8 heap in use MB: ${heaps}`,
  );
};
try {
  await sleep(3_000);
  await line('empty');
  fleet = await Fleet.start({
    socket: monitor.socket,
    prefix: 'mem',
    bots,
    mode: 'persistent',
    processes: bots >= 5_000 ? 4 : 2,
    heartbeatMs: 30_000,
  });
  if (!(await fleet.waitConnected(60_000))) throw new Error('the fleet did not connect within 60 s');
  await sleep(3_000);
  await line(`${bots} bots connected`);
  counter = new RowCounter(monitor.db);
  const before = counter.count();
  const t0 = performance.now();
  void fleet.burst(rows, 300_000);
  let peak = 0;
  while (counter.count() - before < rows) {
    if (performance.now() - t0 > 300_000) throw new Error('the burst did not land within 300 s');
    await sleep(100);
    peak = Math.max(peak, procStats(monitor.pid).rssMb);
  }
  await line(`burst landed (${Math.round(performance.now() - t0)} ms, peak ${peak})`);
  for (let s = 5; s <= 30; s += 5) {
    await sleep(5_000);
    await line(`+${s} s`);
  }
} finally {
  counter?.close();
  await fleet?.end(5_000);
  await monitor.stop();
  dir.remove();
}
