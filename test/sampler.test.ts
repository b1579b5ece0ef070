// The process sampler actor on a real worker thread, started with the supervisor handshake, with
// this file playing the registry (a main-side Link sending watch items, receiving round signals) and
// the db writer (a Link acknowledging metric rows). Bots are real child processes. Every child is
// killed by pid, every worker terminated and every port closed in after().
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import * as Comlink from 'comlink';
import { nodeEndpoint } from '../src/actors/comlink-endpoint.js';
import type { ActorControl, ActorToSupervisor, SupervisorToActor } from '../src/actors/actor-host.js';
import type { ActorHealth } from '../src/actors/health.js';
import { fromColumns, Link } from '../src/actors/link.js';
import { resolveConfig, type ConfigOverrides } from '../src/config.js';
import { openLogChannel } from '../src/log.js';
import { readProcStat } from '../src/proc.js';
import { startPlaceholders } from '../src/loadtest/placeholders.js';
import type { WriteItem } from '../src/actors/db-writer-messages.js';
import type { SampleResult, SampleRound, SampleRoundSignal, WatchItem } from '../src/actors/sampler-messages.js';
import { cpuMeter } from './helpers/monitor-process.js';
import { procStatFds } from './helpers/resources.js';
import { waitFor } from './helpers/wait.js';

const SAMPLER = fileURLToPath(new URL('../workers/sampler.js', import.meta.url));
const INTERVAL_MS = 300;

// ---- children, all killed by pid in after() ----------------------------------------------------

const children: ChildProcess[] = [];
const extraPids = new Set<number>();

after(() => {
  for (const pid of extraPids) kill(pid);
  for (const child of children) if (child.pid && child.exitCode === null && child.signalCode === null) kill(child.pid);
});

function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** A node child that prints "ready" once running; resolves with it then. */
async function startChild(body: string): Promise<ChildProcess & { pid: number }> {
  const child = spawn(process.execPath, ['-e', `process.stdout.write('ready\\n'); ${body}`], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.stdout.once('data', () => resolve());
  });
  return child as ChildProcess & { pid: number };
}

// Two spinning threads (~200 % on an idle 2-core box; what they get on a loaded one is measured).
const busyChild = () =>
  startChild("new (require('node:worker_threads').Worker)('for (;;) {}', { eval: true }); for (;;) {}");
const sleepingChild = () => startChild('setInterval(() => {}, 1e9);');

// ---- the sampler on a worker thread, with this file as registry and db ---------------------------

type Sample = Extract<SampleResult, { cpu_pct: number }>;
type MetricRow = Extract<WriteItem, { type: 'metric' }>;

class SamplerUnderTest {
  readonly rounds: SampleRound[] = [];
  readonly rows: MetricRow[] = [];
  readonly registry = new Link<WatchItem>('registry', {
    onSignal: (body) => {
      const { round, samples } = body as SampleRoundSignal;
      this.rounds.push({ round, samples: fromColumns(samples) as SampleResult[] });
    },
  });
  readonly db = new Link<never, WriteItem>('db', {
    onBatch: (items, ack) => {
      for (const item of items) if (item.type === 'metric') this.rows.push(item);
      ack();
    },
  });
  readonly control: Comlink.Remote<ActorControl>; // kept referenced for the life of the worker (comlink#692)
  readonly #worker: Worker;
  readonly #ports: MessagePort[];

  private constructor(worker: Worker, control: Comlink.Remote<ActorControl>, ports: MessagePort[]) {
    this.#worker = worker;
    this.control = control;
    this.#ports = ports;
  }

