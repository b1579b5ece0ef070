// A monitor that is itself paused (SIGSTOP) must not count its own sleep against the bots.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { flush, killStarted, query, sleep, startMonitor, status, stopMonitor, TestDir, waitFor, type MonitorProcess } from './helpers/monitor-process.js';

const FLEET = fileURLToPath(new URL('./fixtures/fleet.js', import.meta.url));

describe('monitor pause', () => {
  const dir = new TestDir();
  let monitor: MonitorProcess;
  let fleetPid = 0;

  before(async () => {
    monitor = await startMonitor(dir, ['--stale-after', '2', '--sample-interval', '0.5']);
  });
  after(async () => {
    if (fleetPid) process.kill(fleetPid, 'SIGKILL');
    await killStarted();
    if (monitor) await stopMonitor(monitor);
    dir.remove();
  });

  it('SIGSTOP of the monitor for 5 s with a 2 s stale window turns no bot stale', async () => {
    const fleet = spawn(process.execPath, [FLEET, monitor.socket, 'paused', '50', '500'], { stdio: 'ignore' });
    fleetPid = fleet.pid!;
    await waitFor('50 bots online', async () => (await status(monitor)).filter((b) => b.status === 'online').length === 50, 15_000);

    process.kill(monitor.pid, 'SIGSTOP');
    await sleep(5_000);
    process.kill(monitor.pid, 'SIGCONT');
    await sleep(3_000); // longer than the stale window, so a false stale would have happened by now

    const bots = await status(monitor);
    assert.equal(bots.filter((b) => b.status === 'online').length, 50, JSON.stringify(bots.filter((b) => b.status !== 'online')));
    await flush(monitor);
    assert.deepEqual(query(monitor.db, "SELECT channel, reason FROM bot_events WHERE to_status = 'stale'"), []);
    assert.match(monitor.output(), /monitor pause detected/);

    // The window is still enforced afterwards: a bot that really goes silent does turn stale.
    process.kill(fleet.pid!, 'SIGSTOP');
    await waitFor('stale after the fleet hangs', async () => (await status(monitor)).every((b) => b.status === 'stale'), 10_000);
    process.kill(fleet.pid!, 'SIGCONT');
  });
});
