// The registry crashes while another connection holds the SQLite write lock: the rows of its burst
// are still held by the writer (not committed, not spooled), so the restarted registry's rebuild
// cannot see their cursor and applies the re-sent ingest batches again. The writer skips those
// rows by their ingest batch's cursor: after the unlock every channel has one 'online' event, one
// 'offline' event if it unregistered, and the right status — however long the supervisor waited.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { requestControl } from '../src/http/control-client.js';
import {
  actorDetail,
  actorHealth,
  flush,
  killStarted,
  line,
  lockDatabase,
  query,
  sendLines,
  startMonitor,
  status,
  stopMonitor,
  TestDir,
  waitFor,
} from './helpers/monitor-process.js';

const BOTS = 200;
const channel = (i: number) => `locked_${i}`;
const gone = (i: number) => i % 4 === 0; // these unregister after registering

describe('registry crash while the database is locked', () => {
  const dir = new TestDir();
  after(async () => {
    await killStarted();
    dir.remove();
  });

  it('stores the rows of re-applied ingest batches once', { timeout: 120_000 }, async () => {
    const config = join(dir.path, 'config.json');
    // The rows must still be held (not spooled) when the registry dies: no spooling for a minute.
    writeFileSync(config, JSON.stringify({ writer: { maxHeldMs: 60_000 } }));
    const monitor = await startMonitor(dir, ['--enable-faults', '--config', config]);
    const locker = lockDatabase(dir.db);
    try {
      const pid = process.pid; // a live pid: no register is refused or turned dead
      // Four connections; a bot's register and unregister go on the same one, in order.
      const lines: string[][] = [[], [], [], []];
      for (let i = 0; i < BOTS; i++) {
        lines[i % 4].push(line({ type: 'register', channel: channel(i), pid, features: { [`f${i % 7}`]: true } }));
        if (gone(i)) lines[i % 4].push(line({ type: 'unregister', channel: channel(i), pid }));
      }
      await Promise.all(lines.map((connection) => sendLines(monitor.socket, connection)));
      const applied = async () => {
        const bots = (await status(monitor)).filter((b) => b.channel.startsWith('locked_'));
        return (
          bots.length === BOTS &&
          bots.every((b) => b.status === (gone(Number(b.channel.slice(7))) ? 'offline' : 'online'))
        );
      };
      await waitFor('the burst applied by the registry', applied, 20_000);
      assert.equal(
        query<{ n: number }>(dir.db, 'SELECT count(*) n FROM bot_events')[0].n,
        0,
        'nothing committed while locked',
      );
      await requestControl(monitor.admin, 'POST', '/fault/crash?actor=registry');
      await waitFor(
        'registry restarted',
        async () => {
          const registry = await actorHealth(monitor, 'registry');
          return registry.up && registry.restarts >= 1;
        },
        20_000,
      );
      // The restarted registry knows the bots only from the re-sent ingest batches (the database has nothing).
      await waitFor('the burst applied again by the restarted registry', applied, 20_000);
    } finally {
      locker.release();
    }
    await flush(monitor);

    const events = query<{ channel: string; to_status: string; n: number }>(
      dir.db,
      "SELECT channel, to_status, count(*) n FROM bot_events WHERE channel LIKE 'locked_%' GROUP BY channel, to_status",
    );
    const eventCount = new Map(events.map((e) => [`${e.channel}:${e.to_status}`, e.n]));
    const rows = new Map(
      query<{ channel: string; status: string }>(
        dir.db,
        "SELECT channel, status FROM bot_status WHERE channel LIKE 'locked_%'",
      ).map((r) => [r.channel, r.status]),
    );
    const wrong: string[] = [];
    for (let i = 0; i < BOTS; i++) {
      const online = eventCount.get(`${channel(i)}:online`) ?? 0;
      const offline = eventCount.get(`${channel(i)}:offline`) ?? 0;
      if (online !== 1) wrong.push(`${channel(i)}: ${online} online events`);
      if (offline !== (gone(i) ? 1 : 0)) wrong.push(`${channel(i)}: ${offline} offline events`);
      if (rows.get(channel(i)) !== (gone(i) ? 'offline' : 'online'))
        wrong.push(`${channel(i)}: status ${rows.get(channel(i))}`);
    }
    assert.deepEqual(wrong.slice(0, 20), [], `${wrong.length} problems`);
    // The scenario really happened: the writer saw the re-applied rows and skipped them.
    assert.ok((await actorDetail(monitor, 'db', 'reapplied')) > 0, 'the writer skipped re-applied rows');
    assert.match(monitor.output(), /actor exited unexpectedly/);
    assert.equal(await stopMonitor(monitor), 0);
  });
});
