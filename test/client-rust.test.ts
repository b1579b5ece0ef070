// The Rust client (clients/rust) under `npm test`: its own `cargo test` (unit tests and the check
// against docs/protocol.schema.json), clippy, then its example bot (examples/scripted_bot.rs) as a
// real process against a real monitor: register → heartbeat → usage → unregister as the monitor
// sees it, a SIGSTOPped monitor (call latency measured inside the Rust process, bounded memory), and
// kill -9 + restart of the monitor. Skipped only where cargo is absent and CI is not set.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, describe, test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { requireResource } from './helpers/resources.js';
import {
  botStatus,
  flush,
  killStarted,
  query,
  startMonitor,
  stopMonitor,
  TestDir,
  waitFor,
} from './helpers/monitor-process.js';

const crate = fileURLToPath(new URL('../../clients/rust/', import.meta.url));
// Inside the crate and git-ignored (clients/rust/target/), so repeated runs build incrementally.
const env = { ...process.env, CARGO_TARGET_DIR: join(crate, 'target'), CARGO_TERM_COLOR: 'never' };
const BOT = join(crate, 'target', 'debug', 'examples', 'scripted_bot');
const hasCargo = spawnSync('cargo', ['--version']).status === 0;
const hasClippy = hasCargo && spawnSync('cargo', ['clippy', '--version'], { env }).status === 0;

const dirs: TestDir[] = [];
const bots: ChildProcess[] = [];
after(async () => {
  for (const bot of bots) {
    if (bot.exitCode === null && bot.signalCode === null) bot.kill('SIGKILL');
  }
  await killStarted();
  for (const d of dirs) d.remove();
});

/** True when the test must not run: cargo absent outside CI. Under CI a missing cargo fails. */
function noCargo(t: TestContext): boolean {
  return !requireResource(
    t,
    'cargo',
    hasCargo ? undefined : 'cargo not installed: the Rust client (clients/rust) is NOT tested',
  );
}

// The example bot is built once, by the first test that needs it, so a test run alone never uses a stale binary.
let built: Promise<{ code: number | null; output: string; ms: number }> | undefined;
async function exampleBot(): Promise<string> {
  const build = await (built ??= cargo(['build', '--examples']));
  assert.equal(build.code, 0, build.output);
  return BOT;
}

function cargo(args: string[]): Promise<{ code: number | null; output: string; ms: number }> {
  const t0 = Date.now();
  const [subcommand, ...rest] = args;
  const child = spawn('cargo', [subcommand, '--offline', ...rest], {
    cwd: crate,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, output, ms: Date.now() - t0 })));
}

interface RustStats {
  state: string;
  sent: number;
  buffered: number;
  buffered_usage: number;
  heartbeat_pending: boolean;
  coalesced: number;
  dropped: number;
  dropped_usage: number;
  invalid: number;
  dropped_closed: number;
  requeued: number;
  reconnects: number;
  connect_failures: number;
  last_error: string | null;
}

/** The example bot as a child process: one command line in, one JSON line out. */
async function startRustBot(socket: string, channel: string, capacity?: number) {
  const child = spawn(await exampleBot(), [socket, channel, ...(capacity === undefined ? [] : [String(capacity)])], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  bots.push(child);
  const replies: string[] = [];
  const waiting: Array<(line: string) => void> = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    const w = waiting.shift();
    if (w) w(line);
    else replies.push(line);
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    pid: child.pid!,
    exited,
    async send<T = Record<string, unknown>>(command: string): Promise<T> {
      child.stdin.write(`${command}\n`);
      const line =
        replies.shift() ??
        (await Promise.race([
          new Promise<string>((r) => waiting.push(r)),
          exited.then((c) => {
            throw new Error(`bot exited (${c}) before answering ${command}`);
          }),
        ]));
      return JSON.parse(line) as T;
    },
  };
}

