// `fault hang` of each actor (its thread spins forever) while real bot processes heartbeat and send
// llm_usage: the supervisor finds it not answering its pings, terminates and restarts it (reason
// `hung`), no llm_usage row is lost or doubled, and no bot turns stale or dead because of it.
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
  sleep,
  startBot,
  startMonitor,
  status,
  stopMonitor,
  TestDir,
  waitFor,
  type MonitorProcess,
} from './helpers/monitor-process.js';

const FLEET = fileURLToPath(new URL('./fixtures/fleet.js', import.meta.url));
const ACTORS = ['registry', 'db', 'sampler', 'alerter'] as const;

describe('hung actor', () => {
  const dir = new TestDir();
  let monitor: MonitorProcess;

  before(async () => {
    // Stale after 6 s while bots heartbeat every 300 ms: a loaded box would have to starve the
    // fleet for 6 s straight to fake a stale; the default liveness deadline (5 s) is in force.
    monitor = await startMonitor(dir, ['--enable-faults', '--stale-after', '6', '--sample-interval', '0.5']);
  });
  after(async () => {
    await killStarted();
    if (monitor) await stopMonitor(monitor);
    dir.remove();
  });

  it('a paused monitor (SIGSTOP longer than the liveness deadline) restarts no actor', async () => {
    process.kill(monitor.pid, 'SIGSTOP');
    await sleep(7_000); // longer than hungAfterMs (5 s): without the pause allowance every actor would be declared hung
    process.kill(monitor.pid, 'SIGCONT');
    // Answered a ping after the pause, and the registry saw the pause: the supervisor has run a
    // ping round since, which is where a false hang would have been declared.
    await waitFor(
      'every actor answering after the pause',
      async () => {
        const all = await Promise.all(ACTORS.map((a) => actorHealth(monitor, a)));
        return all.every((h) => h.up && h.last_answer_ms_ago! < 1_500) && Number(all[0].detail.pauses_detected) >= 1;
      },
      15_000,
    );
    for (const actor of ACTORS)
      assert.equal((await actorHealth(monitor, actor)).restarts, 0, `${actor} was not restarted`);
  });

  it('registry, db writer and sampler are restarted with reason hung, nothing lost or doubled, no false stale', async (t) => {
    const fleet = spawn(process.execPath, [FLEET, monitor.socket, 'hang', '50', '300', '1'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let fleetOut = '';
    fleet.stdout.on('data', (c: Buffer) => (fleetOut += c.toString()));
    const bots = [1, 2, 3].map((i) => startBot(monitor.socket, `hang_bot_${i}`, 300));
    let fleetStoppedAt = '';
    try {
      await waitFor(
        '53 bots online',
        async () => (await status(monitor)).filter((b) => b.status === 'online').length === 53,
        15_000,
      );

      for (const actor of ACTORS) {
        const before = await actorHealth(monitor, actor);
        const hungAt = Date.now();
        await requestControl(monitor.admin, 'POST', `/fault/hang?actor=${actor}`);
        // Health answers at once while the actor is hung, with up:false and a growing silence.
        const silent = await waitFor(
          `${actor} reported not answering`,
          async () => {
            const h = await actorHealth(monitor, actor);
            return (
              !h.up &&
              h.restarts === before.restarts &&
              h.last_answer_ms_ago !== null &&
              h.last_answer_ms_ago > 1_500 &&
              h
            );
          },
          15_000,
        );
        assert.equal(silent.detail.state, 'not answering');
        const restarted = await waitFor(
          `${actor} restarted`,
          async () => {
            const h = await actorHealth(monitor, actor);
            return h.up && h.restarts === before.restarts + 1 && h;
          },
          30_000,
        );
        assert.equal(restarted.last_restart_reason, 'hung');
        t.diagnostic(`${actor}: hung → up again in ${Date.now() - hungAt} ms`);
      }
      await waitFor(
        '53 bots online after the restarts',
        async () => (await status(monitor)).filter((b) => b.status === 'online').length === 53,
        15_000,
      );
    } finally {
      // The fleet's bots exit here without unregistering: what the sampler makes of that later is not under test.
      fleetStoppedAt = new Date().toISOString();
      fleet.kill('SIGTERM');
      await new Promise((r) => fleet.once('exit', r));
    }
    const { llmWritten } = JSON.parse(fleetOut.trim().split('\n').pop()!) as { llmWritten: number };
    assert.ok(llmWritten > 500, `fleet wrote ${llmWritten} llm_usage lines`);
    const landed = await waitFor(
      'every written row landed',
      async () => {
        await flush(monitor);
        const [{ n }] = query<{ n: number }>(
          monitor.db,
          "SELECT count(*) n FROM llm_usage WHERE channel LIKE 'hang_%'",
        );
        return n >= llmWritten && n;
      },
      20_000,
      250,
    );
    assert.equal(landed, llmWritten, 'no row lost and none inserted twice');
    const lateOrFalse =
      "SELECT channel, to_status, reason, ts < ? AS before_fleet_stop FROM bot_events WHERE to_status IN ('stale', 'dead')";
    const events = query<{ channel: string; before_fleet_stop: number }>(monitor.db, lateOrFalse, fleetStoppedAt);
    assert.deepEqual(
      events.filter((e) => e.before_fleet_stop === 1 || e.channel.startsWith('hang_bot_')),
      [],
      'no bot was called stale or dead while it ran',
    );
    for (const actor of ACTORS)
      assert.match(
        monitor.output(),
        new RegExp(`"actor":"${actor}"[^\\n]*"reason":"hung"[^\\n]*actor terminated by the supervisor`),
      );
    for (const bot of bots) assert.equal(bot.child.exitCode, null, 'bot processes stayed up');
  });
});
