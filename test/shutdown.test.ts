// SIGTERM: what clients managed to write before the signal — on open connections and on
// connections still waiting in the listen backlog — is committed; the socket file is removed.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import {
  botStatus,
  killStarted,
  line,
  query,
  startBot,
  startMonitor,
  TestDir,
  waitFor,
} from './helpers/monitor-process.js';

const usage = (channel: string, i: number) =>
  `${line({ type: 'llm_usage', channel, model: 'gpt-4o', feature: 'shutdown', tokens_in: i, tokens_out: 1 })}\n`;

/** Resolves once every byte is handed to the kernel (write callback), not when the monitor read it. */
function writeAll(socket: string, payload: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const c = net.connect(socket, () => c.write(payload, (err) => (err ? reject(err) : resolve(c))));
    c.on('error', reject);
  });
}

describe('graceful shutdown', () => {
  const dir = new TestDir();
  after(async () => {
    await killStarted();
    dir.remove();
  });

  it('SIGTERM flushes every row written before the signal and exits 0', async () => {
    const monitor = await startMonitor(dir);
    const persistentRows = 20_000;
    const persistent = await Promise.all(
      Array.from({ length: 4 }, (_, k) =>
        writeAll(
          monitor.socket,
          Array.from({ length: persistentRows / 4 }, (_, i) => usage(`persist_${k}`, i)).join(''),
        ),
      ),
    );
    const oneShots = 300;
    const oneShotConns = await Promise.all(
      Array.from({ length: oneShots }, (_, i) => writeAll(monitor.socket, usage('oneshot', i))),
    );
    monitor.child.kill('SIGTERM'); // at once: much of this is still in kernel buffers and the backlog
    const code = await monitor.exited;
    for (const c of [...persistent, ...oneShotConns]) c.destroy();

    assert.equal(code, 0, monitor.output().slice(-2000));
    const [{ n }] = query<{ n: number }>(dir.db, 'SELECT count(*) n FROM llm_usage');
    assert.equal(n, persistentRows + oneShots);
    assert.equal(existsSync(dir.socket), false, 'socket file removed');
    assert.equal(existsSync(`${dir.socket}.ctl`), false, 'control socket removed');
    assert.match(monitor.output(), /"msg":"stopped"/);
  });

  it(
    'SIGTERM with persistent bots still connected and heartbeating: exits 0 promptly',
    { timeout: 60_000 },
    async () => {
      const monitor = await startMonitor(dir);
      const bot = startBot(monitor.socket, 'stays_connected', 100);
      await waitFor('online', async () => (await botStatus(monitor, 'stays_connected'))?.status === 'online');
      const signalled = Date.now();
      monitor.child.kill('SIGTERM');
      assert.equal(await monitor.exited, 0, monitor.output().slice(-2000));
      // Drain reads for at most 3 s, then closes what is still open; a monitor that waited for the
      // bot to leave would never stop. 30 s: room for a loaded box, far under systemd's 90 s stop timeout.
      assert.ok(Date.now() - signalled < 30_000, `stopped after ${Date.now() - signalled} ms`);
      assert.equal(existsSync(dir.socket), false);
      process.kill(bot.pid, 'SIGKILL');
    },
  );
});
