// A monitor that is itself paused (SIGSTOP) must not count its own sleep against the bots.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import {
  actorDetail,
  flush,
  killStarted,
  query,
  sleep,
  startMonitor,
  status,
  stopMonitor,
  TestDir,
  waitFor,
  type MonitorProcess,
} from './helpers/monitor-process.js';

const FLEET = fileURLToPath(new URL('./fixtures/fleet.js', import.meta.url));

describe('monitor pause', () => {
  const dir = new TestDir();
  let monitor: MonitorProcess;
  let fleetPid = 0;

  before(async () => {
    // 4 s: eight of the fleet's 500 ms heartbeat intervals, so a fleet starved by a loaded box is
    // not what turns a bot stale here; the pause below is longer than that window.
    monitor = await startMonitor(dir, ['--stale-after', '4', '--sample-interval', '0.5']);
  });
  after(async () => {
    if (fleetPid) process.kill(fleetPid, 'SIGKILL');
    await killStarted();
    if (monitor) await stopMonitor(monitor);
    dir.remove();
  });

  it('SIGSTOP of the monitor for 6 s with a 4 s stale window turns no bot stale', async () => {
    const fleet = spawn(process.execPath, [FLEET, monitor.socket, 'paused', '50', '500'], { stdio: 'ignore' });
    fleetPid = fleet.pid!;
    await waitFor(
      '50 bots online',
      async () => (await status(monitor)).filter((b) => b.status === 'online').length === 50,
      30_000,
    );
    const pausesBefore = await actorDetail(monitor, 'registry', 'pauses_detected');

    process.kill(monitor.pid, 'SIGSTOP');
    await sleep(6_000); // the stimulus: a pause longer than the stale window
    process.kill(monitor.pid, 'SIGCONT');
    const resumedAt = Date.now();
    // A false stale would be decided on the first stale check after the resume (every heartbeat
    // then looks 6 s old; the checks run every 0.5 s). Once the registry has noticed the pause and
    // every bot has been heard more than a check interval after the resume, such a check has run,
    // and a stale it decided would be in bot_events below.
    await waitFor(
      'the pause detected',
      async () => (await actorDetail(monitor, 'registry', 'pauses_detected')) > pausesBefore,
      30_000,
    );
    await waitFor(
      'every bot heard after the resume',
      async () => (await status(monitor)).filter((b) => b.last_heartbeat! > resumedAt + 1_000).length === 50,
      30_000,
    );

    const bots = await status(monitor);
    assert.equal(
      bots.filter((b) => b.status === 'online').length,
      50,
      JSON.stringify(bots.filter((b) => b.status !== 'online')),
    );
    await flush(monitor);
    assert.deepEqual(query(monitor.db, "SELECT channel, reason FROM bot_events WHERE to_status = 'stale'"), []);
    assert.match(monitor.output(), /monitor pause detected/);

    // The window is still enforced afterwards: a bot that really goes silent does turn stale.
    process.kill(fleet.pid!, 'SIGSTOP');
    await waitFor(
      'stale after the fleet hangs',
      async () => (await status(monitor)).every((b) => b.status === 'stale'),
      30_000,
    );
    process.kill(fleet.pid!, 'SIGCONT');
  });
});
