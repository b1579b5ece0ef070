// The launch settings (src/launch-settings.ts) on every real launch path: bin/kissmon.js's shebang,
// `npm start`, the systemd unit of docs/OPERATIONS.md; and a monitor started the way npm's bin link
// and that unit start it has them in every thread (each thread's V8 heap limit in GET /health is
// its old-generation limit + its young generation, which the semi-space flag sizes).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { defaultConfig } from '../src/config.js';
import { LAUNCH_ENV, LAUNCH_NODE_FLAGS, launchShebang } from '../src/launch-settings.js';
import type { HealthReport } from '../src/monitor.js';
import { requestControl } from '../src/http/control-client.js';
import { BIN, startMonitor, stopMonitor, TestDir } from './helpers/monitor-process.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** V8's heap size limit, MB, of a fresh `node` with these flags (main thread). */
function heapLimitMb(flags: readonly string[]): number {
  const out = execFileSync(process.execPath, [...flags, '-p', 'require("v8").getHeapStatistics().heap_size_limit']);
  return Math.round((Number(out) / 1048576) * 100) / 100;
}

test('bin/kissmon.js, npm start and the documented systemd unit carry the launch settings', () => {
  assert.equal(readFileSync(BIN, 'utf8').split('\n')[0], launchShebang());
  const pkg = JSON.parse(readFileSync(`${ROOT}/package.json`, 'utf8')) as { scripts: Record<string, string> };
  // Executed as a file (not `node bin/kissmon.js`, which skips the shebang).
  assert.match(pkg.scripts.start, /^\.\/bin\/kissmon\.js start\b/);
  const operations = readFileSync(`${ROOT}/docs/OPERATIONS.md`, 'utf8');
  const execStart = /^ExecStart=(\S+)/m.exec(operations)?.[1];
  assert.match(execStart ?? '', /\/bin\/kissmon\.js$/, `the unit's ExecStart runs ${execStart}, not bin/kissmon.js`);
});

test('a monitor launched through bin/kissmon.js has the launch settings in every thread', async (t) => {
  const dir = new TestDir();
  t.after(() => dir.remove());
  const monitor = await startMonitor(dir, [], { launch: 'bin' });
  t.after(() => stopMonitor(monitor));

  const environ = readFileSync(`/proc/${monitor.pid}/environ`, 'utf8').split('\0');
  for (const [key, value] of Object.entries(LAUNCH_ENV)) assert.ok(environ.includes(`${key}=${value}`), key);

  // The young generation the flags give: a heap limit minus the old-generation limit it was given.
  const young = heapLimitMb([...LAUNCH_NODE_FLAGS, '--max-old-space-size=512']) - 512;
  const youngByDefault = heapLimitMb(['--max-old-space-size=512']) - 512;
  assert.ok(young < youngByDefault, `the flags leave the young generation at V8's default (${young} MB)`);

  const { actors } = await requestControl<{ actors: HealthReport }>(monitor.control, 'GET', '/health');
  const limits = defaultConfig().supervisor.maxOldGenerationSizeMb as Record<string, number>;
  const expected = Object.fromEntries(
    actors.map((a) => [a.actor, a.actor === 'ingest' ? heapLimitMb(LAUNCH_NODE_FLAGS) : limits[a.actor] + young]),
  );
  assert.deepEqual(Object.fromEntries(actors.map((a) => [a.actor, a.heap_limit_mb])), expected);
  assert.deepEqual(actors.map((a) => a.actor).sort(), ['alerter', 'db', 'ingest', 'registry', 'sampler']);
});
