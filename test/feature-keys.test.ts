// Feature keys are at most 64 characters (PROTOCOL.md), enforced by the one schema in
// src/protocol/messages.ts. The same keys go to the real monitor, the TypeScript client and the
// Python client, and all three must agree on which they accept. Characters are code points: an
// emoji counts once, although it is two UTF-16 units.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { MonitorClient } from 'kissbot-monitor-client';
import { counters, json, oneShot } from './fixtures/socket-tools.js';
import { requireResource } from './helpers/resources.js';
import { status, startMonitor, stopMonitor, TestDir, waitFor, type MonitorProcess } from './helpers/monitor-process.js';

const CASES: { what: string; key: string; accepted: boolean }[] = [
  { what: '64 ASCII characters', key: 'k'.repeat(64), accepted: true },
  { what: '65 ASCII characters', key: 'k'.repeat(65), accepted: false },
  { what: 'empty', key: '', accepted: true },
  { what: '64 emoji (128 UTF-16 units)', key: '😀'.repeat(64), accepted: true },
  { what: '65 emoji', key: '😀'.repeat(65), accepted: false },
  { what: '64 × é', key: 'é'.repeat(64), accepted: true },
  { what: '63 characters and a newline', key: `${'k'.repeat(63)}\n`, accepted: true },
  { what: '64 characters and a newline', key: `${'k'.repeat(64)}\n`, accepted: false },
  { what: '64 lone surrogates', key: '\uD800'.repeat(64), accepted: true },
  { what: '1,000 characters', key: 'k'.repeat(1000), accepted: false },
];
const expected = CASES.map((c) => c.accepted);
const clientDir = fileURLToPath(new URL('../../clients/python/', import.meta.url));

describe('feature keys: at most 64 characters, the same verdict everywhere', () => {
  const dir = new TestDir();
  let monitor: MonitorProcess;
  before(async () => {
    monitor = await startMonitor(dir);
  });
  after(async () => {
    if (monitor) await stopMonitor(monitor);
    dir.remove();
  });

  it('the monitor accepts a 64-character key and refuses a 65-character one (invalid_fields)', async () => {
    const before = (await counters(monitor.control)).ingest.rejected.invalid_fields;
    for (const [i, c] of CASES.entries())
      await oneShot(
        monitor.socket,
        json({ type: 'register', channel: `fk_${i}`, pid: process.pid, features: { [c.key]: true } }),
      );
    await oneShot(monitor.socket, json({ type: 'register', channel: 'fk_last', pid: process.pid })); // processed after the others
    const bots = await waitFor('the last register applied', async () => {
      const all = await status(monitor);
      return all.some((b) => b.channel === 'fk_last') && all;
    });
    const verdicts = CASES.map((_, i) => bots.some((b) => b.channel === `fk_${i}`));
    assert.deepEqual(verdicts, expected);
    for (const [i, c] of CASES.entries()) {
      if (c.accepted) assert.deepEqual(bots.find((b) => b.channel === `fk_${i}`)?.features, { [c.key]: true }, c.what);
    }
    const refused = (await counters(monitor.control)).ingest.rejected.invalid_fields - before;
    assert.equal(refused, expected.filter((ok) => !ok).length);
  });

  it('the TypeScript client refuses exactly those keys (TypeError), before sending', async () => {
    const verdicts: boolean[] = [];
    for (const c of CASES) {
      const client = new MonitorClient({ channel: 'fk_ts', socketPath: join(dir.path, 'nobody-listens.sock') });
      try {
        await client.register({ [c.key]: true });
        verdicts.push(true);
      } catch (err) {
        assert.ok(err instanceof TypeError, c.what);
        verdicts.push(false);
      } finally {
        await client.close();
      }
    }
    assert.deepEqual(verdicts, expected);
  });

  it('the Python client flags exactly those keys as ones the monitor will refuse', async (t) => {
    const python = ['python3', 'python'].find((cmd) => spawnSync(cmd, ['--version']).status === 0);
    if (!requireResource(t, 'python3', python ? undefined : 'python3 not installed') || !python) return;
    // The client's own check (it warns and sends anyway: its register() never raises), fed the keys as JSON.
    const script = [
      'import json, sys',
      'from monitor_client import _clean_features, _features_problem',
      'keys = json.load(sys.stdin)',
      'print(json.dumps([_features_problem(_clean_features({k: True})) is None for k in keys]))',
    ].join('\n');
    const r = spawnSync(python, ['-c', script], {
      cwd: clientDir,
      input: JSON.stringify(CASES.map((c) => c.key)),
      encoding: 'utf8',
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' },
    });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), expected);
  });
});
