// The TypeScript client against a real Unix-socket listener (test/fixtures/line-listener.ts):
// wire format, monitor absent / killed -9 / restarted / frozen (SIGSTOP), bounded buffers,
// shutdown, the legacy one-shot API. No mocks: every case goes through a real socket.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, describe, test } from 'node:test';
import {
  HeartbeatTask,
  MonitorClient,
  registerWithMonitor,
  sendHeartbeat,
  unregisterFromMonitor,
} from 'kissbot-monitor-client';
import { decodeLine } from '../src/protocol/decode.js';
import {
  spawnLineListener,
  startLineListener,
  type ChildListener,
  type LineListener,
} from './fixtures/line-listener.js';
import { sleep, stopProcess, waitFor } from './helpers/wait.js';

const dir = mkdtempSync(join(tmpdir(), 'kbm-client-ts-'));
let nextSocket = 0;
const socketPath = () => join(dir, `m${++nextSocket}.sock`);

// Everything a test starts is registered here and torn down in after(), even when the test fails.
const listeners: LineListener[] = [];
const children: ChildListener[] = [];
const clients: MonitorClient[] = [];
const extraSockets: net.Socket[] = [];
const pids: number[] = [];
after(async () => {
  for (const c of clients) await c.close();
  for (const s of extraSockets) s.destroy();
  for (const l of listeners) await l.close();
  for (const c of children) await c.kill();
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

async function listen(path = socketPath()): Promise<LineListener> {
  const l = await startLineListener(path);
  listeners.push(l);
  return l;
}
async function listenChild(path = socketPath(), backlog?: number): Promise<ChildListener> {
  const c = await spawnLineListener(path, backlog);
  children.push(c);
  return c;
}
function client(options: ConstructorParameters<typeof MonitorClient>[0]): MonitorClient {
  const c = new MonitorClient(options);
  clients.push(c);
  return c;
}
const usage = { model: 'gpt-4o', feature: 'jokes', tokensIn: 145, tokensOut: 87, latencyMs: 1850 };

function assertValid(line: string): Record<string, unknown> {
  const decoded = decodeLine(Buffer.from(line), 32);
  assert.ok(decoded.ok, `monitor would reject ${line}: ${decoded.ok ? '' : decoded.detail}`);
  return decoded.message;
}

/** The child's exit code; fails the test if it has not exited within `ms`. */
function exitWithin(child: ChildProcess, ms: number): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`pid ${child.pid} still running after ${ms} ms`)), ms);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

