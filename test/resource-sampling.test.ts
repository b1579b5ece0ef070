// cpu and memory of real bot processes, as `kissmon status` shows them.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { CLI, botStatus, flush, killStarted, line, query, sendLines, startMonitor, stopMonitor, TestDir, waitFor, type MonitorProcess } from './helpers/monitor-process.js';

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

  it('a busy bot shows cpu > 50 % within two rounds; a sleeping one ~0 % and a real RSS', async () => {
    // Two spinning threads, so it stays above 50 % of a core even when other tests load the box.
    const busy = spawn(process.execPath, ['-e', "new (require('node:worker_threads').Worker)('for (;;) {}', { eval: true }); for (;;) {}"], { stdio: 'ignore' });
    const idle = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1e9)'], { stdio: 'ignore' });
    children.push(busy.pid!, idle.pid!);
    await sendLines(monitor.socket, [line({ type: 'register', channel: 'busy_bot', pid: busy.pid }), line({ type: 'register', channel: 'idle_bot', pid: idle.pid })]);
    const registeredAt = Date.now();

    const hot = await waitFor('busy bot cpu > 50', async () => {
      const b = await botStatus(monitor, 'busy_bot');
      return b && b.cpu_pct !== null && b.cpu_pct > 50 && b;
    }, 10_000);
    // Two rounds at 0.5 s after a baseline round, with slack for a loaded machine.
    assert.ok(Date.now() - registeredAt < 4_000, `cpu known after ${Date.now() - registeredAt} ms`);
    assert.ok(hot.cpu_pct_machine! > 0 && hot.cpu_pct_machine! <= hot.cpu_pct!, 'machine-normalised cpu is the per-core value divided by cores');

    const cool = await waitFor('idle bot sampled', async () => {
      const b = await botStatus(monitor, 'idle_bot');
      return b && b.cpu_pct !== null && b;
    });
    assert.ok(cool.cpu_pct! < 10, `idle cpu ${cool.cpu_pct}`);
    assert.ok(cool.rss_mb! > 5, `idle rss ${cool.rss_mb} MB`);
    assert.ok(cool.sampled_at! >= registeredAt);

    const json = await new Promise<string>((resolve) => {
      const cli = spawn(process.execPath, [CLI, 'status', '--socket', dir.socket, '--json'], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      cli.stdout.on('data', (c: Buffer) => (out += c.toString()));
      cli.on('exit', () => resolve(out));
    });
    const listed = (JSON.parse(json) as { channel: string; cpu_pct: number | null; rss_mb: number | null; sampled_at: number | null }[]).find((b) => b.channel === 'idle_bot')!;
    assert.equal(typeof listed.cpu_pct, 'number');
    assert.equal(typeof listed.rss_mb, 'number');
    assert.equal(typeof listed.sampled_at, 'number');

    await flush(monitor);
    const rows = query<{ rss_mb: number; cpu_pct: number; pid: number }>(dir.db, "SELECT rss_mb, cpu_pct, pid FROM bot_metrics WHERE channel = 'busy_bot'");
    assert.ok(rows.length >= 1 && rows.every((r) => r.pid === busy.pid && r.rss_mb > 0));
  });
});
