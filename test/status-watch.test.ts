// `kissmon status --watch`: in a terminal (a real pty, through util-linux `script`) it redraws
// every 2 s with the summary line and the worst bots first; outside one it refuses clearly.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, test } from 'node:test';
import { commandMissing, requireResource } from './helpers/resources.js';
import {
  CLI,
  killStarted,
  runKissmon,
  startBot,
  startMonitor,
  stopMonitor,
  TestDir,
  waitFor,
  type MonitorProcess,
} from './helpers/monitor-process.js';

const dir = new TestDir();
let monitor: MonitorProcess;
let watcher: ReturnType<typeof spawn> | null = null;

before(async () => {
  monitor = await startMonitor(dir);
});

after(async () => {
  if (watcher?.exitCode === null) {
    const exited = new Promise((r) => watcher!.once('exit', r));
    watcher.kill('SIGKILL');
    await exited;
  }
  await killStarted();
  await stopMonitor(monitor);
  dir.remove();
});

test('outside a terminal --watch refuses with a clear message', async () => {
  const r = await runKissmon(['status', '--watch', '--socket', dir.socket]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--watch redraws the terminal every 2 s, and stdout is not a terminal/);
});

test('in a terminal it redraws with the summary, worst bots first', async (t) => {
  if (!requireResource(t, 'script (util-linux)', commandMissing('script', ['--version']))) return;
  startBot(monitor.socket, 'healthy_bot', 200);
  const doomed = startBot(monitor.socket, 'doomed_bot', 200);
  await waitFor('both bots online', async () =>
    (await runKissmon(['status', '--json', '--socket', dir.socket])).stdout.includes('doomed_bot'),
  );
  doomed.child.kill('SIGKILL');
  await doomed.exited;
  // `script` gives the command a pty; stty sizes it.
  const command = `stty rows 40 cols 160; exec ${process.execPath} ${CLI} status --watch --socket ${dir.socket}`;
  watcher = spawn('script', ['-qfec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  watcher.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  const frames = () => output.split('\x1b[H\x1b[2J').slice(1);
  await waitFor(
    'three redraws, the last with doomed_bot dead',
    () => frames().length >= 3 && /doomed_bot\s*│\s*\d+\s*│\s*dead/.test(frames().at(-1)!),
    30_000,
    100,
  );
  const last = frames().at(-1)!;
  assert.match(last, /^2 bots \((1 dead, 1 online|1 online, 1 dead)\) · monitor ok · \d\d:\d\d:\d\d UTC/);
  assert.ok(last.indexOf('doomed_bot') < last.indexOf('healthy_bot'), 'the dead bot is listed first');
});
