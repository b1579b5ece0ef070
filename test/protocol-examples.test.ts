// The examples in docs/PROTOCOL.md are real programs: this test extracts each block marked
// `<!-- example:LANG -->`, runs it against a listener, and checks that its four lines arrive,
// from its own pid, and pass the monitor's own validation (decodeLine); then runs it against a
// real monitor, whose status must show the bot offline. Python and Node always; Rust with `rustc`
// (missing: skipped with a message, or failed under CI=true), Go where `go` exists (otherwise
// skipped with a visible message).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { decodeLine } from '../src/protocol/decode.js';
import { startLineListener, type LineListener } from './fixtures/line-listener.js';
import {
  botStatus,
  flush,
  query,
  startMonitor,
  stopMonitor,
  TestDir,
  type MonitorProcess,
} from './helpers/monitor-process.js';
import { commandMissing, requireResource } from './helpers/resources.js';
import { waitFor } from './helpers/wait.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const doc = readFileSync(join(root, 'docs', 'PROTOCOL.md'), 'utf8');
const dir = mkdtempSync(join(tmpdir(), 'kbm-examples-'));
const TOKEN = 'example-token';
const pids: number[] = [];
const realDir = new TestDir();
let monitor: LineListener;
let real: MonitorProcess;

before(async () => {
  // A collecting stand-in for the monitor, to see the exact bytes; the real daemon accepts exactly what decodeLine accepts.
  monitor = await startLineListener(join(dir, 'monitor.sock'));
  real = await startMonitor(realDir);
});
after(async () => {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await monitor?.close();
  if (real) await stopMonitor(real);
  rmSync(dir, { recursive: true, force: true });
  realDir.remove();
});

/** The fenced block right after `<!-- example:LANG -->`. */
function example(lang: string): string {
  const match = new RegExp(`<!-- example:${lang} -->\\s*\\n\`\`\`[a-z]*\\n([\\s\\S]*?)\\n\`\`\`\\s*(\\n|$)`).exec(doc);
  assert.ok(match, `docs/PROTOCOL.md has no <!-- example:${lang} --> block`);
  return match[1] + '\n';
}

interface RunResult {
  code: number | null;
  pid: number;
  stdout: string;
  stderr: string;
}

