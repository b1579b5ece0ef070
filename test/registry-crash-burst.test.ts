// The registry crashes in the middle of a register burst (registers with features, some followed
// by unregisters): no registration, feature set, unregister or transition is lost, and none is
// stored twice. Ingest batches are acknowledged only once the rows they caused are with the
// writer, and a restarted registry skips re-sent batches whose rows are already stored.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { requestControl } from '../src/http/control-client.js';
import type { HealthReport } from '../src/monitor.js';
import {
  flush,
  killStarted,
  line,
  query,
  sendLines,
  startMonitor,
  status,
  stopMonitor,
  TestDir,
  waitFor,
  type MonitorProcess,
} from './helpers/monitor-process.js';

const BOTS = 2_000;
const channel = (i: number) => `burst_${i}`;
const gone = (i: number) => i % 3 === 0; // these unregister after registering
/** These register again (same pid) with other features just before the crash. */
const changed = (i: number) => !gone(i) && i % 5 === 0 && i < BOTS / 2;
const featuresOf = (i: number, again: boolean) =>
  again ? { [`g${i % 5}`]: true, llm: false } : { [`f${i % 7}`]: true, llm: i % 2 === 0 };

async function registryRestarts(m: MonitorProcess): Promise<number> {
  const { actors } = await requestControl<{ actors: HealthReport }>(m.control, 'GET', '/health');
  const registry = actors.find((a) => a.actor === 'registry')!;
  return registry.up ? registry.restarts : -1;
}

describe('registry crash during a register burst', () => {
  const dir = new TestDir();
  after(async () => {
    await killStarted();
    dir.remove();
  });

  it(
    'loses no registration, feature set, unregister or transition, and doubles none',
    { timeout: 120_000 },
    async () => {
      const monitor = await startMonitor(dir, ['--enable-faults']);
      // Every bot is "run" by this test process: a live pid, so no register is refused.
      const pid = process.pid;
      const register = (i: number, again = false) =>
        line({ type: 'register', channel: channel(i), pid, features: featuresOf(i, again) });
      const unregister = (i: number) => line({ type: 'unregister', channel: channel(i), pid });
      const streams = 8;
      const burst = (from: number, to: number) =>
        Promise.all(
          Array.from({ length: streams }, (_, k) => {
            const lines: string[] = [];
            for (let i = from + k; i < to; i += streams) {
              lines.push(register(i));
              if (gone(i)) lines.push(unregister(i));
            }
            return sendLines(monitor.socket, lines);
          }),
        );
      await burst(0, BOTS / 2);
      // New features for a running bot are state too: they must not wait for a periodic flush.
      const again = Array.from({ length: BOTS / 2 }, (_, i) => i).filter(changed);
      await sendLines(
        monitor.socket,
        again.map((i) => register(i, true)),
      );
      const second = burst(BOTS / 2, BOTS);
      await requestControl(monitor.admin, 'POST', '/fault/crash?actor=registry'); // while the second half is in flight
      await second;
      await waitFor('registry restarted', async () => (await registryRestarts(monitor)) >= 1, 20_000);
      await waitFor(
        'every bot known to the live registry',
        async () => (await status(monitor)).filter((b) => b.channel.startsWith('burst_')).length === BOTS,
        20_000,
      );
      await flush(monitor);

      const rows = new Map(
        query<{ channel: string; status: string; features_json: string }>(
          dir.db,
          "SELECT channel, status, features_json FROM bot_status WHERE channel LIKE 'burst_%'",
        ).map((r) => [r.channel, r]),
      );
      const events = query<{ channel: string; to_status: string; n: number }>(
        dir.db,
        "SELECT channel, to_status, count(*) n FROM bot_events WHERE channel LIKE 'burst_%' GROUP BY channel, to_status",
      );
      const eventCount = new Map(events.map((e) => [`${e.channel}:${e.to_status}`, e.n]));
      const wrong: string[] = [];
      for (let i = 0; i < BOTS; i++) {
        const row = rows.get(channel(i));
        const want = gone(i) ? 'offline' : 'online';
        const features = JSON.stringify(featuresOf(i, changed(i)));
        if (!row) wrong.push(`${channel(i)}: no bot_status row`);
        else if (row.status !== want || row.features_json !== features)
          wrong.push(`${channel(i)}: ${row.status} ${row.features_json}`);
        if (eventCount.get(`${channel(i)}:online`) !== 1)
          wrong.push(`${channel(i)}: ${eventCount.get(`${channel(i)}:online`) ?? 0} online events`);
        if ((eventCount.get(`${channel(i)}:offline`) ?? 0) !== (gone(i) ? 1 : 0))
          wrong.push(`${channel(i)}: ${eventCount.get(`${channel(i)}:offline`) ?? 0} offline events`);
      }
      assert.deepEqual(wrong.slice(0, 20), [], `${wrong.length} bots wrong`);
      assert.match(monitor.output(), /actor exited unexpectedly/);
      assert.equal(await stopMonitor(monitor), 0);
    },
  );
});