  static async start(overrides: ConfigOverrides): Promise<SamplerUnderTest> {
    const config = resolveConfig({ sampleIntervalMs: INTERVAL_MS, sampleTimeoutMs: 250, logLevel: 'error' }, overrides);
    const worker = new Worker(SAMPLER);
    const control = new MessageChannel();
    const registry = new MessageChannel();
    const db = new MessageChannel();
    const ready = new Promise<void>((resolve, reject) => {
      worker.once('message', (msg: ActorToSupervisor) =>
        msg.type === 'ready'
          ? resolve()
          : reject(new Error(`sampler failed to start: ${msg.type === 'init_failed' ? msg.error : msg.type}`)),
      );
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`sampler exited during start-up (${code})`)));
    });
    const log = openLogChannel();
    const init: SupervisorToActor = {
      type: 'init',
      name: 'sampler',
      config,
      incarnation: 1,
      control: control.port2,
      log,
      links: { registry: registry.port2, db: db.port2 },
    };
    worker.postMessage(init, [control.port2, log.port, registry.port2, db.port2]);
    await ready;
    worker.removeAllListeners('exit');
    const sut = new SamplerUnderTest(worker, Comlink.wrap<ActorControl>(nodeEndpoint(control.port1)), [control.port1]);
    sut.registry.attach(registry.port1);
    sut.db.attach(db.port1);
    return sut;
  }

  watch(channel: string, pid: number, start_time: number | null = null): void {
    this.registry.send({ type: 'watch', channel, pid, start_time });
  }

  unwatch(channel: string, pid: number): void {
    this.registry.send({ type: 'unwatch', channel, pid });
  }

  /** Re-wires the registry link the way the supervisor does after a registry restart. */
  relinkRegistry(): void {
    const channel = new MessageChannel();
    this.#worker.postMessage({ type: 'link', peer: 'registry', port: channel.port2 } satisfies SupervisorToActor, [
      channel.port2,
    ]);
    this.registry.attach(channel.port1);
  }

  health(): Promise<ActorHealth> {
    return this.control.health();
  }

  samplesFor(pid: number): SampleResult[] {
    return this.rounds.flatMap((r) => r.samples.filter((s) => s.pid === pid));
  }

  /** Index (1-based, counted from `from`) of the first round holding a sample of `pid`, and that sample. */
  firstSample(pid: number, from: number): { round: number; sample: Sample } | null {
    for (let i = from; i < this.rounds.length; i++) {
      const sample = this.rounds[i].samples.find((s): s is Sample => s.pid === pid && 'cpu_pct' in s);
      if (sample) return { round: i - from + 1, sample };
    }
    return null;
  }

  goneFor(pid: number): SampleResult | undefined {
    return this.samplesFor(pid).find((s) => 'gone' in s);
  }

  async close(): Promise<void> {
    this.control[Comlink.releaseProxy]();
    this.registry.detach();
    this.db.detach();
    for (const port of this.#ports) port.close();
    await this.#worker.terminate();
  }
}