describe('wire format', () => {
  test('every message validates against the protocol schemas; register first, extensions present', async () => {
    const l = await listen();
    const c = client({ channel: 'el_serda', pid: process.pid, socketPath: l.path, token: 's3cret' });
    const before = Date.now();
    assert.equal(await c.register({ llm: true, translator: false }), true);
    assert.equal(await c.heartbeat(), true);
    assert.equal(await c.logLlmUsage(usage), true);
    assert.equal(await c.logLlmUsage({ model: 'gpt-4o-mini', feature: 'chat', tokensIn: 0, tokensOut: 1 }), true);
    const accounted = {
      ...usage,
      tokensCached: 100,
      tokensReasoning: 20,
      provider: 'openai',
      status: 'rate_limited',
      errorType: '429',
      requestId: 'chatcmpl-9',
    } as const;
    assert.equal(await c.logLlmUsage(accounted), true);
    assert.equal(await c.unregister(), true);
    await c.close();
    await waitFor('six lines', () => l.lines.length === 6, 10_000, 5);
    const msgs = l.lines.map((r) => assertValid(r.line));
    assert.deepEqual(
      msgs.map((m) => m.type),
      ['register', 'heartbeat', 'llm_usage', 'llm_usage', 'llm_usage', 'unregister'],
    );
    assert.deepEqual(
      [
        msgs[4].tokens_cached,
        msgs[4].tokens_reasoning,
        msgs[4].provider,
        msgs[4].status,
        msgs[4].error_type,
        msgs[4].request_id,
      ],
      [100, 20, 'openai', 'rate_limited', '429', 'chatcmpl-9'],
    );
    assert.equal('tokens_cached' in msgs[2], false, 'the accounting fields are optional');
    assert.ok(
      l.lines.every((r) => r.conn === 1),
      'one persistent connection',
    );
    for (const m of msgs) {
      assert.equal(m.channel, 'el_serda');
      assert.equal(m.v, 1);
      assert.equal(m.token, 's3cret');
      assert.ok(typeof m.ts === 'number' && m.ts >= before && m.ts <= Date.now());
    }
    assert.equal(msgs[0].pid, process.pid);
    assert.deepEqual(msgs[0].features, { llm: true, translator: false });
    assert.deepEqual(
      {
        model: msgs[2].model,
        feature: msgs[2].feature,
        tokens_in: msgs[2].tokens_in,
        tokens_out: msgs[2].tokens_out,
        latency_ms: msgs[2].latency_ms,
      },
      { model: 'gpt-4o', feature: 'jokes', tokens_in: 145, tokens_out: 87, latency_ms: 1850 },
    );
    assert.equal('latency_ms' in msgs[3], false, 'latency_ms is optional');
  });

  test('no token field without a token', async () => {
    const l = await listen();
    const saved = process.env.KISSBOT_MONITOR_TOKEN;
    delete process.env.KISSBOT_MONITOR_TOKEN;
    try {
      const c = client({ channel: 'no_token', socketPath: l.path });
      await c.register();
      await c.close();
    } finally {
      if (saved !== undefined) process.env.KISSBOT_MONITOR_TOKEN = saved;
    }
    await waitFor('the register', () => l.lines.length === 1, 10_000, 5);
    const m = assertValid(l.lines[0].line);
    assert.equal('token' in m, false);
    assert.equal('features' in m, false);
    assert.equal(m.pid, process.pid, 'pid defaults to process.pid');
  });

  test('bad options throw TypeError at construction; bad usage is refused locally and counted', async () => {
    for (const channel of ['', 'has-dash', 'x'.repeat(65), 'é', 42]) {
      assert.throws(() => new MonitorClient({ channel: channel as string }), TypeError, `channel ${String(channel)}`);
    }
    for (const pid of [0, -1, 1.5, 2 ** 31])
      assert.throws(() => new MonitorClient({ channel: 'ok', pid }), TypeError, `pid ${pid}`);
    assert.throws(() => new MonitorClient({ channel: 'ok', socketPath: '' }), TypeError);
    assert.throws(() => new MonitorClient({ channel: 'ok', socketPath: '/tmp/' + 'x'.repeat(120) }), TypeError);
    assert.throws(() => new MonitorClient({ channel: 'ok', heartbeatIntervalMs: 0 }), TypeError);
    assert.throws(() => new MonitorClient({ channel: 'ok', token: 't'.repeat(257) }), TypeError);

    const l = await listen();
    const c = client({ channel: 'validator', socketPath: l.path });
    await assert.rejects(c.register({ llm: 'yes' } as unknown as Record<string, boolean>), TypeError);
    assert.equal(await c.register({ llm: true }), true);
    const bad = [
      { ...usage, tokensIn: -1 },
      { ...usage, tokensOut: 1.5 },
      { ...usage, tokensIn: 1e9 + 1 },
      { ...usage, model: '' },
      { ...usage, feature: 'f'.repeat(65) },
      { ...usage, latencyMs: -3 },
      { ...usage, tokensIn: undefined as unknown as number },
      { ...usage, tokensCached: usage.tokensIn + 1 },
      { ...usage, tokensReasoning: usage.tokensOut + 1 },
      { ...usage, status: 'exploded' as never },
      { ...usage, provider: '' },
    ];
    for (const u of bad) assert.equal(await c.logLlmUsage(u), false);
    assert.equal(c.stats().invalid, bad.length);
    assert.equal(c.stats().dropped, bad.length);
    // A valid line last: one connection keeps order, so once it arrived anything invalid would have too.
    assert.equal(await c.heartbeat(), true);
    await c.close();
    await waitFor('the heartbeat after the refused calls', () => l.ofType('heartbeat').length === 1, 10_000, 5);
    assert.deepEqual(
      l.lines.map((r) => JSON.parse(r.line).type),
      ['register', 'heartbeat'],
      'nothing invalid reached the socket',
    );
  });
});

