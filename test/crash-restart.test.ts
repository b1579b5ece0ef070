// Crash each actor in turn while 100 bots send heartbeats and llm_usage: every actor comes back,
// no llm_usage row is lost or doubled, and no bot is marked stale because of the crash.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { requestControl } from '../src/http/control-client.js';
import {
  actorHealth,
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

describe('actor crash and restart', () => {
  const dir = new TestDir();
  let monitor: MonitorProcess;

  before(async () => {
    // 5 s stale window: ten of the fleet's 500 ms intervals, so a restart — not a fleet starved by
    // a loaded box — is what would turn a bot stale.
    monitor = await startMonitor(dir, ['--enable-faults', '--stale-after', '5', '--sample-interval', '0.5']);
  });
  after(async () => {
    await killStarted();
    if (monitor) await stopMonitor(monitor);
    dir.remove();
  });

  it('restarts registry, db writer, sampler and alerter with no message lost and no false stale', async () => {
    const fleet = spawn(process.execPath, [FLEET, monitor.socket, 'crash', '100', '500', '1'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let fleetOut = '';
    fleet.stdout.on('data', (c: Buffer) => (fleetOut += c.toString()));
    try {
      const allOnline = async () => (await status(monitor)).filter((b) => b.status === 'online').length === 100;
      await waitFor('100 bots online', allOnline, 30_000);

      for (const actor of ['registry', 'db', 'sampler', 'alerter'] as const) {
        const restartsBefore = await restarts(monitor, actor);
        await requestControl(monitor.admin, 'POST', `/fault/crash?actor=${actor}`);
        await waitFor(
          `${actor} restarted`,
          async () => (await restarts(monitor, actor)) > restartsBefore && (await up(monitor, actor)),
          30_000,
        );
        await waitFor(`100 bots online after the ${actor} restart`, allOnline, 30_000);
      }
      const bots = await status(monitor);
      assert.equal(
        bots.filter((b) => b.status === 'online').length,
        100,
        JSON.stringify(bots.filter((b) => b.status !== 'online')),
      );
      // Enough traffic to prove something, however fast the restarts went: the fleet keeps sending until then.
      await waitFor(
        'over 500 llm_usage lines received',
        async () =>
          (await requestControl<{ ingest: { accepted: { llm_usage: number } } }>(monitor.control, 'GET', '/health'))
            .ingest.accepted.llm_usage > 500,
        60_000,
        250,
      );
    } finally {
      fleet.kill('SIGTERM');
      await new Promise((r) => fleet.once('exit', r));
    }
    const { llmWritten } = JSON.parse(fleetOut.trim().split('\n').pop()!) as { llmWritten: number };
    assert.ok(llmWritten > 500, `fleet wrote ${llmWritten} llm_usage lines`);
    const landed = await waitFor(
      'every written row landed',
      async () => {
        await flush(monitor);
        const [{ n }] = query<{ n: number }>(monitor.db, "SELECT count(*) n FROM llm_usage WHERE feature = 'fleet'");
        return n >= llmWritten && n;
      },
      30_000,
      250,
    );
    assert.equal(landed, llmWritten, 'no row lost and none inserted twice');
    assert.deepEqual(query(monitor.db, "SELECT channel, reason FROM bot_events WHERE to_status = 'stale'"), []);
    assert.match(monitor.output(), /actor exited unexpectedly/);
  });
});

const restarts = async (m: MonitorProcess, actor: string) => (await actorHealth(m, actor)).restarts;
const up = async (m: MonitorProcess, actor: string) => (await actorHealth(m, actor)).up;
