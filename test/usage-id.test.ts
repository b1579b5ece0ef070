// llm_usage ids: a call sent twice with the same id (a client re-sending after a reconnect, or two
// copies over two connections) is stored once and counted as a duplicate; the TypeScript client
// gives every call an id of its own.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { MonitorClient } from 'kissbot-monitor-client';
import { requestControl } from '../src/http/control-client.js';
import type { HealthReport } from '../src/monitor.js';
import { BACKENDS, openBackend } from './helpers/backends.js';
import {
  flush,
  killStarted,
  line,
  query,
  sendLines,
  startMonitor,
  stopMonitor,
  TestDir,
  waitFor,
} from './helpers/monitor-process.js';

const call = (id: string | undefined, tokensIn: number) =>
  line({
    type: 'llm_usage',
    ...(id && { id }),
    channel: 'dup_bot',
    model: 'gpt-4o',
    feature: 'dup',
    tokens_in: tokensIn,
    tokens_out: 1,
  });

describe('llm_usage id', () => {
  const dir = new TestDir();
  after(async () => {
    await killStarted();
    dir.remove();
  });

  for (const kind of BACKENDS)
    it(
      `the same id twice (two connections, and again after a monitor restart) is stored once and counted [${kind}]`,
      { timeout: 60_000 },
      async (t) => {
        const store = await openBackend(t, kind);
        if (!store) return;
        const config = join(store.dir, 'config.json');
        writeFileSync(config, JSON.stringify({ healthIntervalMs: 200, ...store.overrides }));
        const args = ['--socket', dir.socket, '--config', config];
        let monitor = await startMonitor(dir, args, { pathFlags: false });
        const lines = Array.from({ length: 100 }, (_, i) => call(`call-${i}`, i));
        await sendLines(monitor.socket, lines);
        await sendLines(monitor.socket, [lines[7], call(undefined, 1000), call(undefined, 1000)]); // no id: both kept
        await flush(monitor);
        const { actors } = await requestControl<{ actors: HealthReport }>(monitor.control, 'GET', '/health');
        assert.equal(actors.find((a) => a.actor === 'db')!.detail.duplicate, 1);
        await waitFor('duplicate metric', async () =>
          /kissmon_llm_usage_duplicates_total 1\b/.test(
            await requestControl<string>(monitor.control, 'GET', '/metrics'),
          ),
        );

        // A client that reconnects to a restarted monitor and re-sends what it is not sure arrived.
        assert.equal(await stopMonitor(monitor), 0);
        monitor = await startMonitor(dir, args, { pathFlags: false });
        await sendLines(monitor.socket, lines.slice(50));
        await flush(monitor);
        const [stats] = await store.rows<{ n: number; ids: number; without: number }>(
          "SELECT count(*) AS n, count(DISTINCT id) AS ids, count(*) - count(id) AS without FROM llm_usage WHERE feature = 'dup'",
        );
        assert.deepEqual(stats, { n: 102, ids: 100, without: 2 });
        const { actors: later } = await requestControl<{ actors: HealthReport }>(monitor.control, 'GET', '/health');
        assert.equal(later.find((a) => a.actor === 'db')!.detail.duplicate, 50);
        assert.equal(await stopMonitor(monitor), 0);
      },
    );

  it('the TypeScript client sends a distinct id with every call, or the one given', { timeout: 30_000 }, async () => {
    const monitor = await startMonitor(dir);
    const client = new MonitorClient({ channel: 'id_client', socketPath: monitor.socket });
    await client.register();
    for (let i = 0; i < 20; i++)
      await client.logLlmUsage({ model: 'gpt-4o', feature: 'client_id', tokensIn: i, tokensOut: 1 });
    await client.logLlmUsage({
      model: 'gpt-4o',
      feature: 'client_id',
      tokensIn: 99,
      tokensOut: 1,
      id: 'chosen-by-the-bot',
    });
    await client.logLlmUsage({
      model: 'gpt-4o',
      feature: 'client_id',
      tokensIn: 99,
      tokensOut: 1,
      id: 'chosen-by-the-bot',
    });
    await client.close();
    await waitFor('rows', async () => {
      await flush(monitor);
      return query<{ n: number }>(dir.db, "SELECT count(*) n FROM llm_usage WHERE feature = 'client_id'")[0].n === 21;
    });
    const ids = query<{ id: string | null }>(
      dir.db,
      "SELECT id FROM llm_usage WHERE feature = 'client_id' ORDER BY tokens_in",
    ).map((r) => r.id);
    assert.equal(new Set(ids).size, 21);
    assert.ok(
      ids.slice(0, 20).every((id) => typeof id === 'string' && /^[0-9a-f-]{36}$/.test(id)),
      ids.join(','),
    );
    assert.equal(ids[20], 'chosen-by-the-bot');
    assert.equal(await stopMonitor(monitor), 0);
  });
});
