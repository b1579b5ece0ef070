// stdout a pipe nobody reads (a wedged journald, a paused `| less`): no thread waits on it. Log
// lines beyond the bounded buffer are dropped and counted, a register still shows in /status at
// once, and lines that do get out are whole (one writer for the process, never mid-line mixes).
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { requestControl } from '../src/http/control-client.js';
import {
  actorHealth,
  botStatus,
  killStarted,
  line,
  sendLines,
  startMonitor,
  stopMonitor,
  TestDir,
  waitFor,
  type MonitorProcess,
} from './helpers/monitor-process.js';

const pid = process.pid;
/** Each register/unregister is one "bot status changed" line (~200 bytes) from the registry thread. */
const FLOOD_PAIRS = 15_000;

/** Enough register/unregister pairs to log well past the sink's 4 MB bound; returns log_lines_dropped once > 0. */
async function floodUntilDropped(monitor: MonitorProcess, prefix: string): Promise<number> {
  const lines: string[] = [];
  for (let i = 0; i < FLOOD_PAIRS; i++) {
    const channel = `${prefix}_${i % 100}`;
    lines.push(line({ type: 'register', channel, pid }), line({ type: 'unregister', channel, pid }));
  }
  await sendLines(monitor.socket, lines);
  return waitFor(
    'log lines dropped',
    async () => {
      const health = await requestControl<{ log: { lines_dropped: number } }>(monitor.control, 'GET', '/health');
      return health.log.lines_dropped > 0 && health.log.lines_dropped;
    },
    60_000,
  );
}

describe('stdout is a full pipe nobody reads', () => {
  const dir = new TestDir();
  after(async () => {
    await killStarted();
    dir.remove();
  });

  it('drops and counts log lines, and a register is visible within 1 s', async () => {
    const monitor = await startMonitor(dir, [], { stdout: 'unread' });
    const dropped = await floodUntilDropped(monitor, 'flood');
    const metrics = await requestControl<string>(monitor.control, 'GET', '/metrics');
    assert.match(metrics, /kissmon_log_lines_dropped_total [1-9]/);

    // The flood is behind us (the registry has applied all of it), stdout is still wedged: what
    // follows measures waiting on the pipe, not a backlog of 30,000 signals on a busy box.
    await waitFor(
      'the flood applied',
      async () => (await actorHealth(monitor, 'registry')).processed >= 2 * FLOOD_PAIRS,
      60_000,
    );
    // 1 s: a register takes one batch tick to the registry; with a blocking stdout it took ~6 s
    // (or never, once the registry thread sat in write(2)). The box may be fully busy: 1 s is
    // still two orders of magnitude above the unloaded time.
    const sent = Date.now();
    await sendLines(monitor.socket, [line({ type: 'register', channel: 'fresh_bot', pid })]);
    await waitFor(
      'fresh_bot online',
      async () => (await botStatus(monitor, 'fresh_bot'))?.status === 'online',
      5_000,
      10,
    );
    const visibleMs = Date.now() - sent;
    assert.ok(visibleMs < 1_000, `register visible after ${visibleMs} ms (${dropped} log lines dropped)`);

    // Now read stdout: every line that got out is one whole JSON object.
    let out = '';
    monitor.child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    monitor.child.stdout!.resume();
    assert.equal(await stopMonitor(monitor), 0, 'clean exit after the pipe drained');
    const lines = out.split('\n').filter(Boolean);
    assert.ok(lines.length > 1000, `read ${lines.length} lines`);
    for (const l of lines) assert.doesNotThrow(() => JSON.parse(l), `a whole JSON line: ${l.slice(0, 120)}`);
    assert.ok(
      lines.some((l) => l.includes('"thread":"registry"')) && lines.some((l) => l.includes('"thread":"main"')),
      'lines of several threads',
    );
  });

  it('SIGTERM with stdout still wedged exits 0 without waiting on the pipe for ever', async () => {
    const monitor = await startMonitor(dir, [], { stdout: 'unread' });
    await floodUntilDropped(monitor, 'wedge');
    const started = Date.now();
    assert.equal(await stopMonitor(monitor), 0);
    // The log drain at exit is bounded by 2 s; 15 s leaves room for the normal shutdown on a busy box.
    assert.ok(Date.now() - started < 15_000, `exited after ${Date.now() - started} ms`);
  });
});
