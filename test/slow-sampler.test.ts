// The promise the old monitor broke: a slow stats call must not stall anything else. With every
// stats call hanging 30 s, 200 bots heartbeating every 0.5 s with a 4 s stale window stay online,
// heartbeats stay fast, llm_usage keeps landing, and sample rounds are abandoned, not stacked.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { requestControl } from '../src/http/control-client.js';
import type { HealthReport } from '../src/monitor.js';
import type { RegistryLatency } from '../src/actors/registry-messages.js';
import {
  flush,
  killStarted,
  query,
  startMonitor,
  status,
  stopMonitor,
  TestDir,
  waitFor,
  type MonitorProcess,
} from './helpers/monitor-process.js';

const FLEET = fileURLToPath(new URL('./fixtures/fleet.js', import.meta.url));

describe('slow sampler', () => {
  const dir = new TestDir();
  let monitor: MonitorProcess;

  before(async () => {
    // 4 s: eight heartbeat intervals, so only a monitor that stalls (not a fleet starved by a
    // loaded box) turns a bot stale.
    monitor = await startMonitor(dir, [
      '--enable-faults',
      '--fault-sampler-delay',
      '30000',
      '--stale-after',
      '4',
      '--sample-interval',
      '0.5',
    ]);
  });
  after(async () => {
    await killStarted();
    if (monitor) await stopMonitor(monitor);
    dir.remove();
  });

  it('hung stats calls do not slow heartbeats, ingest, or make anyone stale', async (t) => {
    const fleet = spawn(process.execPath, [FLEET, monitor.socket, 'slow', '200', '500', '1'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let fleetOut = '';
    fleet.stdout.on('data', (c: Buffer) => (fleetOut += c.toString()));
    try {
      await waitFor(
        '200 bots online',
        async () => (await status(monitor)).filter((b) => b.status === 'online').length === 200,
        30_000,
      );
      await requestControl(monitor.admin, 'POST', '/latency/reset');
      // Two stale windows' worth of heartbeats, counted by the registry (200 bots × 2/s × 8 s), and
      // sample rounds abandoned meanwhile: the hung stats calls ran through that whole time.
      await waitFor(
        'two stale windows of heartbeats',
        async () =>
          (await requestControl<RegistryLatency>(monitor.control, 'GET', '/latency')).sent_to_visible.count >= 3_200,
        60_000,
        250,
      );

      const bots = await status(monitor);
      assert.equal(
        bots.filter((b) => b.status === 'online').length,
        200,
        JSON.stringify(bots.filter((b) => b.status !== 'online').slice(0, 3)),
      );
      const latency = await requestControl<RegistryLatency>(monitor.control, 'GET', '/latency');
      t.diagnostic(
        `heartbeat send→registry p50 ${latency.sent_to_visible.p50_ms} ms, p99 ${latency.sent_to_visible.p99_ms} ms, max ${latency.sent_to_visible.max_ms} ms over ${latency.sent_to_visible.count} heartbeats`,
      );
      // A registry that waited on the hung sampler would delay heartbeats by up to 30 s (the fault's
      // delay); a quarter of the stale window is far below that and leaves a loaded box room.
      assert.ok(
        latency.sent_to_visible.p99_ms < 1_000,
        `heartbeat p99 ${latency.sent_to_visible.p99_ms} ms (bound 1000 ms)`,
      );

      const { actors } = await requestControl<{ actors: HealthReport }>(monitor.control, 'GET', '/health');
      const sampler = actors.find((a) => a.actor === 'sampler')!;
      assert.ok(sampler.up, 'the sampler thread still answers its health call');
      assert.ok(Number(sampler.detail.rounds_abandoned) >= 2, `rounds abandoned: ${sampler.detail.rounds_abandoned}`);
      assert.equal(sampler.restarts, 0);
    } finally {
      fleet.kill('SIGTERM');
      await new Promise((r) => fleet.once('exit', r));
    }
    const { llmWritten } = JSON.parse(fleetOut.trim().split('\n').pop()!) as { llmWritten: number };
    const landed = await waitFor(
      'ingest kept flowing',
      async () => {
        await flush(monitor);
        const [{ n }] = query<{ n: number }>(monitor.db, "SELECT count(*) n FROM llm_usage WHERE feature = 'fleet'");
        return n >= llmWritten && n;
      },
      30_000,
      250,
    );
    assert.equal(landed, llmWritten);
    assert.deepEqual(query(monitor.db, "SELECT channel FROM bot_events WHERE to_status = 'stale'"), []);
  });
});
