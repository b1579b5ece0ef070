// The schema on PostgreSQL: the same migrations run by monitors starting at once against one new
// database (kysely's advisory lock), daily partitions created ahead, and retention that drops
// whole partitions (and trims the DEFAULT partition and the id table) instead of a long DELETE.
import assert from 'node:assert/strict';
import { test, after } from 'node:test';
import { Link } from '../src/actors/link.js';
import type { WriteItem } from '../src/actors/db-writer-messages.js';
import { openPostgres } from '../src/db/backend.js';
import { ensurePartitions, partitionName } from '../src/db/partitions.js';
import { openBackend } from './helpers/backends.js';
import { waitFor } from './helpers/wait.js';
import { startWriter, stopWriters } from './helpers/writer.js';

after(() => stopWriters());

const DAY_MS = 86_400_000;

const usage = (n: number, at: number): WriteItem => ({
  type: 'llm_usage',
  at,
  id: `u-${n}`,
  channel: 'ch',
  model: 'gpt-4o-mini',
  feature: 'schema',
  tokens_in: n,
  tokens_out: 1,
  latency_ms: 5,
});

test('monitors starting at once migrate one new PostgreSQL database once, each writing its own host', async (t) => {
  const store = await openBackend(t, 'postgres');
  if (!store) return;
  const links = ['a', 'b', 'c'].map((h) => ({ host: `host-${h}`, link: new Link<WriteItem>(`ingest-${h}`) }));
  await Promise.all(
    links.map(({ host, link }) =>
      startWriter(store.dbPath, link, {
        ...store.overrides,
        hostName: host,
        spool: { path: `${store.dir}/${host}.spool` },
      }),
    ),
  );
  const now = Date.now();
  for (const [i, { link }] of links.entries()) for (let n = 0; n < 100; n++) link.send(usage(n, now + i));
  await waitFor('acks', () => links.every(({ link }) => link.pending === 0));
  // The same ids on three hosts: unique per host, not across hosts.
  assert.deepEqual(await store.rows('SELECT host, count(*) AS n FROM llm_usage GROUP BY host ORDER BY host'), [
    { host: 'host-a', n: 100 },
    { host: 'host-b', n: 100 },
    { host: 'host-c', n: 100 },
  ]);
  assert.equal(
    (await store.rows('SELECT name FROM kysely_migration')).length,
    7,
    'migrations 0001 to 0007, each run once',
  );
  const parts = (
    await store.rows<{ name: string }>(
      "SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'llm_usage'",
    )
  ).map((r) => r.name);
  for (const day of [-1, 0, 1, 2]) assert.ok(parts.includes(partitionName('llm_usage', now + day * DAY_MS)), `${day}`);
  assert.ok(parts.includes('llm_usage_default'));
  assert.equal(await store.count('llm_usage_default'), 0, "today's rows are in today's partition");
});

test('retention on PostgreSQL drops whole daily partitions, trims the DEFAULT partition and the ids', async (t) => {
  const store = await openBackend(t, 'postgres');
  if (!store) return;
  // The rows go in through a writer that keeps llm_usage forever, so its own first prune (5 s after
  // start) cannot drop the old days' partitions before their rows arrive on a slow box; the writer
  // with the 7-day limit starts afterwards and is asked to prune at once.
  const link = new Link<WriteItem>('ingest');
  const loader = await startWriter(store.dbPath, link, store.overrides);
  const now = Date.now();
  // Partitions for old days (as `kissmon migrate` of old history makes them), and a day with none (DEFAULT).
  const { db } = openPostgres(store.dbPath);
  t.after(() => db.destroy());
  await ensurePartitions(db, now - 10 * DAY_MS, now - 3 * DAY_MS);
  const ages = [10, 9, 3, 0, 400]; // days
  ages.forEach((age, i) => link.send(usage(i, now - age * DAY_MS)));
  await waitFor('acks', () => link.pending === 0);
  assert.equal(await store.count('llm_usage_default'), 1, 'the day without a partition went to DEFAULT');
  assert.equal(await store.count('llm_usage_ids'), ages.length);
  await loader.stop();
  const writer = await startWriter(store.dbPath, new Link<WriteItem>('ingest'), {
    ...store.overrides,
    retention: { usageDays: 7, metricsDays: 7, eventsDays: 90, healthDays: 7 },
  });
  const result = await writer.control.prune();
  // PostgreSQL counts dropped partitions (days 10, 9, 8 ago) + DEFAULT rows deleted (1); newer than 7 days stays.
  assert.equal(result.llm_usage, 4);
  const left = await store.rows<{ tokens_in: number }>('SELECT tokens_in FROM llm_usage ORDER BY tokens_in');
  assert.deepEqual(
    left.map((r) => r.tokens_in),
    [2, 3],
  );
  assert.equal(await store.count('llm_usage_ids'), 2);
  const parts = await store.rows<{ name: string }>('SELECT relname AS name FROM pg_class WHERE relname = ?', [
    partitionName('llm_usage', now - 10 * DAY_MS),
  ]);
  assert.deepEqual(parts, [], 'the old partition is gone');
  // bot_events keep 90 days: its old partitions stay.
  assert.equal(
    (await store.rows('SELECT 1 FROM pg_class WHERE relname = ?', [partitionName('bot_events', now - 10 * DAY_MS)]))
      .length,
    1,
  );
});