describe('reconnect', () => {
  test('monitor absent: calls return false at once; when it appears the client connects and registers first', async () => {
    const path = socketPath();
    // A long connectTimeoutMs, so that "did not wait for it" has a bound no loaded box reaches.
    const c = client({
      channel: 'early_bot',
      socketPath: path,
      backoffInitialMs: 20,
      backoffMaxMs: 100,
      connectTimeoutMs: 60_000,
    });
    const t0 = performance.now();
    assert.equal(await c.register({ llm: true }), false);
    assert.ok(
      performance.now() - t0 < 10_000,
      'register does not wait for an absent monitor (connectTimeoutMs is 60 s)',
    );
    assert.equal(await c.heartbeat(), false);
    for (let i = 0; i < 3; i++) assert.equal(await c.logLlmUsage({ ...usage, tokensIn: i }), false);
    let s = c.stats();
    assert.equal(s.state, 'backoff');
    assert.ok(s.connectFailures >= 1);
    assert.equal(s.lastError, 'ENOENT');
    assert.equal(s.bufferedUsage, 3);
    assert.equal(s.heartbeatPending, true);

    const l = await listen(path);
    await waitFor('register, 3 usages and the heartbeat', () => l.lines.length === 5, 10_000, 5);
    const types = l.lines.map((r) => assertValid(r.line).type);
    assert.deepEqual(types, ['register', 'llm_usage', 'llm_usage', 'llm_usage', 'heartbeat']);
    assert.deepEqual(
      l.ofType('llm_usage').map((m) => m.tokens_in),
      [0, 1, 2],
    );
    s = c.stats();
    assert.equal(s.state, 'connected');
    assert.equal(s.buffered, 0);
    assert.equal(s.reconnects, 0, 'the first successful connection is not a reconnect');
  });

  test('monitor killed -9 (stale socket file, ECONNREFUSED) and restarted: reconnects, re-registers first, buffered usage delivered', async () => {
    const path = socketPath();
    const first = await listenChild(path);
    const c = client({ channel: 'survivor', socketPath: path, backoffInitialMs: 20, backoffMaxMs: 200 });
    assert.equal(await c.register({ llm: true }), true);
    c.startHeartbeat(50);
    await waitFor('heartbeats on the first monitor', () => first.ofType('heartbeat').length >= 2, 10_000, 5);

    await first.kill(); // like kill -9: the socket file stays behind
    await waitFor('the client to notice', () => c.stats().state === 'backoff', 10_000, 5);
    for (let i = 0; i < 5; i++) assert.equal(await c.logLlmUsage({ ...usage, tokensIn: 100 + i }), false);
    await waitFor('a failed reconnect', () => c.stats().connectFailures >= 1, 10_000, 5);
    assert.match(String(c.stats().lastError), /ECONNREFUSED|ENOENT/);

    const second = await listenChild(path);
    await waitFor(
      'the bot to come back',
      () => second.ofType('heartbeat').length >= 1 && second.ofType('llm_usage').length === 5,
      10_000,
      5,
    );
    const firstLine = assertValid(second.lines[0].line);
    assert.equal(firstLine.type, 'register', 'register goes first after a reconnect');
    assert.deepEqual(firstLine.features, { llm: true }, 'with the features given to register()');
    assert.deepEqual(
      second.ofType('llm_usage').map((m) => m.tokens_in),
      [100, 101, 102, 103, 104],
    );
    assert.ok(c.stats().reconnects >= 1);
    await c.stopHeartbeat();
  });

  test('reconnect backoff doubles and is capped', async () => {
    const c = client({ channel: 'patient', socketPath: socketPath(), backoffInitialMs: 10, backoffMaxMs: 40 });
    const t0 = performance.now();
    await c.heartbeat();
    // Delays are jittered into [d/2, d]: 5-10, 10-20, then 20-40 ms each. 20 attempts take at
    // least 5 + 10 + 17 × 20 = 355 ms (a lower bound: load only makes it longer) and, capped, about
    // 0.8 s on an idle box; uncapped doubling would need 10 × 2^19 ms for the 20th, so the deadline
    // (generous for timers running late on a loaded box) catches a missing cap.
    await waitFor('20 connect attempts', () => c.stats().connectFailures >= 20, 15_000, 5);
    const tookMs = performance.now() - t0;
    assert.ok(tookMs >= 355, `20 connect attempts in ${tookMs.toFixed(0)} ms: faster than the backoff allows`);
    await c.close();
    assert.equal(c.stats().state, 'closed');
  });
});

