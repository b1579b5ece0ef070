// The supervisor against an actor that misbehaves in ways `fault hang` cannot show (a real worker
// thread running test/fixtures/misbehaving-actor.ts through the real bootstrap):
// - a thread over its heap limit dies with ERR_WORKER_OUT_OF_MEMORY and is restarted (out_of_memory);
// - a thread stuck in a system call, which terminate() cannot stop, is abandoned and replaced;
// - health calls to a silent actor are not queued up behind its back.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type * as Comlink from 'comlink';
import { pino } from 'pino';
import { resolveConfig, type ConfigOverrides } from '../src/config.js';
import { Supervisor } from '../src/supervisor/supervisor.js';
import type { MisbehavingControl } from './fixtures/misbehaving-actor.js';
import { TestDir, waitFor } from './helpers/monitor-process.js';

const FIXTURE = new URL('./fixtures/misbehaving-actor.js', import.meta.url);

interface Harness {
  supervisor: Supervisor;
  lines: string[];
  control: () => Comlink.Remote<MisbehavingControl>;
  health: () => Promise<Awaited<ReturnType<Supervisor['health']>>[number]>;
}

const running = new Set<Supervisor>();
const fifos: string[] = [];

/** Gives a FIFO's blocked open() a writer and leaves at once (ENXIO when nobody waits on it). */
function release(fifo: string): boolean {
  try {
    closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
    return true;
  } catch {
    return false;
  }
}

async function supervise(supervisor: ConfigOverrides['supervisor'], heapMb?: number): Promise<Harness> {
  const lines: string[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
  const config = resolveConfig({ logLevel: 'silent', supervisor });
  const sup = new Supervisor({
    config,
    log,
    mainLinks: {},
    onFatal: (err) => lines.push(`onFatal: ${err.message}`),
    specs: [
      {
        id: 'sampler',
        file: FIXTURE,
        restart: 'permanent',
        shutdownMs: 1_000,
        resourceLimits: heapMb ? { maxOldGenerationSizeMb: heapMb } : undefined,
      },
    ],
  });
  running.add(sup);
  await sup.start();
  return {
    supervisor: sup,
    lines,
    control: () => sup.control('sampler') as unknown as Comlink.Remote<MisbehavingControl>,
    health: async () => (await sup.health())[0],
  };
}

describe('supervisor liveness', () => {
  const dir = new TestDir();
  after(async () => {
    // A thread left blocked on a FIFO would keep this process from exiting: release them first.
    for (const fifo of fifos) release(fifo);
    for (const sup of running) await sup.stop();
    dir.remove();
  });

  it('restarts an actor whose thread runs out of heap (ERR_WORKER_OUT_OF_MEMORY) with reason out_of_memory', async () => {
    const h = await supervise({ backoffInitialMs: 50 }, 32);
    await h.control().leak();
    const restarted = await waitFor(
      'restart after out of memory',
      async () => {
        const health = await h.health();
        return health.up && health.restarts === 1 && health;
      },
      30_000,
    );
    assert.equal(restarted.last_restart_reason, 'out_of_memory');
    assert.ok(
      h.lines.some((l) => l.includes('ERR_WORKER_OUT_OF_MEMORY')),
      'the out-of-memory error is logged',
    );
    await h.supervisor.stop();
  });

  it('abandons a thread stuck in a system call after terminateTimeoutMs and starts a new incarnation anyway', async () => {
    const fifo = join(dir.path, 'never-written');
    execFileSync('mkfifo', [fifo]);
    fifos.push(fifo);
    const h = await supervise({
      pingIntervalMs: 100,
      hungAfterMs: 1_000,
      terminateTimeoutMs: 500,
      backoffInitialMs: 50,
    });
    await h.control().block(fifo);
    const restarted = await waitFor(
      'a new incarnation beside the stuck thread',
      async () => {
        const health = await h.health();
        return health.up && health.restarts === 1 && health;
      },
      20_000,
    );
    assert.equal(restarted.last_restart_reason, 'hung');
    assert.equal(h.supervisor.abandonedThreads, 1);
    assert.ok(
      h.lines.some((l) => l.includes('abandoning it and starting a new one')),
      'abandoning the thread is logged',
    );
    // Give the stuck open() its writer: the old thread returns to JavaScript, where terminate() ends it.
    assert.ok(release(fifo), 'the old thread is still blocked in open()');
    await waitFor('the abandoned thread ended', () => h.supervisor.abandonedThreads === 0, 10_000);
    await h.supervisor.stop();
  });

  it('does not queue health calls on an actor that stopped answering its pings', async () => {
    // hungAfterMs is far beyond the spin, so the actor is silent but never restarted here.
    const h = await supervise({ pingIntervalMs: 100, hungAfterMs: 60_000 });
    const callsBefore = Number((await h.health()).detail.stats_calls);
    await h.control().spin(4_000);
    let asked = 0;
    const silent = await waitFor(
      'health reports the actor not answering',
      async () => {
        asked++;
        const health = await h.health();
        return !health.up && health;
      },
      10_000,
      20,
    );
    assert.equal(silent.detail.state, 'not answering');
    for (let i = 0; i < 20; i++, asked++) assert.equal((await h.health()).up, false);
    const back = await waitFor(
      'the actor answers again',
      async () => {
        const health = await h.health();
        return health.up && health;
      },
      20_000,
    );
    // Every health call that reached the thread ran stats() once: the one just answered, and at
    // most the few sent before its silence was noticed — not one per call made meanwhile.
    const reached = Number(back.detail.stats_calls) - callsBefore;
    assert.ok(asked >= 21, `asked ${asked} times`);
    assert.ok(reached <= 3, `${reached} of ${asked} health calls made during the silence reached the actor`);
    assert.equal(back.restarts, 0);
    await h.supervisor.stop();
  });
});
