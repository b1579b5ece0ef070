// Cost of one sampler round at 100 / 1,000 / 10,000 real pids: wall time and CPU of the whole
// process (process.cpuUsage: this thread plus libuv's threadpool, where pidusage's reads run).
// The sampler runs in-process (the same ProcessSampler class the actor runs on its thread).
//
// Pids: one `sh` forks N idle `cat` processes (src/loadtest/placeholders.ts) and prints their pids — real processes (so exits, start
// times and /proc behave as for bots), ~1 ms each to start. Every one is killed by pid afterwards
// (and on exit/SIGINT should the bench die), then the shell reaps them and exits.
//
// Columns:
//   first round  — watches just applied: every pid is read for the first time (baseline, no cpu yet)
//   steady round — median of 5 later rounds, once the held fds have settled (the fd budget lets a
//                  round open only so many: see HeldStatFds): the per-interval cost at that fleet size
//   fds held     — the sampler's fds held on /proc/<pid>/stat after those rounds
//   plain pidusage warm — the alternative: one pidusage() call over all pids, its own fd cache warm
//                  (what it costs per round, and the fds it then keeps open for good)
//   raw open+read+close — the reads alone by path: open + pread + close of every /proc/<pid>/stat
//   raw pread    — the reads alone through one held fd per pid (the floor of a round on Linux)
//
// Run: npx tsc -p . && node dist/bench/sampler.js [sizes…]
import { closeSync, openSync, readSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { createLogger } from '../src/log.js';
import { countOpenFds, parseStat, readProcStat, statPath } from '../src/proc.js';
import { startPlaceholders } from '../src/loadtest/placeholders.js';
import { ProcessSampler } from '../workers/sampler.js';
import { procStatFds } from '../test/helpers/resources.js';
import { sleep } from '../test/helpers/wait.js';

const pidusage = createRequire(import.meta.url)('pidusage') as typeof import('pidusage');

export interface SamplerBenchRow {
  pids: number;
  first_round_ms: number;
  first_round_cpu_ms: number;
  steady_round_ms: number;
  steady_round_cpu_ms: number;
  samples: number;
  fds_held: number;
  plain_pidusage_warm_ms: number;
  plain_pidusage_warm_cpu_ms: number;
  plain_pidusage_fds_held: number;
  raw_proc_ms: number;
  raw_proc_cpu_ms: number;
  raw_pread_ms: number;
  raw_pread_cpu_ms: number;
}

const openFds = countOpenFds;
const round1 = (n: number) => Math.round(n * 10) / 10;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function timed<T>(fn: () => Promise<T> | T): Promise<{ value: T; ms: number; cpuMs: number }> {
  const cpu = process.cpuUsage();
  const start = performance.now();
  const value = await fn();
  const ms = performance.now() - start;
  const used = process.cpuUsage(cpu);
  return { value, ms: round1(ms), cpuMs: round1((used.user + used.system) / 1000) };
}

export async function benchSampler(sizes: number[] = [100, 1_000, 10_000]): Promise<SamplerBenchRow[]> {
  const log = createLogger('error');
  const rows: SamplerBenchRow[] = [];
  for (const n of sizes) {
    const fleet = await startPlaceholders(n);
    try {
      // Let the last forks finish exec'ing `cat` before timing anything.
      await sleep(Math.min(3_000, 200 + n / 5));
      let samples = 0;
      const sampler = new ProcessSampler({
        intervalMs: 60_000,
        timeoutMs: 50_000,
        log,
        onRound: (round) => {
          samples = round.samples.length;
        },
        onMetric: () => true,
      });
      await sampler.init();
      sampler.apply(
        fleet.pids.map((pid, i) => ({ type: 'watch' as const, channel: `bot_${i}`, pid, start_time: null })),
      );
      const first = await timed(() => sampler.sampleNow());
      for (let i = 0, held = -1; i < 10 && held !== sampler.stats().detail.held_fds; i++) {
        held = sampler.stats().detail.held_fds as number;
        await sampler.sampleNow();
      }
      const steady: Awaited<ReturnType<typeof timed<Awaited<ReturnType<ProcessSampler['sampleNow']>>>>>[] = [];
      for (let i = 0; i < 5; i++) steady.push(await timed(() => sampler.sampleNow()));
      for (const r of [first, ...steady])
        if (r.value.status !== 'published') throw new Error(`round ${r.value.status} at ${n} pids`);
      const fdsHeld = sampler.stats().detail.held_fds as number;
      sampler.stop(); // closes them: the fds below are pidusage's
      const idle = openFds();

      // Alternative 1: plain pidusage over all pids, fd cache warm (second call). Its fds are closed
      // and its history cleared afterwards so nothing leaks into the next size.
      await pidusage(fleet.pids);
      const plain = await timed(() => pidusage(fleet.pids));
      const plainFds = openFds() - idle;
      // pidusage.clear() does not close them (pidusage#127): close every fd on a /proc/<pid>/stat.
      for (const fds of procStatFds().values()) for (const fd of fds) closeSync(fd);
      pidusage.clear();

      // Alternative 2: our own read of every /proc/<pid>/stat, nothing else.
      const buf = Buffer.allocUnsafe(4096);
      for (const pid of fleet.pids) readProcStat(pid, buf); // warm
      const raw = await timed(() => {
        for (const pid of fleet.pids) readProcStat(pid, buf);
      });
      // Alternative 3: one pread through an fd held per pid, parsed, nothing else.
      const fds = fleet.pids.map((pid) => openSync(statPath(pid), 'r'));
      const preadAll = () => {
        for (const fd of fds) parseStat(buf, readSync(fd, buf, 0, buf.length, 0));
      };
      preadAll(); // warm
      const pread = await timed(preadAll);
      for (const fd of fds) closeSync(fd);

      rows.push({
        pids: n,
        first_round_ms: first.ms,
        first_round_cpu_ms: first.cpuMs,
        steady_round_ms: median(steady.map((s) => s.ms)),
        steady_round_cpu_ms: median(steady.map((s) => s.cpuMs)),
        samples,
        fds_held: fdsHeld,
        plain_pidusage_warm_ms: plain.ms,
        plain_pidusage_warm_cpu_ms: plain.cpuMs,
        plain_pidusage_fds_held: plainFds,
        raw_proc_ms: raw.ms,
        raw_proc_cpu_ms: raw.cpuMs,
        raw_pread_ms: pread.ms,
        raw_pread_cpu_ms: pread.cpuMs,
      });
    } finally {
      await fleet.kill();
    }
  }
  return rows;
}

export function formatSamplerBench(rows: SamplerBenchRow[]): string {
  const header = [
    'pids',
    'first round ms (cpu)',
    'steady round ms (cpu)',
    'fds held',
    'plain pidusage warm ms (cpu), fds held',
    'raw open+read+close ms (cpu)',
    'raw pread ms (cpu)',
  ];
  const lines = [
    `| ${header.join(' | ')} |`,
    `| ${header.map(() => '---').join(' | ')} |`,
    ...rows.map(
      (r) =>
        `| ${r.pids.toLocaleString('en')} | ${r.first_round_ms} (${r.first_round_cpu_ms}) | ${r.steady_round_ms} (${r.steady_round_cpu_ms}) | ${r.fds_held} | ` +
        `${r.plain_pidusage_warm_ms} (${r.plain_pidusage_warm_cpu_ms}), ${r.plain_pidusage_fds_held} | ${r.raw_proc_ms} (${r.raw_proc_cpu_ms}) | ${r.raw_pread_ms} (${r.raw_pread_cpu_ms}) |`,
    ),
  ];
  return lines.join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130)); // runs the 'exit' clean-up
  const sizes = process.argv
    .slice(2)
    .map(Number)
    .filter((n) => n > 0);
  const rows = await benchSampler(sizes.length > 0 ? sizes : undefined);
  console.log(formatSamplerBench(rows));
}
