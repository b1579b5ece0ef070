// Heartbeat latency and monitor CPU under 10,000-pid sample rounds, this build against another one,
// alternated (after, before, after, before, …) with a fresh monitor each run: the sampler-latency
// case of bench/run.ts ("Sampler"), whose one run per build cannot tell two builds apart on a
// shared box. Prints one line per run and the per-pair ratios; CPU is the monitor's own, from
// /proc over the loadtest's measured window, split per thread (main is the process's own tid).
//
// Run: node dist/bench/heartbeat-ab.js --before-cli OTHER_DIST/src/cli.js [--pairs 3] [--bots 10000] [--shared-pids]
import { readdirSync, readFileSync } from 'node:fs';
import { requestControl } from '../src/http/control-client.js';
import { CLOCK_TICKS_PER_S } from '../src/proc.js';
import { TestDir } from '../test/helpers/monitor-process.js';
import { CLI, cpuSnapshot, otherWorkPct, runLoadtestCli, startMonitor } from './harness.js';

const args = process.argv.slice(2);
const argValue = (flag: string) => {
  const i = args.indexOf(flag);
  return i === -1 ? undefined : args[i + 1];
};
const beforeCli = argValue('--before-cli');
if (!beforeCli) throw new TypeError('--before-cli PATH is required (the build to compare with)');
const pairs = Number(argValue('--pairs') ?? 3);
const bots = argValue('--bots') ?? '10000';
/** --shared-pids: the bots share their bot processes' pids, so a round reads a few pids (registers are quick). */
const pidPerBot = args.includes('--shared-pids') ? [] : ['--pid-per-bot'];
const LOADTEST = ['--bots', bots, '--duration', '20', '--heartbeat-interval', '1', '--llm-rate', '0', ...pidPerBot];

/** CPU ticks per thread of a process (tid → utime + stime). */
function threadTicks(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(Number(tid), Number(f[11]) + Number(f[12]));
    } catch {
      // thread ended
    }
  }
  return out;
}

interface Run {
  build: 'after' | 'before';
  load: string;
  p50: number;
  p99: number;
  max: number;
  count: number;
  falseStale: number;
  cpuPct: number;
  otherPct: number;
  /** % of a core per thread over the measured window, busiest first; `main` first. */
  threads: string;
}

async function once(build: 'after' | 'before'): Promise<Run> {
  const dir = new TestDir();
  const load0 = readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
  const monitor = await startMonitor(dir, ['--sample-interval', '2'], undefined, build === 'after' ? CLI : beforeCli);
  const snapshots: { at: number; ticks: Map<number, number> }[] = [];
  // The measured window starts once every bot is connected (the loadtest's window follows its connects).
  let connectedAt = Infinity;
  const poll = setInterval(() => {
    snapshots.push({ at: Date.now(), ticks: threadTicks(monitor.pid) });
    if (connectedAt !== Infinity) return;
    void requestControl<{ actors: { actor: string; detail: { connections_open?: number } }[] }>(
      monitor.control,
      'GET',
      '/health',
    )
      .then((h) => {
        const open = h.actors.find((a) => a.actor === 'ingest')?.detail.connections_open ?? 0;
        if (open >= Number(bots)) connectedAt = Math.min(connectedAt, Date.now());
      })
      .catch(() => {});
  }, 500);
  try {
    const cpu0 = cpuSnapshot();
    const { report } = await runLoadtestCli(['--socket', monitor.socket, '--db', monitor.db, ...LOADTEST]);
    const other = otherWorkPct(cpu0, cpuSnapshot());
    // The measured window: from the fleet connected to `duration` later.
    const from = connectedAt;
    const to = from + report.duration_s * 1000;
    const a = snapshots.find((s) => s.at >= from);
    const b = [...snapshots].reverse().find((s) => s.at <= to);
    let threads = '';
    if (a && b && b.at > a.at) {
      const pct = (tid: number) =>
        (((b.ticks.get(tid) ?? 0) - (a.ticks.get(tid) ?? 0)) * 100_000) / CLOCK_TICKS_PER_S / (b.at - a.at);
      const rows = [...b.ticks.keys()].map((tid) => ({ tid, pct: pct(tid) })).filter((r) => r.pct >= 1);
      rows.sort((x, y) => (x.tid === monitor.pid ? -1 : y.tid === monitor.pid ? 1 : y.pct - x.pct));
      threads = rows.map((r) => `${r.tid === monitor.pid ? 'main' : r.tid}:${r.pct.toFixed(1)}`).join(' ');
    }
    const load1 = readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
    return {
      build,
      load: `${load0} → ${load1}`,
      p50: report.latency_ms.p50,
      p99: report.latency_ms.p99,
      max: report.latency_ms.max,
      count: report.latency_ms.count,
      falseStale: report.false_stale,
      cpuPct: report.monitor.cpu_pct,
      otherPct: other,
      threads,
    };
  } finally {
    clearInterval(poll);
    await monitor.stop();
    dir.remove();
  }
}

const runs: Run[] = [];
for (let i = 0; i < pairs; i++) {
  for (const build of i % 2 === 0 ? (['after', 'before'] as const) : (['before', 'after'] as const)) {
    // On this shared box a monitor sometimes answers the loadtest's first control call too late: one retry.
    const run = await once(build).catch((err: Error) => {
      console.log(JSON.stringify({ build, failed: err.message.split('\n')[0] }));
      return once(build);
    });
    runs.push(run);
    console.log(JSON.stringify({ at: new Date().toISOString().slice(11, 19), ...run }));
  }
}
const ratio = (key: 'p99' | 'cpuPct') =>
  Array.from({ length: pairs }, (_, i) => {
    const pair = runs.slice(2 * i, 2 * i + 2);
    const after = pair.find((r) => r.build === 'after')!;
    const before = pair.find((r) => r.build === 'before')!;
    return Math.round((after[key] / before[key]) * 100) / 100;
  });
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const p99 = ratio('p99');
const cpu = ratio('cpuPct');
console.log(
  `after ÷ before, per pair: p99 ${p99.join(', ')} (median ${median(p99)}); CPU ${cpu.join(', ')} (median ${median(cpu)})`,
);
