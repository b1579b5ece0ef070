// cpu and memory of real bot processes, as `kissmon status` shows them.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import {
  CLI,
  botStatus,
  cpuMeter,
  status,
  flush,
  killStarted,
  line,
  query,
  sendLines,
  startMonitor,
  stopMonitor,
  TestDir,
  waitFor,
  type MonitorProcess,
} from './helpers/monitor-process.js';

describe('resource sampling', () => {
  const dir = new TestDir();
  let monitor: MonitorProcess;
  const children: number[] = [];

  before(async () => {
    monitor = await startMonitor(dir, ['--sample-interval', '0.5']);
  });
  after(async () => {
    for (const pid of children) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    await killStarted();
    if (monitor) await stopMonitor(monitor);
    dir.remove();
  });

  it('a busy bot shows the cpu it really gets; a sleeping one ~0 % and a real RSS', async (t) => {
    // Two spinning threads. What they get depends on what else loads the box, so the figure is
    // checked against the child's own /proc ticks, measured here over the same time.
    const busy = spawn(
      process.execPath,
      ['-e', "new (require('node:worker_threads').Worker)('for (;;) {}', { eval: true }); for (;;) {}"],
      { stdio: 'ignore' },
    );
    // The idle child is registered once it has booted: node's own start-up (~100 ms of cpu, more on
    // a loaded box) would otherwise fall into its first sampled window.
    const idle = spawn(process.execPath, ['-e', "process.stdout.write('ready\\n'); setInterval(() => {}, 1e9)"], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    children.push(busy.pid!, idle.pid!);
    await new Promise<void>((resolve, reject) => {
      idle.once('error', reject);
      idle.stdout.once('data', () => resolve());
    });
    const busyCpu = cpuMeter(busy.pid!);
    await sendLines(monitor.socket, [
      line({ type: 'register', channel: 'busy_bot', pid: busy.pid }),
      line({ type: 'register', channel: 'idle_bot', pid: idle.pid }),
    ]);
    const registeredAt = Date.now();

    // A third of the measured share: sampler and meter cover different windows of a fluctuating
    // load; a sampler reporting nothing or an idle figure (a fake first 0, a wrong pid) stays below.
    let measured = 0;
    const hot = await waitFor(
      'busy bot cpu as measured from /proc',
      async () => {
        const b = await botStatus(monitor, 'busy_bot');
        measured = busyCpu();
        return b && b.cpu_pct !== null && measured > 10 && b.cpu_pct >= measured / 3 && b;
      },
      30_000,
    );
    t.diagnostic(
      `busy bot: sampler ${hot.cpu_pct} % of a core, /proc ticks since spawn ${measured.toFixed(0)} %, after ${Date.now() - registeredAt} ms`,
    );
    assert.ok(
      hot.cpu_pct_machine! > 0 && hot.cpu_pct_machine! <= hot.cpu_pct!,
      'machine-normalised cpu is the per-core value divided by cores',
    );

    const cool = await waitFor('idle bot sampled', async () => {
      const b = await botStatus(monitor, 'idle_bot');
      return b && b.cpu_pct !== null && b;
    });
    assert.ok(cool.cpu_pct! < 10, `idle cpu ${cool.cpu_pct}`);
    assert.ok(cool.rss_mb! > 5, `idle rss ${cool.rss_mb} MB`);
    assert.ok(cool.sampled_at! >= registeredAt);

    const json = await new Promise<string>((resolve) => {
      const cli = spawn(process.execPath, [CLI, 'status', '--socket', dir.socket, '--json'], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let out = '';
      cli.stdout.on('data', (c: Buffer) => (out += c.toString()));
      cli.on('exit', () => resolve(out));
    });
    const listed = (
      JSON.parse(json) as {
        channel: string;
        cpu_pct: number | null;
        rss_mb: number | null;
        sampled_at: number | null;
      }[]
    ).find((b) => b.channel === 'idle_bot')!;
    assert.equal(typeof listed.cpu_pct, 'number');
    assert.equal(typeof listed.rss_mb, 'number');
    assert.equal(typeof listed.sampled_at, 'number');

    await flush(monitor);
    const rows = query<{ rss_mb: number; cpu_pct: number; pid: number }>(
      dir.db,
      "SELECT rss_mb, cpu_pct, pid FROM bot_metrics WHERE channel = 'busy_bot'",
    );
    assert.ok(rows.length >= 1 && rows.every((r) => r.pid === busy.pid && r.rss_mb > 0));
  });

  it('a round with more samples than the registry applies per turn reaches every bot', async () => {
    // The registry applies a round's samples a slice (500) per event-loop turn: all of them must land.
    const idle = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1e9)'], { stdio: 'ignore' });
    children.push(idle.pid!);
    const channels = Array.from({ length: 1_200 }, (_, i) => `sliced_${i}`);
    await sendLines(
      monitor.socket,
      channels.map((channel) => line({ type: 'register', channel, pid: idle.pid })),
    );
    const sampled = await waitFor(
      'every one of 1,200 bots sampled',
      async () => {
        const bots = (await status(monitor)).filter((b) => b.channel.startsWith('sliced_'));
        return bots.length === channels.length && bots.every((b) => b.cpu_pct !== null && b.rss_mb! > 0) && bots;
      },
      60_000,
    );
    assert.equal(sampled.length, 1_200);
  });
});