describe('frozen monitor (SIGSTOP)', () => {
  test('20,000 heartbeat() + 20,000 logLlmUsage() never wait on the frozen monitor; buffers stay bounded; nothing uncounted is lost', async (t) => {
    const call = { ...usage }; // one object reused: the loop measures the client, not the test's garbage
    // Baseline on this box, now: the same calls to a monitor that reads (a second client and listener).
    const reading = await listenChild();
    const calm = client({ channel: 'baseline_case', socketPath: reading.path });
    assert.equal(await calm.register({ llm: true }), true);
    const BASELINE = 2_000;
    const live = new Float64Array(2 * BASELINE);
    for (let i = 0; i < BASELINE; i++) {
      let t0 = performance.now();
      await calm.heartbeat();
      live[2 * i] = performance.now() - t0;
      t0 = performance.now();
      await calm.logLlmUsage(call);
      live[2 * i + 1] = performance.now() - t0;
    }
    await calm.close();
    const baselineP99 = percentile(live.sort(), 99);

    const monitor = await listenChild();
    const maxBufferedUsage = 1000;
    const c = client({ channel: 'frozen_case', socketPath: monitor.path, maxBufferedUsage });
    assert.equal(await c.register({ llm: true }), true);
    await waitFor('the register', () => monitor.lines.length === 1, 10_000, 5);
    await stopProcess(monitor.child.pid!);

    const N = 20_000;
    let hbCalls = 0;
    let hbTrue = 0;
    let usageCalls = 0;
    let usageTrue = 0;
    const heartbeat = async () => {
      hbCalls++;
      const t0 = performance.now();
      if (await c.heartbeat()) hbTrue++;
      return performance.now() - t0;
    };
    const logUsage = async () => {
      usageCalls++;
      call.tokensIn = usageCalls;
      const t0 = performance.now();
      if (await c.logLlmUsage(call)) usageTrue++;
      return performance.now() - t0;
    };
    // A client that waited on the frozen monitor would wait for a drain that never comes, or for
    // stallTimeoutMs (10 s): any bound far below that tells the two apart. The bounds are 20 × the
    // live baseline's p99, and at least 20 ms (first attempts, p99) and 100 ms (every attempt):
    // a loaded 2-core box can preempt this process for tens of ms (idle, a call takes ~1 µs at p50:
    // the diagnostic line prints the figures). A call over the bound is timed again, up to 5 more times, in the same
    // state: an OS preemption hits one attempt, waiting on the frozen monitor would hit every one.
    // Each retry follows a 2 ms sleep, so it starts on a fresh scheduler slice; `settled` keeps
    // each call's best attempt.
    const p99Bound = Math.max(20, 20 * baselineP99);
    const settledBound = Math.max(100, 20 * baselineP99);
    const wall = new Float64Array(2 * N);
    const settled = new Float64Array(2 * N);
    let retried = 0;
    const timed = async (op: () => Promise<number>, k: number) => {
      let best = (wall[k] = await op());
      for (let r = 0; r < 5 && best >= p99Bound; r++, retried++) {
        await sleep(2);
        best = Math.min(best, await op());
      }
      settled[k] = best;
    };
    for (let i = 0; i < N; i++) {
      await timed(heartbeat, 2 * i);
      await timed(logUsage, 2 * i + 1);
    }
    const wallSorted = wall.slice().sort();
    const settledMax = Math.max(...settled);
    const us = (ms: number) => `${(ms * 1000).toFixed(1)} µs`;
    const s = c.stats();
    t.diagnostic(
      `frozen monitor, ${2 * N} calls, wall clock per call: max ${us(wallSorted[wallSorted.length - 1])}, p99.9 ${us(percentile(wallSorted, 99.9))}, p99 ${us(percentile(wallSorted, 99))}, p50 ${us(percentile(wallSorted, 50))}; ` +
        `live baseline p99 ${us(baselineP99)}; ${wall.filter((x) => x >= p99Bound).length} calls over ${p99Bound.toFixed(1)} ms re-timed (${retried} retries), max after re-timing ${us(settledMax)}`,
    );
    t.diagnostic(
      `usage handed to socket ${usageTrue}, buffered ${s.bufferedUsage}, dropped ${s.droppedUsage}; heartbeats coalesced ${s.coalesced}; socket buffer ${s.socketBufferedBytes} B`,
    );
    assert.ok(
      settledMax < settledBound,
      `a call took ${settledMax.toFixed(3)} ms on every attempt (bound ${settledBound.toFixed(1)} ms)`,
    );
    assert.ok(
      percentile(wallSorted, 99) < p99Bound,
      `p99 of first attempts ${percentile(wallSorted, 99).toFixed(3)} ms (bound ${p99Bound.toFixed(1)} ms)`,
    );

    // Bounded: our buffer holds at most maxBufferedUsage lines + one heartbeat; Node's socket
    // buffer at most its high-water mark plus one line. Every call is accounted for.
    assert.equal(s.state, 'connected');
    assert.ok(s.bufferedUsage <= maxBufferedUsage);
    assert.ok(s.buffered <= maxBufferedUsage + 2);
    assert.ok(s.socketBufferedBytes <= 16 * 1024 + 512, `socket buffer ${s.socketBufferedBytes}`);
    assert.equal(
      usageTrue + s.bufferedUsage + s.droppedUsage,
      usageCalls,
      'every llm_usage sent, buffered or counted as dropped',
    );
    assert.equal(
      hbTrue + s.coalesced + (s.heartbeatPending ? 1 : 0),
      hbCalls,
      'every heartbeat sent or coalesced into the pending one',
    );
    assert.ok(s.droppedUsage > 0, 'the frozen monitor did fill the buffer');

    // Five times more calls change nothing: memory does not grow with the length of the freeze.
    const heapBefore = process.memoryUsage().heapUsed;
    for (let i = 0; i < 5 * N; i++) {
      await c.heartbeat();
      await c.logLlmUsage(usage);
    }
    const s2 = c.stats();
    assert.equal(s2.bufferedUsage, s.bufferedUsage);
    assert.equal(s2.socketBufferedBytes, s.socketBufferedBytes);
    assert.equal(s2.droppedUsage, s.droppedUsage + 5 * N);
    t.diagnostic(
      `after ${10 * N} more calls: buffered ${s2.bufferedUsage}, heap delta ${((process.memoryUsage().heapUsed - heapBefore) / 1e6).toFixed(1)} MB (garbage, not retained)`,
    );

    // Thaw: everything that was not counted as dropped arrives, register first.
    process.kill(monitor.child.pid!, 'SIGCONT');
    const expectedUsage = usageTrue + s2.bufferedUsage;
    await waitFor(
      `${expectedUsage} usage lines after SIGCONT`,
      () => monitor.ofType('llm_usage').length === expectedUsage && monitor.ofType('heartbeat').length === hbTrue + 1,
      10_000,
      5,
    );
    assert.equal(assertValid(monitor.lines[0].line).type, 'register');
    assert.equal(c.stats().buffered, 0);
    assert.equal(c.stats().stalls, 0);
    await c.close();
  });

  test('a bot that is done exits by itself while the monitor is frozen (stall watchdog frees the pending write)', async (t) => {
    const monitor = await listenChild();
    await stopProcess(monitor.child.pid!);
    const clientUrl = import.meta.resolve('kissbot-monitor-client');
    const script = `
      import { MonitorClient } from ${JSON.stringify(clientUrl)};
      const c = new MonitorClient({ channel: 'exiting_bot', socketPath: ${JSON.stringify(monitor.path)}, stallTimeoutMs: 300 });
      await c.register();
      c.startHeartbeat(1000);
      for (let i = 0; i < 5000; i++) await c.logLlmUsage({ model: 'm', feature: 'f', tokensIn: i, tokensOut: 1 });
      process.on('exit', () => console.log(JSON.stringify(c.stats())));
      // no close(): the bot just finishes
    `;
    const t0 = performance.now();
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    pids.push(child.pid!);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    // Without the watchdog the pending write would keep it alive for as long as the freeze lasts:
    // the deadline (far above stallTimeoutMs + a node start on a loaded box) tells the two apart.
    const code = await exitWithin(child, 30_000);
    const elapsed = performance.now() - t0;
    assert.equal(code, 0, err);
    t.diagnostic(`exited ${elapsed.toFixed(0)} ms after spawn (stallTimeoutMs 300)`);
    const stats = JSON.parse(out.trim()) as { stalls: number; requeued: number };
    assert.ok(stats.stalls >= 1, 'the stalled connection was reset');
  });
});

