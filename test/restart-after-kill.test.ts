// kill -9 the monitor and start it again on the same socket: the stale socket files are replaced,
// and bots built on the TypeScript and Python clients are online again by themselves.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { commandMissing, requireResource } from './helpers/resources.js';
import {
  botStatus,
  flush,
  killStarted,
  query,
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