describe('Rust client (clients/rust)', { concurrency: false }, () => {
  test('cargo test: unit tests, the check against docs/protocol.schema.json, the README example compiles', async (t) => {
    if (noCargo(t)) return;
    const r = await cargo(['test']);
    t.diagnostic(`cargo test (build + run) took ${r.ms} ms`);
    assert.equal(r.code, 0, r.output);
    const passed = [...r.output.matchAll(/test result: ok\. (\d+) passed/g)].reduce((n, m) => n + Number(m[1]), 0);
    assert.ok(passed >= 5, `only ${passed} Rust tests passed:\n${r.output}`);
    assert.match(r.output, /limits_are_those_of_the_schema \.\.\. ok/);
    const build = await (built ??= cargo(['build', '--examples']));
    t.diagnostic(`cargo build --examples took ${build.ms} ms`);
    assert.equal(build.code, 0, build.output);
  });

  test('cargo clippy -- -D warnings is clean', async (t) => {
    if (noCargo(t)) return;
    if (!requireResource(t, 'cargo clippy', hasClippy ? undefined : 'clippy not installed')) return;
    const r = await cargo(['clippy', '--all-targets', '--', '-D', 'warnings']);
    t.diagnostic(`cargo clippy took ${r.ms} ms`);
    assert.equal(r.code, 0, r.output);
  });

  test('a Rust bot registers, heartbeats, logs usage and unregisters, as the monitor sees it', async (t) => {
    if (noCargo(t)) return;
    const dir = new TestDir();
    dirs.push(dir);
    const monitor = await startMonitor(dir);
    const bot = await startRustBot(dir.socket, 'rust_bot');
    assert.deepEqual(await bot.send('register'), { ok: true });
    const online = await waitFor('rust_bot online', async () => {
      const b = await botStatus(monitor, 'rust_bot');
      return b?.status === 'online' && b;
    });
    assert.equal(online.pid, bot.pid);
    assert.deepEqual(online.features, { llm: true, translator: false });

    assert.deepEqual(await bot.send('start_heartbeat 100'), { ok: true });
    await waitFor(
      'heartbeats from the heartbeat thread',
      async () => (await botStatus(monitor, 'rust_bot'))?.last_heartbeat != null,
    );
    assert.deepEqual(await bot.send('usage 5'), { ok: 5 });
    await waitFor('five llm_usage rows', async () => {
      await flush(monitor);
      return query(dir.db, "SELECT 1 FROM llm_usage WHERE channel = 'rust_bot'").length === 5;
    });
    const rows = query<{ model: string; feature: string; tokens_in: number; tokens_out: number; latency_ms: number }>(
      dir.db,
      "SELECT model, feature, tokens_in, tokens_out, latency_ms FROM llm_usage WHERE channel = 'rust_bot' ORDER BY tokens_in",
    );
    assert.deepEqual(
      rows.map((r) => r.tokens_in),
      [0, 1, 2, 3, 4],
    );
    assert.deepEqual(
      { ...rows[0], tokens_in: undefined },
      { model: 'gpt-4o', feature: 'rust_bot', tokens_in: undefined, tokens_out: 87, latency_ms: 1850 },
    );

    const closed = await bot.send<{ close_ms: number; stats: RustStats }>('close');
    assert.equal(await bot.exited, 0);
    await waitFor(
      'rust_bot offline after close()',
      async () => (await botStatus(monitor, 'rust_bot'))?.status === 'offline',
    );
    assert.equal(closed.stats.state, 'Closed');
    assert.equal(closed.stats.dropped, 0);
    assert.equal(closed.stats.buffered, 0);
    assert.ok(closed.close_ms < 1000, `close() took ${closed.close_ms} ms`);
    // Nothing the bot sent was refused: the monitor counts rejected lines in its log.
    assert.doesNotMatch(monitor.output(), /invalid_fields|invalid_json/);
    assert.equal(await stopMonitor(monitor), 0);
  });

  test('monitor SIGSTOPped: 20,000 heartbeat() + 20,000 log_llm_usage() each return in < 1 ms p99.9; memory bounded; nothing uncounted lost', async (t) => {
    if (noCargo(t)) return;
    const dir = new TestDir();
    dirs.push(dir);
    const monitor = await startMonitor(dir);
    const capacity = 1000;
    const bot = await startRustBot(dir.socket, 'rust_frozen', capacity);
    await bot.send('register');
    await waitFor('rust_frozen online', async () => (await botStatus(monitor, 'rust_frozen'))?.status === 'online');
    process.kill(monitor.pid, 'SIGSTOP');
    interface Summary {
      p50_us: number;
      p99_us: number;
      p999_us: number;
      max_us: number;
      over_1ms: number;
    }
    interface Flood {
      calls: number;
      heartbeat: Summary;
      heartbeat_settled: Summary;
      usage: Summary;
      usage_settled: Summary;
      retries: number;
      heartbeat_calls: number;
      heartbeat_true: number;
      usage_calls: number;
      usage_true: number;
      stats: RustStats;
      rss_kb_before: number;
      rss_kb_after: number;
      more_calls: number;
      stats_more: RustStats;
      rss_kb_more: number;
    }
    let f: Flood;
    try {
      f = await bot.send<Flood>('flood 20000');
    } finally {
      process.kill(monitor.pid, 'SIGCONT');
    }
    const fmt = (s: Summary) =>
      `p50 ${s.p50_us} µs, p99 ${s.p99_us} µs, p99.9 ${s.p999_us} µs, max ${s.max_us} µs, ${s.over_1ms} over 1 ms`;
    t.diagnostic(`heartbeat(), first attempts: ${fmt(f.heartbeat)}; after re-timing: ${fmt(f.heartbeat_settled)}`);
    t.diagnostic(
      `log_llm_usage(), first attempts: ${fmt(f.usage)}; after re-timing: ${fmt(f.usage_settled)}; ${f.retries} re-timings`,
    );
    t.diagnostic(
      `queued usage ${f.usage_true}, buffered ${f.stats.buffered_usage}, dropped ${f.stats.dropped_usage}; heartbeats coalesced ${f.stats.coalesced}; RSS ${f.rss_kb_before} → ${f.rss_kb_after} → ${f.rss_kb_more} kB after ${f.more_calls} more calls`,
    );
    // The contract: p99.9 < 1 ms for each call. A call over 1 ms was timed again (see flood() in
    // scripted_bot.rs): preemption on this shared 2-core box hits one attempt, waiting would hit all.
    assert.ok(f.heartbeat_settled.p999_us < 1000, `heartbeat p99.9 ${f.heartbeat_settled.p999_us} µs`);
    assert.ok(f.usage_settled.p999_us < 1000, `log_llm_usage p99.9 ${f.usage_settled.p999_us} µs`);
    assert.ok(f.heartbeat.p99_us < 1000 && f.usage.p99_us < 1000, 'p99 of first attempts < 1 ms');
    // Re-timing must not hide a client that stalls now and then: first attempts over 1 ms stay
    // within the contract's 0.1 % (a preemption costs one call; a stall every 100th call is 1 %).
    assert.ok(
      f.heartbeat.over_1ms <= f.heartbeat_calls / 1000,
      `heartbeat: ${f.heartbeat.over_1ms} of ${f.heartbeat_calls} first attempts over 1 ms`,
    );
    assert.ok(
      f.usage.over_1ms <= f.usage_calls / 1000,
      `log_llm_usage: ${f.usage.over_1ms} of ${f.usage_calls} first attempts over 1 ms`,
    );

    // Bounded: at most `capacity` usage lines, one heartbeat; every call accounted for.
    const s = f.stats;
    assert.ok(s.dropped_usage > 0, 'the frozen monitor did fill the queue');
    assert.ok(s.buffered_usage <= capacity, `buffered_usage ${s.buffered_usage}`);
    assert.ok(s.buffered <= capacity + 6, `buffered ${s.buffered}`);
    assert.equal(f.usage_true + s.dropped_usage, f.usage_calls, 'every llm_usage call queued or counted as dropped');
    assert.equal(
      f.heartbeat_true,
      f.heartbeat_calls,
      'heartbeat() returns true while the client is open (queued or coalesced)',
    );
    assert.equal(f.stats_more.buffered_usage <= capacity, true);
    assert.equal(f.stats_more.dropped_usage, s.dropped_usage + 5 * 20_000, 'the longer freeze only drops more');
    assert.equal(f.stats_more.buffered_usage, s.buffered_usage);
    assert.ok(
      f.rss_kb_more - f.rss_kb_after < 2048,
      `RSS grew ${f.rss_kb_more - f.rss_kb_after} kB over ${f.more_calls} more calls`,
    );

    // Thawed: every queued line arrives (dropped ones are counted, not lost silently).
    const expected = f.usage_calls + 5 * 20_000 - f.stats_more.dropped_usage;
    await waitFor(
      `${expected} llm_usage rows after SIGCONT`,
      async () => {
        await flush(monitor);
        return (
          query<{ n: number }>(dir.db, "SELECT count(*) n FROM llm_usage WHERE channel = 'rust_frozen'")[0].n ===
          expected
        );
      },
      30_000,
      200,
    );
    const closed = await bot.send<{ stats: RustStats }>('close');
    assert.equal(closed.stats.dropped_closed, 0);
    assert.equal(await bot.exited, 0);
  });

  test('monitor killed -9 and restarted: the Rust bot is online again by itself, registered with its features', async (t) => {
    if (noCargo(t)) return;
    const dir = new TestDir();
    dirs.push(dir);
    const first = await startMonitor(dir);
    const bot = await startRustBot(dir.socket, 'rust_survivor');
    await bot.send('register');
    await waitFor('rust_survivor online', async () => (await botStatus(first, 'rust_survivor'))?.status === 'online');
    first.child.kill('SIGKILL');
    await first.exited;
    await waitFor('the client to notice', async () => (await bot.send<RustStats>('stats')).state !== 'Connected');

    // The new monitor restores the bot from its database as it was (online): only last_seen, the
    // time it read a line from the bot, shows the bot spoke to it.
    const since = Date.now();
    const second = await startMonitor(dir);
    // No heartbeat thread and no call from the bot: the reconnect alone must register it again.
    const back = await waitFor(
      'rust_survivor online on the new monitor',
      async () => {
        const b = await botStatus(second, 'rust_survivor');
        return b?.status === 'online' && b.last_seen >= since && b;
      },
      15_000,
    ).catch(async (err: Error) => {
      throw new Error(
        `${err.message}; monitor: ${JSON.stringify(await botStatus(second, 'rust_survivor'))}, client: ${JSON.stringify(await bot.send('stats'))}`,
      );
    });
    assert.equal(back.pid, bot.pid);
    assert.deepEqual(
      back.features,
      { llm: true, translator: false },
      'register (with features) was re-sent, not an implicit heartbeat registration',
    );
    const s = await bot.send<RustStats>('stats');
    assert.ok(s.reconnects >= 1, JSON.stringify(s));
    assert.equal(s.sent, 2, 'the bot sent two lines, both register: one per connection');
    await bot.send('close');
    assert.equal(await bot.exited, 0);
    await waitFor(
      'offline after close()',
      async () => (await botStatus(second, 'rust_survivor'))?.status === 'offline',
    );
    assert.equal(await stopMonitor(second), 0);
  });
});
