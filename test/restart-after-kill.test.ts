// kill -9 the monitor and start it again on the same socket: the stale socket files are replaced,
// and bots built on the TypeScript and Python clients are online again by themselves.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { createPgDatabase, postgresMissing } from './helpers/backends.js';
import { commandMissing, requireResource } from './helpers/resources.js';
import {
  botStatus,
  flush,
  killStarted,
  line,
  query,
  sendLines,
  startProcess,
  startMonitor,
  stopMonitor,
  TestDir,
  waitFor,
} from './helpers/monitor-process.js';

const TS_BOT = fileURLToPath(new URL('./fixtures/client-bot.js', import.meta.url));
const PY_BOT = fileURLToPath(new URL('../../test/fixtures/python_bot.py', import.meta.url));

describe('monitor killed with SIGKILL and restarted', () => {
  const dir = new TestDir();
  const bots: number[] = [];
  after(async () => {
    for (const pid of bots) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await killStarted();
    dir.remove();
  });

  it('TS and Python bots are online again by themselves', async (t) => {
    if (!requireResource(t, 'python3', commandMissing('python3'))) return;
    const first = await startMonitor(dir, ['--stale-after', '5', '--sample-interval', '0.5']);
    const tsBot = spawn(process.execPath, [TS_BOT, dir.socket, 'restart_ts', '300'], { stdio: 'inherit' });
    const pyBot = spawn('python3', [PY_BOT, dir.socket, 'restart_py', '0.3'], { stdio: 'inherit' });
    bots.push(tsBot.pid!, pyBot.pid!);
    for (const channel of ['restart_ts', 'restart_py']) {
      await waitFor(`${channel} online`, async () => (await botStatus(first, channel))?.status === 'online', 30_000);
    }

    first.child.kill('SIGKILL');
    await first.exited;
    assert.ok(
      existsSync(dir.socket) && existsSync(`${dir.socket}.ctl`),
      'a killed monitor leaves its socket files behind',
    );

    const second = await startMonitor(dir, ['--stale-after', '5', '--sample-interval', '0.5']);
    const since = Date.now();
    for (const [channel, pid] of [
      ['restart_ts', tsBot.pid],
      ['restart_py', pyBot.pid],
    ] as const) {
      const bot = await waitFor(
        `${channel} online after restart`,
        async () => {
          const b = await botStatus(second, channel);
          return b?.status === 'online' && b.last_heartbeat! > since && b;
        },
        30_000,
      );
      assert.equal(bot.pid, pid);
    }
    await flush(second);
    const [{ n }] = query<{ n: number }>(
      dir.db,
      "SELECT count(*) n FROM llm_usage WHERE feature = 'ts_bot' AND ts > ?",
      new Date(since).toISOString(),
    );
    assert.ok(n > 0, 'the TS bot logs usage to the new monitor');

    tsBot.kill('SIGTERM');
    pyBot.kill('SIGTERM');
    await Promise.all([new Promise((r) => tsBot.once('exit', r)), new Promise((r) => pyBot.once('exit', r))]);
    for (const channel of ['restart_ts', 'restart_py']) {
      await waitFor(`${channel} offline`, async () => (await botStatus(second, channel))?.status === 'offline');
    }
    assert.equal(await stopMonitor(second), 0);
  });
});

describe('monitor on PostgreSQL killed with SIGKILL and restarted', () => {
  const dir = new TestDir();
  after(async () => {
    await killStarted();
    dir.remove();
  });

  it("rebuilds this host's bots from bot_status at once, and a bot whose pid is gone is dead", async (t) => {
    if (!requireResource(t, 'PostgreSQL', await postgresMissing())) return;
    t.after(() => killStarted()); // before the database is dropped (hooks run in order)
    const database = await createPgDatabase(t);
    const config = join(dir.path, 'monitor.json');
    // The spool (and the local alert store beside it) in the test dir, not the working directory.
    writeFileSync(config, JSON.stringify({ spool: { path: join(dir.path, 'm.spool') } }));
    const args = [
      ...['--socket', dir.socket, '--db', database.url, '--config', config],
      ...['--stale-after', '120', '--sample-interval', '0.5'],
    ];
    const start = (host: string) => startMonitor(dir, [...args, '--host-name', host], { pathFlags: false });
    // Another host's bot in the same store: not this monitor's, never rebuilt by it.
    const other = await start('other_host');
    await sendLines(dir.socket, [line({ type: 'register', channel: 'elsewhere', pid: process.pid })]);
    await waitFor('elsewhere online', async () => (await botStatus(other, 'elsewhere'))?.status === 'online');
    await flush(other);
    assert.equal(await stopMonitor(other), 0);

    // Two bots that register once and never heartbeat: what the restarted monitor knows of them
    // can only come from bot_status.
    const keep = startProcess(['-e', 'setInterval(() => {}, 1000)']);
    const gone = startProcess(['-e', 'setInterval(() => {}, 1000)']);
    const first = await start('pg_host');
    await sendLines(dir.socket, [
      line({ type: 'register', channel: 'pg_keep', pid: keep.pid }),
      line({ type: 'register', channel: 'pg_gone', pid: gone.pid }),
    ]);
    for (const channel of ['pg_keep', 'pg_gone'])
      await waitFor(`${channel} online`, async () => (await botStatus(first, channel))?.status === 'online');
    await flush(first);
    first.child.kill('SIGKILL');
    await first.exited;
    gone.child.kill('SIGKILL');
    await gone.exited;

    const second = await start('pg_host');
    // Known at once (the control API answers after the registry's rebuild), with no new message.
    const kept = await botStatus(second, 'pg_keep');
    assert.equal(kept?.status, 'online', 'a live bot is online again from bot_status');
    assert.equal(kept.pid, keep.pid);
    await waitFor('pg_gone dead', async () => (await botStatus(second, 'pg_gone'))?.status === 'dead', 10_000);
    assert.equal(await botStatus(second, 'elsewhere'), undefined, "another host's bot is not rebuilt here");
    assert.equal(await stopMonitor(second), 0);
  });
});

describe('a bot rebuilt from bot_status after a restart', () => {
  const dir = new TestDir();
  after(async () => {
    await killStarted();
    dir.remove();
  });

  it('turns stale when it stays silent (the stale check walks the rebuilt bots)', async () => {
    const args = ['--stale-after', '3'];
    const first = await startMonitor(dir, args);
    // This process is the bot: its pid stays alive, so only the missing heartbeats can make it stale.
    await sendLines(dir.socket, [line({ type: 'register', channel: 'rebuilt_silent', pid: process.pid })]);
    await waitFor('registered', async () => (await botStatus(first, 'rebuilt_silent'))?.status === 'online');
    await flush(first);
    first.child.kill('SIGKILL');
    await first.exited;

    const second = await startMonitor(dir, args);
    const rebuilt = await botStatus(second, 'rebuilt_silent');
    assert.equal(rebuilt?.pid, process.pid, 'the second monitor rebuilt the bot from bot_status');
    await waitFor(
      'rebuilt bot stale',
      async () => (await botStatus(second, 'rebuilt_silent'))?.status === 'stale',
      40_000,
    );
    assert.equal(await stopMonitor(second), 0);
  });
});
