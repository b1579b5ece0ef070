// The kissmon CLI as users run it: exit codes for bad usage, status/usage/health output.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { flush, runKissmon as kissmon, killStarted, line, sendLines, startMonitor, stopMonitor, TestDir, waitFor, botStatus, type MonitorProcess } from './helpers/monitor-process.js';

describe('kissmon CLI', () => {
  const dir = new TestDir();
  let monitor: MonitorProcess;

  before(async () => {
    monitor = await startMonitor(dir);
    await sendLines(monitor.socket, [
      line({ type: 'register', channel: 'cli_bot', pid: process.pid, features: { llm: true } }),
      line({ type: 'llm_usage', channel: 'cli_bot', model: 'gpt-4o', feature: 'jokes', tokens_in: 100, tokens_out: 50, latency_ms: 100 }),
      line({ type: 'llm_usage', channel: 'cli_bot', model: 'gpt-4o-mini', feature: 'chat', tokens_in: 200, tokens_out: 10, latency_ms: 300 }),
    ]);
    await waitFor('registered', () => botStatus(monitor, 'cli_bot'));
    await flush(monitor);
  });
  after(async () => {
    if (monitor) await stopMonitor(monitor);
    await killStarted();
    dir.remove();
  });

  it('unknown flags and bad values exit 2 with a clear message', async () => {
    for (const args of [['start', '--bogus'], ['start', '--stale-after', 'soon'], ['start', '--socket-mode', '999'], ['usage', '--since', '3x', '--db', dir.db], ['usage', '--by', 'planet'], ['frobnicate']]) {
      const r = await kissmon(args);
      assert.equal(r.code, 2, `${args.join(' ')} → ${r.code}: ${r.stderr}`);
      assert.match(r.stderr, /error|must|unknown|allowed|invalid/i, args.join(' '));
    }
  });

  it('a second monitor on a socket that a running monitor answers on is refused (exit 2), not stolen', async () => {
    const r = await kissmon(['start', '--socket', dir.socket, '--db', `${dir.db}.2`]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /another monitor is running/);
    assert.equal((await botStatus(monitor, 'cli_bot'))?.status, 'online', 'the running monitor still answers');
  });

  it('status --json lists the live registry; the table shows the same bot', async () => {
    const json = await kissmon(['status', '--socket', dir.socket, '--json']);
    assert.equal(json.code, 0, json.stderr);
    const bots = JSON.parse(json.stdout) as { channel: string; pid: number; status: string; source: string }[];
    const bot = bots.find((b) => b.channel === 'cli_bot')!;
    assert.equal(bot.pid, process.pid);
    assert.equal(bot.status, 'online');
    assert.equal(bot.source, 'live');
    const table = await kissmon(['status', '--socket', dir.socket]);
    assert.equal(table.code, 0);
    assert.match(table.stdout, /cli_bot/);
    assert.match(table.stdout, /online/);
  });

  it('usage groups calls, tokens and cost', async () => {
    const r = await kissmon(['usage', '--db', dir.db, '--by', 'model', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const rows = JSON.parse(r.stdout) as { key: string; calls: number; tokens_in: number; cost_usd: number }[];
    const gpt4o = rows.find((x) => x.key === 'gpt-4o')!;
    assert.equal(gpt4o.calls, 1);
    assert.equal(gpt4o.tokens_in, 100);
    assert.ok(Math.abs(gpt4o.cost_usd - (100 * 2.5 + 50 * 10) / 1e6) < 1e-12);
    const table = await kissmon(['usage', '--db', dir.db, '--by', 'feature']);
    assert.match(table.stdout, /jokes/);
  });

  it('health reports every actor', async () => {
    const r = await kissmon(['health', '--socket', dir.socket, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const actors = JSON.parse(r.stdout) as { actor: string; up: boolean }[];
    assert.deepEqual(actors.map((a) => a.actor).sort(), ['db', 'ingest', 'registry', 'sampler']);
    assert.ok(actors.every((a) => a.up));
  });

  it('status falls back to the database when no monitor answers, and says so', async () => {
    const r = await kissmon(['status', '--socket', `${dir.path}/nobody.sock`, '--db', dir.db, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /no monitor answers/);
    const bots = JSON.parse(r.stdout) as { channel: string; status: string; source: string }[];
    assert.equal(bots.find((b) => b.channel === 'cli_bot')?.source, 'database');
  });

  it('KISSBOT_MONITOR_SOCKET sets the socket', async () => {
    const r = await kissmon(['status', '--json'], { KISSBOT_MONITOR_SOCKET: dir.socket });
    assert.equal(r.code, 0, r.stderr);
    assert.ok((JSON.parse(r.stdout) as { channel: string }[]).some((b) => b.channel === 'cli_bot'));
  });
});
