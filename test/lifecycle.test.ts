// stale → online → dead → offline with real child processes as bots.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  botStatus,
  flush,
  actorDetail,
  killStarted,
  query,
  startBot,
  startMonitor,
  stopMonitor,
  TestDir,
  waitFor,
  type MonitorProcess,
} from './helpers/monitor-process.js';

describe('bot lifecycle with real processes', () => {
  const dir = new TestDir();
  let monitor: MonitorProcess;

  before(async () => {
    // 4 s without a heartbeat (20 intervals of the bots' 200 ms): a bot starved by a loaded box
    // does not go falsely stale, and the sampler (every 0.5 s) finds a dead pid long before.
    monitor = await startMonitor(dir, ['--stale-after', '4', '--sample-interval', '0.5']);
  });
  after(async () => {
    await killStarted();
    if (monitor) await stopMonitor(monitor);
    dir.remove();
  });

  it('a hung bot turns stale, comes back online, and is dead once its process is gone', async () => {
    const bot = startBot(monitor.socket, 'life_hung', 200);
    await waitFor('online', async () => (await botStatus(monitor, 'life_hung'))?.status === 'online');

    process.kill(bot.pid, 'SIGSTOP'); // alive but silent: hung
    const stale = await waitFor(
      'stale',
      async () => {
        const b = await botStatus(monitor, 'life_hung');
        return b?.status === 'stale' && b;
      },
      30_000,
    );
    assert.equal(stale.pid, bot.pid);

    process.kill(bot.pid, 'SIGCONT');
    await waitFor('online again', async () => (await botStatus(monitor, 'life_hung'))?.status === 'online', 30_000);

    process.kill(bot.pid, 'SIGKILL');
    await bot.exited;
    await waitFor('dead', async () => (await botStatus(monitor, 'life_hung'))?.status === 'dead', 30_000, 20);
    // Found by the sampler, not by the stale window: the events say online->dead, not via stale.

    await flush(monitor);
    const events = query<{ transition: string }>(
      monitor.db,
      "SELECT coalesce(from_status, '-') || '->' || to_status || ':' || reason AS transition FROM bot_events WHERE channel = 'life_hung' ORDER BY id",
    );
    assert.deepEqual(
      events.map((e) => e.transition),
      [
        '-->online:registered',
        'online->stale:no_heartbeat',
        'stale->online:heartbeat_resumed',
        'online->dead:process_exited',
      ],
    );
    assert.equal(
      query<{ status: string }>(monitor.db, "SELECT status FROM bot_status WHERE channel = 'life_hung'")[0].status,
      'dead',
    );
  });

  it('a bot that unregisters cleanly is offline, not dead', async () => {
    const bot = startBot(monitor.socket, 'life_clean', 200);
    await waitFor('online', async () => (await botStatus(monitor, 'life_clean'))?.status === 'online');
    process.kill(bot.pid, 'SIGTERM');
    assert.equal(await bot.exited, 0);
    await waitFor('offline', async () => (await botStatus(monitor, 'life_clean'))?.status === 'offline');
    // Two more sample rounds (the sampler's own count): the exited pid must not turn it dead.
    const rounds = await actorDetail(monitor, 'sampler', 'rounds');
    await waitFor(
      'two sample rounds',
      async () => (await actorDetail(monitor, 'sampler', 'rounds')) >= rounds + 2,
      30_000,
    );
    assert.equal((await botStatus(monitor, 'life_clean'))?.status, 'offline');
  });

  it('a dead bot that registers again is online with its new pid', async () => {
    const first = startBot(monitor.socket, 'life_again', 200);
    await waitFor('online', async () => (await botStatus(monitor, 'life_again'))?.status === 'online');
    process.kill(first.pid, 'SIGKILL');
    await waitFor('dead', async () => (await botStatus(monitor, 'life_again'))?.status === 'dead', 30_000);
    const second = startBot(monitor.socket, 'life_again', 200);
    const back = await waitFor('online with new pid', async () => {
      const b = await botStatus(monitor, 'life_again');
      return b?.status === 'online' && b.pid === second.pid && b;
    });
    assert.notEqual(back.pid, first.pid);
  });
});