async function run(command: string, args: string[], socketPath: string, timeoutMs = 30_000): Promise<RunResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, KISSBOT_MONITOR_SOCKET: socketPath, KISSBOT_MONITOR_TOKEN: TOKEN };
  const child = spawn(command, args, { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  pids.push(child.pid!);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  clearTimeout(timer);
  return { code, pid: child.pid!, stdout, stderr };
}

/** The example's exact lines (against the listener), then what a real monitor makes of them. */
async function assertRanAgainstMonitor(lang: string, command: string, args: string[]): Promise<void> {
  const result = await run(command, args, monitor.path);
  assert.equal(
    result.code,
    0,
    `example:${lang} exited ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`,
  );
  const channel = `example_${lang}`;
  const mine = () => monitor.lines.filter((l) => (JSON.parse(l.line) as { channel?: string }).channel === channel);
  await waitFor(`four lines from ${channel}`, () => mine().length >= 4, 10_000, 5);
  const lines = mine();
  assert.equal(lines.length, 4, `exactly four lines from ${channel}`);
  assert.equal(new Set(lines.map((l) => l.conn)).size, 1, 'one connection');
  const messages = lines.map((l): Record<string, unknown> => {
    const decoded = decodeLine(Buffer.from(l.line), 32);
    assert.ok(decoded.ok, `the monitor would reject ${l.line}: ${decoded.ok ? '' : decoded.detail}`);
    return decoded.message;
  });
  assert.deepEqual(
    messages.map((m) => m.type),
    ['register', 'heartbeat', 'llm_usage', 'unregister'],
  );
  assert.equal(messages[0].pid, result.pid, 'registers its own pid');
  assert.equal(messages[1].pid, result.pid);
  assert.equal(messages[3].pid, result.pid);
  assert.deepEqual(messages[0].features, { llm: true });
  for (const m of messages) {
    assert.equal(m.v, 1);
    assert.equal(m.token, TOKEN, 'token from KISSBOT_MONITOR_TOKEN');
    assert.equal(typeof m.ts, 'number');
  }
  assert.equal(messages[2].tokens_in, 145);
  assert.equal(messages[2].tokens_out, 87);

  // The real monitor. However soon the program exits (a Rust binary is gone in about a
  // millisecond, before the registry reads its pid), the bot shows up, and ends offline.
  const again = await run(command, args, real.socket);
  assert.equal(again.code, 0, `example:${lang} against the monitor exited ${again.code}\nstderr: ${again.stderr}`);
  const shown = await waitFor(`${channel} offline in status`, async () => {
    const bot = await botStatus(real, channel);
    return bot?.status === 'offline' && bot;
  });
  assert.equal(shown.pid, again.pid);
  assert.deepEqual(shown.features, { llm: true });
  await flush(real);
  const events = query<{ from_status: string | null; to_status: string; reason: string }>(
    real.db,
    'SELECT from_status, to_status, reason FROM bot_events WHERE channel = ? ORDER BY id',
    channel,
  );
  // online (read while it ran) or dead (read after it exited), then its unregister.
  assert.ok(
    ['null->online:registered', 'null->dead:exited_before_register'].includes(
      `${events[0]?.from_status}->${events[0]?.to_status}:${events[0]?.reason}`,
    ),
    JSON.stringify(events),
  );
  assert.deepEqual(events.at(-1), { from_status: events[0].to_status, to_status: 'offline', reason: 'unregistered' });
  assert.equal(events.length, 2, JSON.stringify(events));
  assert.deepEqual(query(real.db, 'SELECT feature, tokens_in, tokens_out FROM llm_usage WHERE channel = ?', channel), [
    { feature: 'example', tokens_in: 145, tokens_out: 87 },
  ]);
}

describe('docs/PROTOCOL.md examples', () => {
  test('python', async (t) => {
    if (!requireResource(t, 'python3', commandMissing('python3'))) return;
    const file = join(dir, 'example.py');
    writeFileSync(file, example('python'));
    await assertRanAgainstMonitor('python', 'python3', [file]);
  });

  test('node', async () => {
    const file = join(dir, 'example.mjs');
    writeFileSync(file, example('node'));
    await assertRanAgainstMonitor('node', process.execPath, [file]);
  });

  test('rust', async (t) => {
    if (!requireResource(t, 'rustc', commandMissing('rustc'))) return;
    const file = join(dir, 'example.rs');
    const bin = join(dir, 'example_rust');
    writeFileSync(file, example('rust'));
    // Plain rustc, as the doc says: no cargo, no crates.
    const build = spawnSync('rustc', [file, '-o', bin], { cwd: dir, encoding: 'utf8', timeout: 180_000 });
    assert.equal(build.status, 0, `rustc failed:\n${build.stderr}`);
    assert.equal(build.stderr.trim(), '', `rustc warnings:\n${build.stderr}`);
    await assertRanAgainstMonitor('rust', bin, []);
  });

  test('go', async (t) => {
    // go is not among the tools the CI machine promises (python3, rustc/cargo, chromium, PostgreSQL).
    if (!requireResource(t, 'go', commandMissing('go', ['version']), { optional: true })) return;
    const file = join(dir, 'example.go');
    const bin = join(dir, 'example_go');
    writeFileSync(file, example('go'));
    // Build, then run the binary itself: `go run` would put the go tool's pid between us and it.
    const build = spawnSync('go', ['build', '-o', bin, file], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 300_000,
      env: { ...process.env, GO111MODULE: 'off', GOCACHE: join(dir, 'gocache'), GOFLAGS: '' },
    });
    assert.equal(build.status, 0, `go build failed:\n${build.stderr}`);
    await assertRanAgainstMonitor('go', bin, []);
  });

  test('python and node examples exit 1 with a message when the monitor is absent', async (t) => {
    const absent = join(dir, 'absent.sock');
    writeFileSync(join(dir, 'example.mjs'), example('node'));
    writeFileSync(join(dir, 'example.py'), example('python'));
    const node = await run(process.execPath, [join(dir, 'example.mjs')], absent);
    assert.equal(node.code, 1);
    assert.match(node.stderr, /monitor not reachable/);
    if (!requireResource(t, 'python3', commandMissing('python3'))) return;
    const py = await run('python3', [join(dir, 'example.py')], absent);
    assert.equal(py.code, 1);
    assert.match(py.stderr, /monitor not reachable/);
  });
});
