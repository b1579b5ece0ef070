// The cross-host read side on both backends (src/db/queries.ts, src/hosts/hosts.ts,
// src/llm/report.ts): known rows of two hosts, one of them down, read through the same functions
// the CLI and the read pool use. Then, on SQLite, a real monitor heartbeats its one row.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { openPostgresWrite, openReader, parseBackend } from '../src/db/backend.js';
import { fleetStatus, statusRows, usageTotals } from '../src/db/queries.js';
import { ReadPool } from '../src/db/read-pool.js';
import { openWriteDatabase } from '../src/db/schema.js';
import { hostViews, upsertHost, type HostView } from '../src/hosts/hosts.js';
import { usageReport } from '../src/llm/report.js';
import { BACKENDS, openBackend } from './helpers/backends.js';
import {
  flush,
  killStarted,
  line,
  runKissmon,
  sendLines,
  startBot,
  startMonitor,
  TestDirs,
  waitFor,
} from './helpers/monitor-process.js';

const NOW = Date.now();
const iso = (ms: number) => new Date(ms).toISOString();

describe('cross-host views', () => {
  for (const kind of BACKENDS) {
    it(`status, hosts and usage by host [${kind}]`, async (t) => {
      const store = await openBackend(t, kind);
      if (!store) return;
      const writer =
        kind === 'sqlite'
          ? (await openWriteDatabase(store.dbPath, { busyTimeoutMs: 1_000 })).db
          : (await openPostgresWrite(store.dbPath)).db;
      t.after(() => writer.destroy());
      // `shared` on both hosts: a channel is unique per host only.
      await writer
        .insertInto('bot_status')
        .values(
          (['a', 'b'] as const).flatMap((host, i) =>
            ['shared', `${host}_only`].map((channel, j) => ({
              host,
              channel,
              pid: 100 * (i + 1) + j,
              status: 'online',
              features_json: null,
              registered_at: iso(NOW - 60_000),
              last_seen: iso(NOW - 1_000),
              last_heartbeat: iso(NOW - 1_000),
              start_time: null,
            })),
          ),
        )
        .execute();
      await writer
        .insertInto('bot_metrics')
        .values([
          {
            host: 'a',
            ts: iso(NOW - 20_000),
            channel: 'shared',
            pid: 100,
            rss_mb: 10,
            cpu_pct: 1,
            cpu_pct_machine: 0.5,
          },
          { host: 'a', ts: iso(NOW - 5_000), channel: 'shared', pid: 100, rss_mb: 11, cpu_pct: 2, cpu_pct_machine: 1 },
          {
            host: 'b',
            ts: iso(NOW - 5_000),
            channel: 'shared',
            pid: 200,
            rss_mb: 99,
            cpu_pct: 9,
            cpu_pct_machine: 4.5,
          },
        ])
        .execute();
      const call = (host: string, channel: string, tokens_in: number, latency_ms: number | null, status?: string) => ({
        host,
        ts: iso(NOW - 60_000),
        channel,
        model: 'gpt-4o',
        feature: 'chat',
        tokens_in,
        tokens_out: 1,
        latency_ms,
        cost_usd: status === 'error' ? null : 0.25,
        status: status ?? null,
      });
      await writer
        .insertInto('llm_usage')
        .values([
          call('a', 'shared', 10, 100),
          call('a', 'shared', 20, 200),
          call('a', 'a_only', 30, 300, 'error'),
          call('b', 'shared', 1_000, null),
        ])
        .execute();
      // Each monitor stores its own stale window; c's is longer than its age, b's shorter.
      const beat = (host: string, pid: number, staleAfterMs: number) =>
        upsertHost(writer, { host, version: '1.0.0', pid, startedAt: NOW - 60_000, bots: { online: 2 }, staleAfterMs });
      await beat('a', 11, 30_000);
      await beat('b', 22, 30_000);
      await beat('c', 33, 90_000);
      // b's and c's monitors last wrote a minute ago.
      await writer
        .updateTable('hosts')
        .set({ last_seen: iso(NOW - 60_000) })
        .where('host', '=', 'c')
        .execute();
      await writer
        .updateTable('hosts')
        .set({ last_seen: iso(NOW - 60_000) })
        .where('host', '=', 'b')
        .execute();

      const db = openReader(parseBackend(store.dbPath));
      t.after(() => db.destroy());
      // No override: each row by its own monitor's window (c at 60 s of 90 s is up).
      const hosts = await hostViews(db);
      assert.deepEqual(
        hosts.map((h) => [h.host, h.pid, h.state, h.stale_after_s, h.bots]),
        [
          ['a', 11, 'up', 30, { online: 2 }],
          ['b', 22, 'down', 30, { online: 2 }],
          ['c', 33, 'up', 90, { online: 2 }],
        ],
      );
      assert.ok(hosts[1].age_s >= 59, `b's age ${hosts[1].age_s} s`);
      // A reader's window overrides every row's.
      assert.deepEqual(
        (await hostViews(db, { staleAfterMs: 30_000 })).map((h) => [h.host, h.state, h.stale_after_s]),
        [
          ['a', 'up', 30],
          ['b', 'down', 30],
          ['c', 'down', 30],
        ],
      );
      await writer.deleteFrom('hosts').where('host', '=', 'c').execute();
      const hostsAB = hosts.filter((h) => h.host !== 'c');

      const fleet = await fleetStatus(db, {});
      assert.deepEqual(
        fleet.map((b) => [b.host, b.channel, b.status, b.reason ?? null, b.rss_mb]),
        [
          ['a', 'a_only', 'online', null, null],
          ['a', 'shared', 'online', null, 11],
          ['b', 'b_only', 'unknown', 'host_down', null],
          ['b', 'shared', 'unknown', 'host_down', 99],
        ],
      );
      assert.equal(fleet[3].stored_status, 'online');
      assert.deepEqual(
        (await fleetStatus(db, { staleAfterMs: 120_000, host: 'b' })).map((b) => [b.channel, b.status]),
        [
          ['b_only', 'online'],
          ['shared', 'online'],
        ],
      );
      assert.deepEqual(
        (await statusRows(db, { host: 'a' })).map((b) => [b.channel, b.pid, b.cpu_pct]),
        [
          ['a_only', 101, null],
          ['shared', 100, 2],
        ],
      );

      const report = await usageReport(db, { sinceMs: NOW - 3_600_000, by: ['host'], source: 'raw' });
      assert.deepEqual(
        report.rows.map((r) => [
          r.host,
          r.calls,
          r.tokens_in,
          r.errors,
          r.unpriced_calls,
          r.cost_usd,
          r.latency_p50_ms,
        ]),
        [
          ['a', 3, 60, 1, 1, 0.5, 200],
          ['b', 1, 1_000, 0, 0, 0.25, null],
        ],
      );
      assert.equal(report.totals.calls, 4);
      const onlyB = await usageReport(db, { sinceMs: NOW - 3_600_000, by: ['channel'], host: 'b', source: 'raw' });
      assert.deepEqual(
        onlyB.rows.map((r) => [r.channel, r.calls]),
        [['shared', 1]],
      );
      assert.deepEqual(await usageTotals(db, { sinceMs: NOW - 3_600_000, host: 'a' }), {
        calls: 3,
        tokens_in: 60,
        tokens_out: 3,
        cost_usd: 0.5,
        latency_p50_ms: 200,
        latency_p95_ms: 290,
        latency_p99_ms: 298,
      });

      // The read pool's threads give the same answers (their own connections to the same store).
      const pool = new ReadPool(store.dbPath, { maxThreads: 1, idleTimeoutMs: 1_000 });
      t.after(() => pool.close());
      const withoutAge = (list: typeof hosts) => list.map(({ age_s: _age, ...h }) => h);
      assert.deepEqual(withoutAge(await pool.hosts()), withoutAge(hostsAB));
      assert.deepEqual(await pool.fleet({}), fleet);
    });
  }

  it('a monitor on SQLite heartbeats its one row; kissmon hosts shows it up with its bots', async (t) => {
    const dirs = new TestDirs();
    t.after(async () => {
      await killStarted();
      dirs.removeAll();
    });
    const dir = dirs.create();
    const monitor = await startMonitor(dir, ['--host-name', 'solo', '--host-stale-after', '4']);
    startBot(monitor.socket, 'solo_bot', 200);
    const hosts = async () => {
      // No --host-stale-after: the row carries the monitor's own 4 s (the CLI's default is 60 s).
      const r = await runKissmon(['hosts', '--db', dir.db, '--json']);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as HostView[];
    };
    await waitFor('solo up with one online bot', async () => {
      const list = await hosts();
      return list.length === 1 && list[0].host === 'solo' && list[0].state === 'up' && list[0].bots.online === 1;
    });
    assert.deepEqual(
      (await hosts()).map((h) => [h.pid, h.stale_after_s]),
      [[monitor.pid, 4]],
    );
    // Its usage by host comes from the rollups (SQLite keeps them, with the host in their key).
    await sendLines(monitor.socket, [
      line({ type: 'llm_usage', channel: 'solo_bot', model: 'gpt-4o', feature: 'chat', tokens_in: 7, tokens_out: 1 }),
      line({ type: 'llm_usage', channel: 'solo_bot', model: 'gpt-4o', feature: 'chat', tokens_in: 8, tokens_out: 1 }),
    ]);
    await flush(monitor);
    const r = await runKissmon(['usage', '--db', dir.db, '--by', 'host', '--since', '1h', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const usage = JSON.parse(r.stdout) as {
      source: string;
      rows: { host: string; calls: number; tokens_in: number }[];
    };
    assert.equal(usage.source, 'rollups');
    assert.deepEqual(
      usage.rows.map((u) => [u.host, u.calls, u.tokens_in]),
      [['solo', 2, 15]],
    );
    // SIGKILL: no heartbeat any more, and one stale window later it is down.
    monitor.child.kill('SIGKILL');
    await monitor.exited;
    await waitFor('solo down', async () => (await hosts())[0].state === 'down', 20_000);
  });
});
