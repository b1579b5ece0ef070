// The db-writer actor on a real worker thread and a real store: the supervisor's handshake is done
// by hand, data goes through a main-side Link exactly as the ingest path sends it. Tests marked
// [sqlite] / [postgres] run on both backends (test/helpers/backends.ts); the others are about
// SQLite itself (its lock, its file, its migrations of old files).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import BetterSqlite3 from 'better-sqlite3';
import { Link } from '../src/actors/link.js';
import { resolveConfig } from '../src/config.js';
import { openWriteDatabase } from '../src/db/schema.js';
import { Spool, spoolPathFor, spoolUnacknowledged } from '../src/db/spool.js';
import { createLogger } from '../src/log.js';
import type { RowItem, WriteItem } from '../src/actors/db-writer-messages.js';
import { sleep, waitFor } from './helpers/wait.js';
import { startWriter, stopWriters, TEST_HOST } from './helpers/writer.js';
import { BACKENDS, openBackend, postgresMissing } from './helpers/backends.js';
import { requireResource } from './helpers/resources.js';

const dirs: string[] = [];
after(async () => {
  await stopWriters();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function tempDb(): string {
  const dir = mkdtempSync(join(tmpdir(), 'kissmon-writer-'));
  dirs.push(dir);
  return join(dir, 'monitor.db');
}

function reader(dbPath: string): BetterSqlite3.Database {
  const db = new BetterSqlite3(dbPath, { readonly: true });
  after(() => db.close());
  return db;
}

const count = (db: BetterSqlite3.Database, table: string) =>
  (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;

/** An llm_usage row whose tokens_in is its unique id. */
const usage = (id: number, at = Date.now()): WriteItem => ({
  type: 'llm_usage',
  at,
  channel: `ch_${id % 50}`,
  model: 'gpt-4o-mini',
  feature: 'chat',
  tokens_in: id,
  tokens_out: 1,
  latency_ms: 100,
});

for (const kind of BACKENDS)
  test(`rows of every item type land with the right columns and cost [${kind}]`, async (t) => {
    const store = await openBackend(t, kind);
    if (!store) return;
    const link = new Link<WriteItem>('ingest');
    const writer = await startWriter(store.dbPath, link, store.overrides);
    const t0 = Date.UTC(2025, 0, 2, 3, 4, 5, 678);
    const items: WriteItem[] = [
      {
        type: 'llm_usage',
        at: t0,
        channel: 'alpha',
        model: 'gpt-4o',
        feature: 'chat',
        tokens_in: 1000,
        tokens_out: 500,
        latency_ms: 812.5,
      },
      {
        type: 'llm_usage',
        at: t0,
        channel: 'alpha',
        model: 'gpt-4o-2024-08-06',
        feature: 'chat',
        tokens_in: 1000,
        tokens_out: 500,
        latency_ms: null,
      },
      {
        type: 'llm_usage',
        at: t0,
        channel: 'beta',
        model: 'some-new-model',
        feature: 'summary',
        tokens_in: 1_000_000,
        tokens_out: 1_000_000,
        latency_ms: 3,
      },
      {
        type: 'status',
        channel: 'alpha',
        pid: 41,
        status: 'online',
        features_json: '{"tts":true}',
        registered_at: t0,
        last_seen: t0,
        last_heartbeat: null,
        start_time: null,
      },
      {
        type: 'status',
        channel: 'alpha',
        pid: 42,
        status: 'stale',
        features_json: null,
        registered_at: t0 + 1,
        last_seen: t0 + 2,
        last_heartbeat: t0 + 3,
        start_time: 123_456,
      },
      { type: 'event', at: t0, channel: 'alpha', pid: 42, from: 'online', to: 'stale', reason: 'no_heartbeat' },
      { type: 'event', at: t0, channel: 'beta', pid: 7, from: null, to: 'online', reason: 'registered' },
      { type: 'metric', at: t0, channel: 'alpha', pid: 42, rss_mb: 81.5, cpu_pct: 150, cpu_pct_machine: 75 },
      {
        type: 'health',
        at: t0,
        health: {
          actor: 'registry',
          processed: 10,
          queue_depth: 2,
          dropped: 0,
          loop_lag_p99_ms: 1.5,
          loop_lag_max_ms: 3,
          heap_used_mb: 12.3,
          heap_limit_mb: 518,
          uptime_s: 60,
          restarts: 1,
          detail: { bots_online: 3 },
        },
      },
    ];
    for (const item of items) link.send(item);
    // A row SQLite cannot take and an unknown item type: each is dropped and counted, never fatal.
    link.send({
      type: 'event',
      at: Number.NaN,
      channel: 'alpha',
      pid: 42,
      from: null,
      to: 'online',
      reason: 'registered',
    });
    link.send({ type: 'no_such_table', at: t0 } as never);
    await waitFor('acks', () => link.pending === 0);

    const iso = new Date(t0).toISOString();
    const usageRows = await store.rows(
      'SELECT ts, channel, model, feature, tokens_in, tokens_out, latency_ms, cost_usd FROM llm_usage ORDER BY channel, model',
    );
    assert.deepEqual(usageRows, [
      {
        ts: iso,
        channel: 'alpha',
        model: 'gpt-4o',
        feature: 'chat',
        tokens_in: 1000,
        tokens_out: 500,
        latency_ms: 812.5,
        cost_usd: 0.0075,
      },
      {
        ts: iso,
        channel: 'alpha',
        model: 'gpt-4o-2024-08-06',
        feature: 'chat',
        tokens_in: 1000,
        tokens_out: 500,
        latency_ms: null,
        cost_usd: 0.0075,
      },
      {
        ts: iso,
        channel: 'beta',
        model: 'some-new-model',
        feature: 'summary',
        tokens_in: 1_000_000,
        tokens_out: 1_000_000,
        latency_ms: 3,
        cost_usd: null,
      }, // no price: no made-up cost
    ]);
    // Two upserts of one channel leave one row holding the second.
    assert.deepEqual(await store.rows('SELECT * FROM bot_status'), [
      {
        channel: 'alpha',
        pid: 42,
        status: 'stale',
        features_json: null,
        registered_at: new Date(t0 + 1).toISOString(),
        last_seen: new Date(t0 + 2).toISOString(),
        last_heartbeat: new Date(t0 + 3).toISOString(),
        start_time: 123_456,
        host: TEST_HOST,
      },
    ]);
    assert.deepEqual(
      await store.rows('SELECT ts, channel, pid, from_status, to_status, reason FROM bot_events ORDER BY id'),
      [
        { ts: iso, channel: 'alpha', pid: 42, from_status: 'online', to_status: 'stale', reason: 'no_heartbeat' },
        { ts: iso, channel: 'beta', pid: 7, from_status: null, to_status: 'online', reason: 'registered' },
      ],
    );
    assert.deepEqual(await store.rows('SELECT * FROM bot_metrics'), [
      {
        ts: iso,
        channel: 'alpha',
        pid: 42,
        rss_mb: 81.5,
        cpu_pct: 150,
        features_json: null,
        cpu_pct_machine: 75,
        host: TEST_HOST,
      },
    ]);
    assert.deepEqual(await store.rows('SELECT * FROM worker_health'), [
      {
        ts: iso,
        actor: 'registry',
        processed: 10,
        queue_depth: 2,
        dropped: 0,
        loop_lag_p99_ms: 1.5,
        loop_lag_max_ms: 3,
        heap_used_mb: 12.3,
        uptime_s: 60,
        restarts: 1,
        detail_json: '{"bots_online":3}',
        host: TEST_HOST,
      },
    ]);
    assert.deepEqual(await store.rows('SELECT sender, seq FROM delivery_cursor'), [{ sender: link.sender, seq: 1 }]);

    const health = await writer.control.health();
    assert.equal(health.actor, 'db');
    assert.equal(health.processed, items.length);
    assert.equal(health.queue_depth, 0);
    assert.equal(health.dropped, 2);
    assert.deepEqual(
      [
        health.detail.rows_llm_usage,
        health.detail.rows_status,
        health.detail.rows_events,
        health.detail.rows_metrics,
        health.detail.rows_health,
      ],
      [3, 2, 2, 1, 1],
    );
    await writer.control.shutdown();
    await writer.stop();
  });

for (const kind of BACKENDS)
  test(`many rows go into each transaction; flush() commits what is held [${kind}]`, async (t) => {
    const store = await openBackend(t, kind);
    if (!store) return;
    const link = new Link<WriteItem>('ingest');
    // A flush interval longer than the test: only the row threshold or flush() can commit.
    const writer = await startWriter(store.dbPath, link, {
      ...store.overrides,
      writer: { flushIntervalMs: 600_000, maxRowsPerTransaction: 10_000 },
    });
    for (let i = 0; i < 30_000; i++) link.send(usage(i));
    // Settled: everything received, less than a transaction's worth still held.
    let health = await waitFor(
      '30k rows received',
      async () => {
        const h = await writer.control.health();
        return h.processed + h.queue_depth === 30_000 && h.queue_depth < 10_000 && h;
      },
      30_000,
      10,
    );
    assert.ok(health.processed >= 20_000, 'full transactions commit without waiting for the interval');
    assert.ok(health.queue_depth > 0, 'the remainder waits for the interval (10 min)');
    await writer.control.flush();
    health = await writer.control.health();
    assert.equal(health.processed, 30_000);
    assert.equal(health.queue_depth, 0);
    assert.ok(
      Number(health.detail.commits) >= 3 && Number(health.detail.commits) <= 6,
      `30k rows took ${health.detail.commits} commits`,
    );
    await waitFor('acks', () => link.pending === 0);
    assert.equal(await store.count('llm_usage'), 30_000);
  });

test('a locked database delays rows but loses none, and the writer stays responsive', async () => {
  const dbPath = tempDb();
  const link = new Link<WriteItem>('ingest');
  const writer = await startWriter(dbPath, link);
  const locker = new BetterSqlite3(dbPath);
  after(() => locker.close());
  locker.exec('BEGIN IMMEDIATE');
  let unlockedAt = Number.POSITIVE_INFINITY;
  let flushed: Promise<number> | undefined;
  try {
    for (let i = 0; i < 10_000; i++) link.send(usage(i));
    await waitFor('rows sent', () => link.stats().sentItems === 10_000);
    const started = Date.now();
    let slowest = 0;
    let health = await writer.control.health();
    // At least 2 s of lock and 5 busy retries (the writer's own count; a loaded box retries less often).
    while (Date.now() - started < 2_000 || Number(health.detail.busy_retries) < 5) {
      if (Date.now() - started > 30_000) assert.fail(`only ${health.detail.busy_retries} busy retries in 30 s`);
      const t = performance.now();
      health = await writer.control.health();
      slowest = Math.max(slowest, performance.now() - t);
      flushed ??= health.queue_depth === 10_000 ? writer.control.flush().then(() => Date.now()) : undefined;
      await sleep(50);
    }
    // A writer stuck retrying synchronously would answer only once the lock is gone (≥ 2 s here);
    // a responsive one answers between two 20 ms busy timeouts. 1 s leaves a loaded box room.
    assert.ok(slowest < 1_000, `health() took ${slowest.toFixed(0)} ms while the database was locked`);
    assert.equal(health.queue_depth, 10_000);
    assert.equal(health.processed, 0);
    assert.ok(Number(health.detail.busy_retries) >= 5, `busy_retries ${health.detail.busy_retries}`);
    assert.equal(health.detail.other_errors, 0);
    assert.equal(link.pending, 10_000, 'nothing is acknowledged before it is committed');
  } finally {
    locker.exec('COMMIT');
    unlockedAt = Date.now();
  }
  assert.ok(flushed, 'the writer held all rows during the lock');
  assert.ok((await flushed) >= unlockedAt, 'flush() resolves only once the held rows are committed');
  await waitFor('acks after the lock is released', () => link.pending === 0);
  assert.equal(count(reader(dbPath), 'llm_usage'), 10_000);
  const health = await writer.control.health();
  assert.equal(health.queue_depth, 0);
  assert.equal(health.dropped, 0);
});

for (const kind of BACKENDS)
  test(`a writer restart loses no row and inserts none twice [${kind}]`, async (t) => {
    // The availability check alone: each subtest opens its own store (a PostgreSQL database is not free).
    if (kind === 'postgres' && !requireResource(t, 'PostgreSQL', await postgresMissing())) return;
    await t.test('batches committed but never acknowledged are not inserted again', async (t) => {
      const store = (await openBackend(t, kind))!;
      const link = new Link<WriteItem>('ingest');
      const first = await startWriter(store.dbPath, link, store.overrides);
      for (let i = 0; i < 5_000; i++) link.send(usage(i));
      link.flush();
      // Hold the main thread until the rows are committed, then cut the link before the acks can
      // be read: the worst case of a crash between COMMIT and the ack reaching the sender.
      const pause = new Int32Array(new SharedArrayBuffer(4));
      const deadline = Date.now() + 30_000;
      while (store.countSync('llm_usage') < 5_000 && Date.now() < deadline) Atomics.wait(pause, 0, 0, 5);
      link.detach();
      await first.stop();
      assert.equal(await store.count('llm_usage'), 5_000);
      assert.equal(link.pending, 5_000, 'the acks were lost with the port');

      for (let i = 5_000; i < 10_000; i++) link.send(usage(i));
      const second = await startWriter(store.dbPath, link, store.overrides, 2); // re-sends all 10k
      await waitFor('acks', () => link.pending === 0);
      assert.deepEqual(await store.rows('SELECT count(*) AS n, count(DISTINCT tokens_in) AS ids FROM llm_usage'), [
        { n: 10_000, ids: 10_000 },
      ]);
      assert.equal((await second.control.health()).detail.rows_llm_usage, 5_000);
    });

    await t.test('a writer killed mid-stream: rows in flight are re-sent and land once', async (t) => {
      const store = (await openBackend(t, kind))!;
      const link = new Link<WriteItem>('ingest');
      let first = await startWriter(store.dbPath, link, store.overrides);
      const committedRows = () => store.count('llm_usage');
      let sent = 0;
      const pump = setInterval(() => {
        for (let k = 0; k < 200; k++) link.send(usage(sent++));
      }, 2);
      try {
        // Each phase ends on what happened, not on a time: rows committed, rows sent while down,
        // rows committed by the new writer.
        await waitFor('rows committed by the first writer', async () => (await committedRows()) >= 2_000, 30_000, 5);
        await first.stop(); // terminate(): whatever the writer held is gone with it
        const sentAtStop = sent;
        await waitFor('rows sent while the writer is down', () => sent >= sentAtStop + 2_000, 30_000, 5);
        first = await startWriter(store.dbPath, link, store.overrides, 2);
        const committed = await committedRows();
        await waitFor(
          'rows committed by the second writer',
          async () => (await committedRows()) >= committed + 2_000,
          30_000,
          5,
        );
      } finally {
        clearInterval(pump);
      }
      await waitFor('acks', () => link.pending === 0, 30_000, 10);
      assert.equal(link.stats().dropped, 0);
      assert.deepEqual(await store.rows('SELECT count(*) AS n, count(DISTINCT tokens_in) AS ids FROM llm_usage'), [
        { n: sent, ids: sent },
      ]);
    });
  });

for (const kind of BACKENDS)
  test(`fault injection: writerDropRatio loses that share of llm_usage rows, still acknowledged [${kind}]`, async (t) => {
    const store = await openBackend(t, kind);
    if (!store) return;
    const link = new Link<WriteItem>('ingest');
    await startWriter(store.dbPath, link, { ...store.overrides, faults: { enabled: true, writerDropRatio: 0.5 } });
    for (let i = 0; i < 4_000; i++) link.send(usage(i));
    await waitFor('acks', () => link.pending === 0);
    const stored = await store.count('llm_usage');
    assert.ok(stored > 1_600 && stored < 2_400, `${stored} of 4000 rows stored`);
  });

test('retention deletes old rows only, in chunks, and keeps tables set to 0 days', async () => {
  const dbPath = tempDb();
  const now = Date.now();
  const daysAgo = (d: number) => new Date(now - d * 86_400_000).toISOString();
  const { db } = await openWriteDatabase(dbPath, { busyTimeoutMs: 20 });
  const metric = (ts: string) => ({
    ts,
    channel: 'a',
    pid: 1,
    rss_mb: 1,
    cpu_pct: 1,
    cpu_pct_machine: 0.5,
    features_json: null,
  });
  for (let chunk = 0; chunk < 12; chunk++)
    await db
      .insertInto('bot_metrics')
      .values(Array.from({ length: 1_000 }, () => metric(daysAgo(8))))
      .execute();
  await db
    .insertInto('bot_metrics')
    .values([metric(daysAgo(6)), metric(daysAgo(0))])
    .execute();
  const call = (ts: string) => ({
    ts,
    channel: 'a',
    model: 'm',
    feature: 'f',
    tokens_in: 1,
    tokens_out: 1,
    latency_ms: 1,
    cost_usd: 0,
  });
  await db
    .insertInto('llm_usage')
    .values([call(daysAgo(31)), call(daysAgo(29))])
    .execute();
  const event = (ts: string) => ({
    ts,
    channel: 'a',
    pid: 1,
    from_status: null,
    to_status: 'online',
    reason: 'registered',
  });
  await db
    .insertInto('bot_events')
    .values([event(daysAgo(400)), event(daysAgo(1))])
    .execute();
  const health = (ts: string) => ({
    ts,
    actor: 'db',
    processed: 0,
    queue_depth: 0,
    dropped: 0,
    loop_lag_p99_ms: 0,
    loop_lag_max_ms: 0,
    heap_used_mb: 0,
    uptime_s: 0,
    restarts: 0,
    detail_json: '{}',
  });
  await db
    .insertInto('worker_health')
    .values([health(daysAgo(7.5)), health(daysAgo(6.5))])
    .execute();
  await db
    .insertInto('delivery_cursor')
    .values([
      { sender: 'gone', seq: 9, updated_at: daysAgo(2) },
      { sender: 'recent', seq: 3, updated_at: daysAgo(0.1) },
    ])
    .execute();
  await db.destroy();

  const writer = await startWriter(dbPath, new Link<WriteItem>('ingest'), {
    retention: { metricsDays: 7, usageDays: 30, eventsDays: 0, healthDays: 7 },
  });
  const result = await writer.control.prune();
  assert.deepEqual(result, { bot_metrics: 12_000, llm_usage: 1, worker_health: 1, delivery_cursor: 1 });
  const rows = reader(dbPath);
  const remaining = (table: string, column = 'ts') =>
    rows
      .prepare(`SELECT ${column} AS v FROM ${table} ORDER BY 1`)
      .all()
      .map((r) => (r as { v: string }).v);
  assert.deepEqual(remaining('bot_metrics'), [daysAgo(6), daysAgo(0)]);
  assert.deepEqual(remaining('llm_usage'), [daysAgo(29)]);
  assert.deepEqual(remaining('bot_events'), [daysAgo(400), daysAgo(1)]);
  assert.deepEqual(remaining('worker_health'), [daysAgo(6.5)]);
  assert.deepEqual(remaining('delivery_cursor', 'sender'), ['recent']);
  assert.deepEqual(await writer.control.prune(), {
    bot_metrics: 0,
    llm_usage: 0,
    worker_health: 0,
    delivery_cursor: 0,
  });
});

test('migrations are idempotent across restarts and threads starting at once, and adopt an old database', async () => {
  const dbPath = tempDb();
  // Each thread has its own connection, as separate processes would; they race to migrate.
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    import(workerData.schema)
      .then(async ({ openWriteDatabase }) => {
        const { db } = await openWriteDatabase(workerData.dbPath, { busyTimeoutMs: 20 });
        await db.destroy();
        parentPort.postMessage('ok');
      })
      .catch((err) => parentPort.postMessage(String(err && err.stack)));`;
  const schema = new URL('../src/db/schema.js', import.meta.url).href;
  const results = await Promise.all(
    Array.from({ length: 4 }, async () => {
      const worker = new Worker(code, { eval: true, workerData: { schema, dbPath } });
      try {
        return await new Promise((resolve, reject) => {
          worker.once('message', resolve);
          worker.once('error', reject);
        });
      } finally {
        await worker.terminate();
      }
    }),
  );
  assert.deepEqual(results, ['ok', 'ok', 'ok', 'ok']);
  const again = await openWriteDatabase(dbPath, { busyTimeoutMs: 20 });
  const tables = (await again.db.introspection.getTables()).map((t) => t.name).sort();
  assert.deepEqual(tables, [
    'alert_deliveries',
    'alert_groups',
    'alert_silences',
    'alerts',
    'bot_events',
    'bot_metrics',
    'bot_metrics_features',
    'bot_status',
    'delivery_cursor',
    'hosts',
    'llm_budget_state',
    'llm_usage',
    'llm_usage_daily',
    'llm_usage_hourly',
    'llm_usage_weekly',
    'monitor_state',
    'worker_health',
  ]);
  assert.equal(again.sqlite.pragma('journal_mode', { simple: true }), 'wal');
  await again.db.destroy();

  // The old monitor's file: its three tables, bot_metrics without cpu_pct_machine.
  const legacyPath = tempDb();
  const legacy = new BetterSqlite3(legacyPath);
  legacy.exec(`CREATE TABLE bot_status (channel TEXT PRIMARY KEY, pid INTEGER, status TEXT, features_json TEXT, registered_at TEXT, last_seen TEXT, last_heartbeat TEXT);
    CREATE TABLE bot_metrics (ts TEXT, channel TEXT, pid INTEGER, rss_mb REAL, cpu_pct REAL, features_json TEXT);
    CREATE TABLE llm_usage (ts TEXT, channel TEXT, model TEXT, feature TEXT, tokens_in INTEGER, tokens_out INTEGER, latency_ms REAL, cost_usd REAL);
    INSERT INTO bot_metrics VALUES ('2024-01-01T00:00:00', 'old', 1, 10, 5, NULL);`);
  legacy.close();
  const adopted = await openWriteDatabase(legacyPath, { busyTimeoutMs: 20 });
  assert.deepEqual(adopted.sqlite.prepare('SELECT channel, cpu_pct_machine FROM bot_metrics').all(), [
    { channel: 'old', cpu_pct_machine: null },
  ]);
  await adopted.db.destroy();
});

for (const kind of BACKENDS)
  test(`rows a sender spooled itself (writer not answering) are replayed once; the same batches re-sent later are not inserted again [${kind}]`, async (t) => {
    const store = await openBackend(t, kind);
    if (!store) return;
    const config = resolveConfig({ logLevel: 'error', hostName: TEST_HOST }, store.overrides);
    const link = new Link<WriteItem>('ingest');
    for (let i = 0; i < 1_000; i++) link.send(usage(i));
    const result = spoolUnacknowledged(link, config, createLogger('silent'));
    assert.deepEqual(result, { spooled: 1_000, lost: 0 });
    assert.equal(link.pending, 1_000, 'still unacknowledged: the sender re-sends it to the next writer');
    const writer = await startWriter(store.dbPath, link, store.overrides); // replays the spool, then receives the re-send
    await waitFor('acks', () => link.pending === 0);
    assert.equal(await store.count('llm_usage'), 1_000);
    const { detail } = await writer.control.health();
    assert.equal(detail.rows_replayed, 1_000);
    assert.equal(detail.redelivered, 1_000);
    assert.equal(detail.spool_pending, 0);
  });

/** A registry's 'caused' item: the rows ingest batch `seq` of `sender` caused (one 'online' event for `channel`). */
const caused = (sender: string, seq: number, channel: string): WriteItem => ({
  type: 'caused',
  sender,
  seq,
  items: [
    {
      type: 'event',
      at: Date.now(),
      channel,
      pid: 1,
      from: null,
      to: 'online',
      reason: 'registered',
    } satisfies RowItem,
  ],
});

const eventChannels = (dbPath: string) =>
  (reader(dbPath).prepare('SELECT channel FROM bot_events ORDER BY id').all() as { channel: string }[]).map(
    (r) => r.channel,
  );

test('rows of an ingest batch applied twice are stored once: the copy held in the same transaction, and the one after the commit', async () => {
  const dbPath = tempDb();
  const link = new Link<WriteItem>('registry');
  const writer = await startWriter(dbPath, link);
  const locker = new BetterSqlite3(dbPath);
  after(() => locker.close());
  locker.exec('BEGIN IMMEDIATE');
  try {
    // A registry applies ingest batches 1 and 2; restarted, it is re-sent 2 and applies it again with 3.
    for (const item of [caused('ingest:a', 1, 'one'), caused('ingest:a', 2, 'two')]) link.send(item);
    link.flush();
    for (const item of [caused('ingest:a', 2, 'two again'), caused('ingest:a', 3, 'three')]) link.send(item);
    link.flush();
    await waitFor(
      'both batches held by the locked writer',
      async () => (await writer.control.health()).queue_depth === 4,
    );
  } finally {
    locker.exec('ROLLBACK');
  }
  await waitFor('acks', () => link.pending === 0);
  for (const item of [caused('ingest:a', 3, 'three again'), caused('ingest:a', 4, 'four')]) link.send(item);
  await waitFor('acks', () => link.pending === 0);
  assert.deepEqual(eventChannels(dbPath), ['one', 'two', 'three', 'four']);
  assert.deepEqual(reader(dbPath).prepare("SELECT seq FROM delivery_cursor WHERE sender = 'ingest:a'").all(), [
    { seq: 4 },
  ]);
  assert.equal((await writer.control.health()).detail.reapplied, 2);
});

for (const kind of BACKENDS)
  test(`spool replay skips the rows of an ingest batch spooled twice (by a registry and by its restarted successor) [${kind}]`, async (t) => {
    const store = await openBackend(t, kind);
    if (!store) return;
    const config = resolveConfig({ logLevel: 'error', hostName: TEST_HOST }, store.overrides);
    const spool = new Spool<WriteItem>(spoolPathFor(config), config.spool.maxBytes);
    assert.ok(
      spool.append([
        { from: 'registry:old', seq: 1, items: [caused('ingest:a', 1, 'one'), caused('ingest:a', 2, 'two')] },
        {
          from: 'registry:new',
          seq: 1,
          items: [
            caused('ingest:a', 1, 'one again'),
            caused('ingest:a', 2, 'two again'),
            caused('ingest:a', 3, 'three'),
          ],
        },
      ]),
    );
    const writer = await startWriter(store.dbPath, new Link<WriteItem>('ingest'), store.overrides);
    await waitFor('spool replayed', async () => (await writer.control.health()).detail.spool_pending === 0);
    const channels = await store.rows<{ channel: string }>('SELECT channel FROM bot_events ORDER BY id');
    assert.deepEqual(
      channels.map((r) => r.channel),
      ['one', 'two', 'three'],
    );
    assert.equal((await writer.control.health()).detail.reapplied, 2);
  });