describe('shutdown', () => {
  test('close() flushes the buffer, is idempotent, later calls resolve false and are counted', async () => {
    const monitor = await listenChild();
    const c = client({ channel: 'closer', socketPath: monitor.path });
    assert.equal(await c.register(), true);
    await waitFor('the register', () => monitor.lines.length === 1, 10_000, 5);
    await stopProcess(monitor.child.pid!);
    let n = 0;
    while (c.stats().bufferedUsage < 50) {
      await c.logLlmUsage({ ...usage, tokensIn: n++ });
      if (n > 100_000) assert.fail('the frozen listener never pushed back');
    }
    const closing = c.close();
    assert.equal(c.close(), closing, 'idempotent');
    assert.equal(await c.heartbeat(), false);
    assert.equal(await c.logLlmUsage(usage), false);
    assert.equal(c.stats().droppedClosed, 2);
    process.kill(monitor.child.pid!, 'SIGCONT');
    await closing;
    assert.equal(c.stats().state, 'closed');
    await waitFor(`all ${n} usage lines`, () => monitor.ofType('llm_usage').length === n, 10_000, 5);
    assert.equal(c.stats().droppedClosed, 2, 'nothing buffered was dropped');
  });

  test('close() gives up after closeTimeoutMs on a frozen monitor and counts what it dropped', async () => {
    const monitor = await listenChild();
    const c = client({ channel: 'closer_frozen', socketPath: monitor.path, closeTimeoutMs: 200 });
    await c.register();
    await waitFor('the register', () => monitor.lines.length === 1, 10_000, 5);
    await stopProcess(monitor.child.pid!);
    while (c.stats().bufferedUsage < 20) await c.logLlmUsage(usage);
    const t0 = performance.now();
    await c.close();
    const elapsed = performance.now() - t0;
    // At least the timeout (a lower bound, safe under load); without it close() would wait for
    // the freeze to end, i.e. forever: 10 s is far above 200 ms plus any scheduling delay.
    assert.ok(elapsed >= 150 && elapsed < 10_000, `close took ${elapsed.toFixed(0)} ms (closeTimeoutMs 200)`);
    assert.ok(c.stats().droppedClosed >= 20);
    assert.equal(c.stats().state, 'closed');
  });

  test('an idle connected client does not keep the process alive', async () => {
    const l = await listen();
    const clientUrl = import.meta.resolve('kissbot-monitor-client');
    const script = `
      import { MonitorClient } from ${JSON.stringify(clientUrl)};
      const c = new MonitorClient({ channel: 'idle_bot', socketPath: ${JSON.stringify(l.path)} });
      console.log(await c.register());
      c.startHeartbeat(60000);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    pids.push(child.pid!);
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    // A referenced socket or timer would keep it alive at least until the 60 s heartbeat: the
    // 30 s deadline tells the two apart even on a loaded box.
    assert.equal(await exitWithin(child, 30_000), 0);
    assert.equal(out.trim(), 'true');
  });
});

describe('heartbeat timers and the legacy API', () => {
  test('startHeartbeat / stopHeartbeat', async () => {
    const l = await listen();
    const c = client({ channel: 'ticker', socketPath: l.path, heartbeatIntervalMs: 20 });
    await c.register();
    c.startHeartbeat();
    await waitFor('three heartbeats', () => l.ofType('heartbeat').length >= 3, 10_000, 5);
    await c.stopHeartbeat();
    const count = l.ofType('heartbeat').length;
    // A negative check: nothing more in 5 intervals. Load can only make it less sensitive, not red.
    await sleep(100);
    assert.ok(l.ofType('heartbeat').length <= count + 1);
    await c.close();
  });

  test('registerWithMonitor / sendHeartbeat / unregisterFromMonitor: one connection each, true when sent', async () => {
    const l = await listen();
    assert.equal(await registerWithMonitor('legacy_bot', 4242, { llm: true }, l.path), true);
    assert.equal(await sendHeartbeat('legacy_bot', 4242, l.path), true);
    assert.equal(await unregisterFromMonitor('legacy_bot', 4242, l.path, { token: 'tok' }), true);
    await waitFor('three lines', () => l.lines.length === 3, 10_000, 5);
    const msgs = l.lines.map((r) => assertValid(r.line));
    assert.deepEqual(
      msgs.map((m) => m.type),
      ['register', 'heartbeat', 'unregister'],
    );
    assert.deepEqual(new Set(l.lines.map((r) => r.conn)).size, 3, 'one connection per call');
    assert.equal(msgs[2].token, 'tok');
    // Never throws: invalid arguments and an absent monitor both resolve false.
    assert.equal(await sendHeartbeat('bad name', 1, l.path), false);
    const t0 = performance.now();
    // timeoutMs 60 s: "fails at once" then has a bound no loaded box reaches.
    assert.equal(await sendHeartbeat('legacy_bot', 4242, join(dir, 'absent.sock'), { timeoutMs: 60_000 }), false);
    assert.ok(performance.now() - t0 < 10_000, 'fails at once, not after timeoutMs (60 s)');
  });

  test('legacy calls against a frozen monitor with a full listen backlog fail fast instead of waiting', async () => {
    const monitor = await listenChild(socketPath(), 1);
    const path = monitor.path;
    await stopProcess(monitor.child.pid!);
    // Fill the backlog the way thousands of one-shot bots would.
    let settled = 0;
    for (let i = 0; i < 8; i++) {
      const s = net.createConnection(path);
      s.once('connect', () => settled++);
      s.once('error', () => settled++);
      extraSockets.push(s);
    }
    await waitFor('the 8 connects to settle', () => settled === 8, 10_000, 5);
    let slowest = 0;
    const results: boolean[] = [];
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      results.push(await sendHeartbeat('legacy_frozen', 4242, path, { timeoutMs: 60_000 }));
      slowest = Math.max(slowest, performance.now() - t0);
    }
    assert.ok(results.includes(false), 'a full backlog refuses new connections');
    // A call that waited would take timeoutMs (60 s); 10 s is far above any scheduling delay.
    assert.ok(
      slowest < 10_000,
      `slowest legacy call ${slowest.toFixed(1)} ms (timeoutMs 60 s; the old module waited up to 2 s)`,
    );
  });

  test('HeartbeatTask start/stop', async () => {
    const l = await listen();
    const task = new HeartbeatTask('task_bot', 4243, 20, l.path);
    assert.equal(task.running, false);
    task.start();
    task.start(); // idempotent
    assert.equal(task.running, true);
    await waitFor('three heartbeats', () => l.ofType('heartbeat').length >= 3, 10_000, 5);
    await task.stop();
    assert.equal(task.running, false);
    const count = l.ofType('heartbeat').length;
    await sleep(100); // a negative check, as above
    assert.equal(l.ofType('heartbeat').length, count);
    assert.ok(l.ofType('heartbeat').every((m) => m.channel === 'task_bot' && m.pid === 4243));
    assert.equal(new Set(l.lines.map((r) => r.conn)).size, 1, 'one persistent connection');
    task.start(); // a stopped task can start again
    await waitFor('heartbeats after a restart', () => l.ofType('heartbeat').length >= count + 2, 10_000, 5);
    await task.stop();
    assert.throws(() => new HeartbeatTask('bad name', 1), TypeError);
  });
});
