// The monitor as a systemd `Type=notify` service, with a fake NOTIFY_SOCKET: a Unix datagram socket
// this test binds (unix-dgram, as the monitor uses). It must receive READY=1, STATUS= lines,
// WATCHDOG=1 every WATCHDOG_USEC/2 — withheld while an actor is hung — and STOPPING=1 on SIGTERM.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { requestControl } from '../src/http/control-client.js';
import { unixDgram } from '../src/systemd.js';
import {
  actorHealth,
  killStarted,
  startMonitor,
  stopMonitor,
  TestDir,
  waitFor,
  type MonitorProcess,
} from './helpers/monitor-process.js';

interface Datagram {
  at: number;
  text: string;
}

describe('systemd notify', () => {
  const dir = new TestDir();
  const notifyPath = join(dir.path, 'notify.sock');
  const received: Datagram[] = [];
  const notify = unixDgram.createSocket('unix_dgram', (msg) => received.push({ at: Date.now(), text: msg.toString() }));
  notify.bind(notifyPath);
  let monitor: MonitorProcess | undefined;

  after(async () => {
    notify.close();
    await killStarted();
    if (monitor) await stopMonitor(monitor);
    dir.remove();
  });

  const watchdogs = () => received.filter((d) => d.text === 'WATCHDOG=1');

  it('sends READY, STATUS and WATCHDOG, withholds WATCHDOG while an actor is hung, and STOPPING on SIGTERM', async () => {
    const config = join(dir.path, 'config.json');
    // Pinged every 200 ms, so a hung actor fails liveness after 1.2 s; it is restarted only after
    // 6 s, which leaves a long stretch in which no WATCHDOG may arrive.
    writeFileSync(
      config,
      JSON.stringify({ healthIntervalMs: 500, supervisor: { pingIntervalMs: 200, hungAfterMs: 6_000 } }),
    );
    monitor = await startMonitor(dir, ['--enable-faults', '--config', config], {
      env: { ...process.env, NOTIFY_SOCKET: notifyPath, WATCHDOG_USEC: '1000000' },
    });

    const ready = await waitFor('READY=1', () => received.find((d) => d.text.startsWith('READY=1\n')));
    assert.match(ready.text, /^READY=1\nSTATUS=0 online, 0 stale, 0 dead, 0 offline; actors up 4\/4; restarts 0$/);
    await waitFor('a periodic STATUS= line', () =>
      received.find((d) => d.at > ready.at && d.text.startsWith('STATUS=')),
    );
    await waitFor('WATCHDOG=1 at least 3 times', () => watchdogs().length >= 3);

    await requestControl(monitor.admin, 'POST', '/fault/hang?actor=sampler');
    await waitFor('the monitor withholds the watchdog', () => monitor!.output().includes('watchdog withheld'));
    const withheldSeenAt = Date.now();
    await waitFor(
      'sampler restarted',
      async () => {
        const h = await actorHealth(monitor!, 'sampler');
        return h.up && h.restarts === 1;
      },
      30_000,
    );
    const resumed = await waitFor('WATCHDOG=1 again after the restart', () =>
      watchdogs().find((d) => d.at > withheldSeenAt),
    );

    // The silence spans the hang: no WATCHDOG from when the monitor said it withholds them until
    // the restarted sampler answered, and that stretch is several watchdog intervals long.
    const lastBefore = watchdogs()
      .filter((d) => d.at <= withheldSeenAt)
      .pop()!;
    const gapMs = resumed.at - lastBefore.at;
    assert.ok(gapMs >= 2_000, `no WATCHDOG for ${gapMs} ms while the sampler was hung (interval 500 ms)`);
    // STATUS= goes out with each health report, so the one that counts the restart may come a report later.
    await waitFor('a STATUS= line with every actor up again and the restart counted', () =>
      received.find((d) => d.at > withheldSeenAt && /^STATUS=.*actors up 4\/4; restarts 1$/.test(d.text)),
    );

    const exitCode = await stopMonitor(monitor);
    assert.equal(exitCode, 0);
    assert.ok(
      received.some((d) => d.text.startsWith('STOPPING=1')),
      'STOPPING=1 on SIGTERM',
    );
  });
});
