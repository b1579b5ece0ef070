// The idle timeout spares only connections whose register/heartbeat the registry accepted (their
// bot is live): a connection whose only register was refused, or made a bot that is dead at once,
// is reaped like any idle one. A timeout that came while the monitor itself was not reading
// (backpressure, throttle) is ignored, and the connection is still reaped after that period.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { closedWithin, connect, counters, json, type RawConnection } from './fixtures/socket-tools.js';
import {
  botStatus,
  flush,
  sleep,
  startMonitor,
  stopMonitor,
  TestDir,
  waitFor,
  type MonitorProcess,
} from './helpers/monitor-process.js';

const IDLE_TIMEOUT_MS = 1_000;
/** Time to see a connection reaped: idle timeout plus a loaded box's scheduling, generously. */
const REAP_WITHIN_MS = 15_000;
const pid = process.pid; // a live pid: this test process stands in for the bots

async function exitedPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await new Promise((r) => child.once('exit', r));
  return child.pid!;
}

/** A monitor with these limits for the enclosing describe, and raw connections to it, all closed after. */
function monitorWith(limits: Record<string, number>) {
  const dir = new TestDir();
  const open: RawConnection[] = [];
  const sut = {
    dir,
    monitor: null as unknown as MonitorProcess,
    async conn(): Promise<RawConnection> {
      const c = await connect(sut.monitor.socket);
      open.push(c);
      return c;
    },
  };
  before(async () => {
    const config = join(dir.path, 'limits.json');
    writeFileSync(config, JSON.stringify({ limits: { idleTimeoutMs: IDLE_TIMEOUT_MS, ...limits } }));
    sut.monitor = await startMonitor(dir, ['--config', config]);
  });
  after(async () => {
    for (const c of open) c.socket.destroy();
    if (sut.monitor) await stopMonitor(sut.monitor);
    dir.remove();
  });
  return sut;
}

describe(`idle reaping (idleTimeoutMs ${IDLE_TIMEOUT_MS})`, () => {
  const sut = monitorWith({ maxPendingPerLink: 200 });

  it('a connection whose register made a dead bot is reaped; one whose register was accepted is not', async () => {
    const before = (await counters(sut.monitor.control)).ingest.idle_timeouts;
    const accepted = await sut.conn();
    await accepted.write(json({ type: 'register', channel: 'reap_ok', pid }));
    const deadPid = await sut.conn();
    await deadPid.write(json({ type: 'register', channel: 'reap_dead', pid: await exitedPid() }));
    assert.ok(await closedWithin(deadPid, REAP_WITHIN_MS), 'the connection of the dead-pid register was reaped');
    assert.equal(
      (await botStatus(sut.monitor, 'reap_dead'))?.status,
      'dead',
      'its register was processed: stored dead',
    );
    // Opened before the reaped one and just as silent since: only its accepted register spares it.
    assert.equal(accepted.isClosed(), false, 'the accepted connection is still open');
    assert.equal((await botStatus(sut.monitor, 'reap_ok'))?.status, 'online');
    assert.equal((await counters(sut.monitor.control)).ingest.idle_timeouts - before, 1);
  });

  it('a timeout during backpressure is not idleness, and the connection is still reaped afterwards', async () => {
    const before = (await counters(sut.monitor.control)).ingest;
    const idle = await sut.conn();
    let closedAt = Infinity;
    void idle.closed.then(() => (closedAt = Date.now()));
    const locker = new Database(sut.dir.db);
    let releasedAt = 0;
    try {
      locker.exec('BEGIN IMMEDIATE');
      // 150 rows held by the locked writer: over half of maxPendingPerLink, so reading pauses.
      const flood = await sut.conn();
      await flood.write(
        Array.from({ length: 150 }, (_, i) =>
          json({ type: 'llm_usage', channel: 'reap_flood', model: 'm', feature: 'f', tokens_in: i, tokens_out: 1 }),
        ).join(''),
      );
      await waitFor(
        'reading paused',
        async () => (await counters(sut.monitor.control)).ingest.backpressure_pauses > before.backpressure_pauses,
      );
      // Hold the pause well past the idle timeout: the idle connection's timer fires meanwhile.
      await sleep(IDLE_TIMEOUT_MS * 2.5);
    } finally {
      locker.exec('ROLLBACK');
      locker.close();
      releasedAt = Date.now();
    }
    assert.ok(await closedWithin(idle, REAP_WITHIN_MS), 'the idle connection was reaped after the backpressure period');
    assert.ok(closedAt >= releasedAt, 'not before reading resumed');
    const after = (await counters(sut.monitor.control)).ingest;
    assert.ok(
      after.backpressure_ms - before.backpressure_ms >= IDLE_TIMEOUT_MS,
      `paused ${after.backpressure_ms - before.backpressure_ms} ms: longer than the idle timeout`,
    );
    assert.ok(after.idle_timeouts - before.idle_timeouts >= 1);
    assert.equal(after.dropped_overflow, 0);
    await flush(sut.monitor);
  });
});

describe('idle reaping with a full registry and a throttled connection', () => {
  const sut = monitorWith({ maxBots: 1, maxLinesPerSecondPerConnection: 2 });

  it('a connection whose only register was refused (maxBots) is reaped', async () => {
    const first = await sut.conn();
    await first.write(json({ type: 'register', channel: 'full_first', pid }));
    await waitFor('the only room taken', () => botStatus(sut.monitor, 'full_first'));
    const refused = await sut.conn();
    await refused.write(json({ type: 'register', channel: 'full_refused', pid }));
    await waitFor(
      'the register refused',
      async () => (await counters(sut.monitor.control)).registry.refused_max_bots >= 1,
    );
    assert.ok(await closedWithin(refused, REAP_WITHIN_MS), 'the refused connection was reaped');
    assert.equal(first.isClosed(), false, 'the accepted one stays');
  });

  it('a throttled connection that then stays silent is reaped once its throttle ends', async () => {
    const before = (await counters(sut.monitor.control)).ingest;
    const c = await sut.conn();
    // 10 lines at 2 lines/s: reading pauses ~4 s, four idle timeouts' worth.
    await c.write('x\n'.repeat(10));
    await waitFor('throttled', async () => (await counters(sut.monitor.control)).ingest.throttled > before.throttled);
    assert.ok(await closedWithin(c, REAP_WITHIN_MS), 'reaped after the throttle');
    const after = (await counters(sut.monitor.control)).ingest;
    assert.equal(after.rejected.invalid_json - before.rejected.invalid_json, 10, 'every line was read first');
  });
});