describe('sampler: samples real processes', { timeout: 120_000 }, async () => {
  const sut = await SamplerUnderTest.start({});
  after(() => sut.close());
  let busyPid = 0;

  test('a busy child reports the cpu it really gets within two rounds; its first figure is measured, not a fake 0', async (t) => {
    const busy = await busyChild();
    busyPid = busy.pid;
    const meter = cpuMeter(busy.pid);
    const from = sut.rounds.length;
    sut.watch('busy', busy.pid);
    const first = await waitFor('a cpu sample of the busy child', () => sut.firstSample(busy.pid, from), 30_000);
    const measured = meter();
    t.diagnostic(
      `busy child: first sample ${first.sample.cpu_pct.toFixed(0)} % of a core, its /proc ticks since spawn ${measured.toFixed(0)} %`,
    );
    // Counted in the sampler's own rounds, not in ms: round 1 after the watch takes the baseline,
    // round 2 reports; one more if the watch landed mid-round.
    assert.ok(first.round <= 3, `first sample came in round ${first.round} after the watch`);
    // Against what the child really got on this box (its /proc ticks): at least a third of it
    // (the two windows differ under a fluctuating load); a fake first 0 or an idle figure is below.
    assert.ok(measured > 10, `the busy child ran (${measured.toFixed(0)} % of a core)`);
    assert.ok(
      first.sample.cpu_pct >= measured / 3,
      `busy child cpu_pct ${first.sample.cpu_pct} vs ${measured.toFixed(0)} % measured`,
    );
    assert.equal(first.sample.start_time, (readProcStat(busy.pid) as { startTime: number }).startTime);
  });

  test('metric rows reach the db link, one per sample, with cpu_pct_machine = cpu_pct / cores', async () => {
    const row = await waitFor('a metric row for the busy child', () => sut.rows.find((r) => r.pid === busyPid));
    assert.equal(row.type, 'metric');
    assert.equal(row.channel, 'busy');
    assert.ok(row.rss_mb > 1);
    assert.ok(row.cpu_pct > 0, 'the row carries the measured figure');
    assert.ok(Math.abs(row.cpu_pct_machine - row.cpu_pct / os.availableParallelism()) < 0.02);
    assert.ok(Math.abs(row.at - Date.now()) < 60_000);
    const samples = sut.samplesFor(busyPid).filter((s) => 'cpu_pct' in s).length;
    await waitFor(
      'rows caught up with samples',
      () => sut.rows.filter((r) => r.pid === busyPid).length >= samples,
      20_000,
    );
  });

  test('a sleeping child shows ~0 cpu and a real rss_mb', async () => {
    const idle = await sleepingChild();
    const from = sut.rounds.length;
    sut.watch('idle', idle.pid);
    const first = await waitFor('a sample of the sleeping child', () => sut.firstSample(idle.pid, from));
    assert.ok(first.sample.cpu_pct < 5, `sleeping child cpu_pct ${first.sample.cpu_pct}`);
    assert.ok(first.sample.rss_mb > 1, `sleeping child rss_mb ${first.sample.rss_mb}`);
  });

  test('a killed child is reported process_exited within one interval + 1 s, then no longer sampled', async () => {
    const child = await sleepingChild();
    const from = sut.rounds.length;
    sut.watch('doomed', child.pid);
    await waitFor('the child to be sampled', () => sut.firstSample(child.pid, from));
    const roundsAtKill = sut.rounds.length;
    child.kill('SIGKILL');
    await waitFor('process_exited', () => sut.goneFor(child.pid), 30_000);
    // Counted in rounds, not ms (a loaded box delays rounds, not the count): the round under way
    // when the kill happened, or the next one.
    const goneRound =
      sut.rounds.findIndex((r, i) => i >= roundsAtKill && r.samples.some((x) => x.pid === child.pid && 'gone' in x)) -
      roundsAtKill +
      1;
    assert.ok(goneRound >= 1 && goneRound <= 2, `gone reported in round ${goneRound} after the kill`);
    assert.deepEqual(sut.goneFor(child.pid), { channel: 'doomed', pid: child.pid, gone: 'process_exited' });
    const roundsThen = sut.rounds.length;
    await waitFor('three more rounds', () => sut.rounds.length >= roundsThen + 3);
    assert.equal(
      sut.samplesFor(child.pid).length,
      sut.samplesFor(child.pid).findIndex((s) => 'gone' in s) + 1,
      'nothing after gone',
    );
  });

  test('a zombie (exited, not reaped; pidusage thinks it alive) is process_exited', async () => {
    // sh execs into `sleep`, which never waits for the child forked before: that child stays a
    // zombie — unless sh reaped it before the exec (then its pid is simply gone): try again.
    let zombie = 0;
    for (let attempt = 1; !zombie; attempt++) {
      const parent = spawn('sh', ['-c', 'sleep 0 & echo $!; exec sleep 600'], { stdio: ['ignore', 'pipe', 'inherit'] });
      children.push(parent);
      const pid = Number(
        await new Promise<string>((resolve) => parent.stdout.once('data', (d: Buffer) => resolve(d.toString().trim()))),
      );
      const state = await waitFor('the background child to exit', () => {
        const stat = readProcStat(pid);
        return stat === 'gone' ? 'gone' : typeof stat === 'object' && stat.state === 'Z' && 'Z';
      });
      if (state === 'Z') zombie = pid;
      else if (attempt === 5) assert.fail('sh reaped its background child before exec 5 times: no zombie to test with');
    }
    sut.watch('zombie', zombie);
    assert.deepEqual(await waitFor('gone', () => sut.goneFor(zombie)), {
      channel: 'zombie',
      pid: zombie,
      gone: 'process_exited',
    });
  });

  test('a start time other than the one in the watch item is pid_reused', async () => {
    const child = await sleepingChild();
    const real = (readProcStat(child.pid) as { startTime: number }).startTime;
    sut.watch('reused', child.pid, real - 1);
    assert.deepEqual(await waitFor('gone', () => sut.goneFor(child.pid)), {
      channel: 'reused',
      pid: child.pid,
      gone: 'pid_reused',
    });
    // The item with the right start time is watched again and sampled.
    const from = sut.rounds.length;
    sut.watch('reused', child.pid, real);
    const again = await waitFor('a sample after the new watch', () => sut.firstSample(child.pid, from));
    assert.equal(again.sample.start_time, real);
  });

  test('after the registry is re-linked and re-sends its watches, sampling goes on without a new baseline', async () => {
    sut.relinkRegistry();
    const from = sut.rounds.length;
    sut.watch('busy', busyPid);
    const next = await waitFor('the next sample', () => sut.firstSample(busyPid, from));
    assert.ok(next.round <= 2, `sampled again in round ${next.round}`);
  });

  test('health() reports processed samples, watched pids and rounds', async () => {
    const health = await sut.health();
    assert.equal(health.actor, 'sampler');
    assert.ok(health.processed > 0);
    assert.equal(health.queue_depth, health.detail.watched);
    assert.equal(health.dropped, 0);
    assert.ok((health.detail.rounds as number) >= 5);
    // Not 0 for sure: on a loaded machine a 250 ms time box can be missed now and then; but the
    // samples above came from completed rounds.
    assert.ok(
      (health.detail.rounds_abandoned as number) < (health.detail.rounds as number),
      `rounds_abandoned ${health.detail.rounds_abandoned} of ${health.detail.rounds}`,
    );
    assert.equal(typeof health.detail.last_round_ms, 'number');
    assert.equal(typeof health.detail.last_round_at, 'number');
    assert.equal(health.detail.usage_source, 'proc');
  });

  test('400 pids are sampled through one fd held per pid, and the fds are closed once they are unwatched', async () => {
    const sleepers = await startPlaceholders(400);
    after(() => sleepers.kill());
    const { pids } = sleepers;
    const from = sut.rounds.length;
    pids.forEach((pid, i) => sut.watch(`sleeper_${i}`, pid));
    await waitFor(
      'samples of every sleeper',
      () => {
        const sampled = new Set(
          sut.rounds.slice(from).flatMap((r) => r.samples.filter((s) => 'cpu_pct' in s).map((s) => s.pid)),
        );
        return pids.every((pid) => sampled.has(pid));
      },
      60_000,
    );
    // The sampler thread's fds are this process's: one per sleeper, held between rounds.
    const held = procStatFds();
    assert.deepEqual(
      pids.filter((pid) => held.get(pid)?.length !== 1),
      [],
      'exactly one fd held on each sleeper',
    );
    assert.ok(((await sut.health()).detail.held_fds as number) >= 400);
    const watched = (await sut.health()).detail.watched as number;
    pids.forEach((pid, i) => sut.unwatch(`sleeper_${i}`, pid));
    await waitFor('unwatched', async () => (await sut.health()).detail.watched === watched - pids.length, 20_000);
    // Closed at the start of the next round.
    await waitFor('no fd left on an unwatched sleeper', () => {
      const now = procStatFds();
      return pids.every((pid) => !now.has(pid));
    });
    for (const pid of pids) kill(pid);
  });
});

