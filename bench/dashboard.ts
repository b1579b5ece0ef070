// The dashboard's server cost (issue 13): the monitor's CPU with 10,000 heartbeating bots, first
// with no dashboard open, then with 5 live event streams (/api/events, what 5 open pages hold),
// then with none again. The streams are plain HTTP readers here, so the figure is the monitor's
// own cost (feed reads, diffs, serialisation, writes), not a browser's.
//
//   without (W s) ─▶ 5 streams open, each has its snapshot ─▶ with (W s) ─▶ closed ─▶ without ─▶ with ─▶ without
//   (alternated, so drift in the box's other load hits both sides alike)
import http from 'node:http';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { requestControl } from '../src/http/control-client.js';
import { Fleet } from '../src/loadtest/fleet.js';
import { TestDir } from '../test/helpers/monitor-process.js';
import { sleep, waitFor } from '../test/helpers/wait.js';
import { cpuSnapshot, otherWorkPct, procStats, startMonitor } from './harness.js';

const BOTS = 10_000;
const DASHBOARDS = 5;
const WINDOW_MS = 20_000;
/** with-windows; there is one more without-window than these. */
const PAIRS = 2;

export interface DashboardBench {
  bots: number;
  dashboards: number;
  window_s: number;
  /** Monitor CPU, % of one core (all threads). */
  cpu_without_pct: number;
  cpu_with_pct: number;
  cpu_added_pct: number;
  /** The first event each stream got (every bot), bytes. */
  snapshot_bytes: number;
  /** Bytes per second each stream received during the window. */
  stream_bytes_per_s: number;
  events_per_s: number;
  other_work_pct: number;
  command: string;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

interface Stream {
  bytes: number;
  events: number;
  firstEventBytes: number;
  close(): void;
}

function openStream(port: number): Stream {
  const stream: Stream = { bytes: 0, events: 0, firstEventBytes: 0, close: () => req.destroy() };
  let pending = '';
  const req = http.get({ host: '127.0.0.1', port, path: '/api/events' }, (res) => {
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      stream.bytes += chunk.length;
      pending += chunk;
      let end: number;
      while ((end = pending.indexOf('\n\n')) !== -1) {
        if (stream.events === 0) stream.firstEventBytes = end;
        stream.events++;
        pending = pending.slice(end + 2);
      }
    });
  });
  req.on('error', () => {});
  return stream;
}

async function monitorCpuPct(pid: number, ms: number): Promise<{ pct: number; other: number }> {
  const cpu0 = procStats(pid).cpuMs;
  const machine0 = cpuSnapshot();
  const t0 = performance.now();
  await sleep(ms);
  const pct = ((procStats(pid).cpuMs - cpu0) / (performance.now() - t0)) * 100;
  return { pct: Math.round(pct * 10) / 10, other: otherWorkPct(machine0, cpuSnapshot()) };
}

export async function benchDashboard(log: (msg: string) => void): Promise<DashboardBench> {
  const dir = new TestDir();
  const port = await freePort();
  const monitor = await startMonitor(dir, ['--http-port', String(port)]);
  const fleet = await Fleet.start({
    socket: monitor.socket,
    prefix: 'bot',
    bots: BOTS,
    mode: 'persistent',
    processes: 4,
    heartbeatMs: 30_000,
  });
  try {
    await fleet.waitConnected(60_000);
    await waitFor(
      `${BOTS} bots registered`,
      async () => (await requestControl<unknown[]>(monitor.control, 'GET', '/status')).length === BOTS,
      60_000,
      500,
    );
    await sleep(5_000); // registration done, heartbeats spread over their interval
    log(
      `  ${BOTS} bots registered; alternating ${WINDOW_MS / 1000} s windows without and with ${DASHBOARDS} event streams`,
    );
    const without = [await monitorCpuPct(monitor.pid, WINDOW_MS)];
    const withDash: { pct: number; other: number }[] = [];
    let bytes = 0;
    let events = 0;
    let snapshotBytes = 0;
    for (let pair = 0; pair < PAIRS; pair++) {
      const streams = Array.from({ length: DASHBOARDS }, () => openStream(port));
      await waitFor('every stream to get its snapshot', () => streams.every((s) => s.events > 0), 30_000, 100);
      snapshotBytes = streams[0].firstEventBytes;
      await sleep(2_000);
      const bytes0 = streams.reduce((n, s) => n + s.bytes, 0);
      const events0 = streams.reduce((n, s) => n + s.events, 0);
      withDash.push(await monitorCpuPct(monitor.pid, WINDOW_MS));
      bytes += streams.reduce((n, s) => n + s.bytes, 0) - bytes0;
      events += streams.reduce((n, s) => n + s.events, 0) - events0;
      for (const s of streams) s.close();
      await sleep(2_000);
      without.push(await monitorCpuPct(monitor.pid, WINDOW_MS));
      log(
        `  pair ${pair + 1}: with ${withDash.at(-1)!.pct} %, without ${without.at(-2)!.pct} / ${without.at(-1)!.pct} %`,
      );
    }
    const mean = (xs: { pct: number }[]) => Math.round((xs.reduce((n, x) => n + x.pct, 0) / xs.length) * 10) / 10;
    const seconds = (PAIRS * WINDOW_MS) / 1000;
    return {
      bots: BOTS,
      dashboards: DASHBOARDS,
      window_s: WINDOW_MS / 1000,
      cpu_without_pct: mean(without),
      cpu_with_pct: mean(withDash),
      cpu_added_pct: Math.round((mean(withDash) - mean(without)) * 10) / 10,
      snapshot_bytes: snapshotBytes,
      stream_bytes_per_s: Math.round(bytes / DASHBOARDS / seconds),
      events_per_s: Math.round((events / DASHBOARDS / seconds) * 10) / 10,
      other_work_pct: Math.max(...without.map((w) => w.other), ...withDash.map((w) => w.other)),
      command: 'node dist/bench/run.js --only dashboard',
    };
  } finally {
    await fleet.end().catch(() => fleet.kill());
    await monitor.stop();
    dir.remove();
  }
}

export function formatDashboardBench(r: DashboardBench): string[] {
  const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`;
  return [
    `## Dashboard: server cost with ${r.bots.toLocaleString('en')} bots and ${r.dashboards} open dashboards`,
    '',
    `${r.bots.toLocaleString('en')} persistent bots heartbeating every 30 s (4 bot processes), the sampler at its default 15 s. The`,
    `monitor's CPU (all threads, % of one core) in ${r.window_s} s windows alternating without a dashboard and with ${r.dashboards} live event`,
    'streams (`/api/events`, what an open page holds; read by plain HTTP clients, so no browser CPU is counted):',
    `without, with, without, with, without; each side averaged. See docs/DASHBOARD.md for what the feed sends.`,
    '',
    '| without | with 5 dashboards | added | first event (snapshot) | per stream | events per stream | other work (% of a core) | command |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    `| ${r.cpu_without_pct} % | ${r.cpu_with_pct} % | **${r.cpu_added_pct} %** | ${kb(r.snapshot_bytes)} | ${kb(r.stream_bytes_per_s)}/s | ${r.events_per_s}/s | ${r.other_work_pct} | \`${r.command}\` |`,
    '',
  ];
}