describe('sampler: hung stats calls (fault injection)', { timeout: 120_000 }, async () => {
  const sut = await SamplerUnderTest.start({ sampleTimeoutMs: 200, faults: { enabled: true, samplerDelayMs: 60_000 } });
  after(() => sut.close());

  test('rounds are abandoned and counted; health() and watch updates are still answered promptly', async () => {
    const child = await sleepingChild();
    sut.watch('slow', child.pid);
    await waitFor('the watch applied', async () => (await sut.health()).detail.watched === 1, 10_000);
    const published = sut.rounds.length; // rounds with nothing to sample complete (and are signalled) at once
    await waitFor(
      'two abandoned rounds',
      async () => ((await sut.health()).detail.rounds_abandoned as number) >= 2,
      30_000,
    );
    // A health() queued behind the hung stats call would wait its 60 s: 10 s tells them apart.
    const asked = Date.now();
    const health = await sut.health();
    assert.ok(Date.now() - asked < 10_000, `health() took ${Date.now() - asked} ms (stats calls hang 60 s)`);
    assert.ok(sut.rounds.length - published <= 1, 'rounds with a pid to sample are abandoned and publish nothing');
    assert.equal(sut.samplesFor(child.pid).length, 0);
    assert.equal(sut.rows.length, 0, 'no rows from abandoned rounds');
    // Watch updates are applied (and acknowledged) while a stats call hangs.
    const other = await sleepingChild();
    sut.watch('slow2', other.pid);
    await waitFor('the new watch applied', async () => (await sut.health()).detail.watched === 2, 10_000);
    assert.equal(sut.registry.pending, 0, 'watch batches acknowledged');
    // Rounds keep coming on schedule and keep being abandoned.
    const abandoned = health.detail.rounds_abandoned as number;
    await waitFor(
      'more abandoned rounds',
      async () => ((await sut.health()).detail.rounds_abandoned as number) >= abandoned + 2,
      30_000,
    );
  });
});
