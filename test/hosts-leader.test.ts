// Leader election on a real PostgreSQL database (src/hosts/leader.ts): of two monitors' leader
// connections exactly one holds the advisory lock; the other takes over when the leader closes,
// and when the leader's session is killed (pg_terminate_backend) — the killed side knows it lost.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { LEADER_LOCK_KEY, LeaderConnection } from '../src/hosts/leader.js';
import { sql } from 'kysely';
import pg from 'pg';
import { createPgDatabase, postgresMissing } from './helpers/backends.js';
import { requireResource } from './helpers/resources.js';
import { waitFor } from './helpers/wait.js';

describe('leader election by advisory lock', () => {
  const connections: LeaderConnection[] = [];
  after(async () => {
    for (const c of connections) await c.close();
  });

  /** One query on a short-lived connection of the test's own (not a leader connection). */
  const query = async <T extends pg.QueryResultRow>(url: string, text: string): Promise<T[]> => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      return (await client.query<T>(text)).rows;
    } finally {
      await client.end();
    }
  };

  it('one leader at a time; a closed or killed leader hands over', async (t) => {
    if (!requireResource(t, 'PostgreSQL', await postgresMissing())) return;
    t.after(async () => {
      for (const c of connections) await c.close(); // before the database is dropped
    });
    const database = await createPgDatabase(t);
    const a = new LeaderConnection({ url: database.url, host: 'a' });
    const b = new LeaderConnection({ url: database.url, host: 'b' });
    connections.push(a, b);
    assert.ok(await a.round());
    assert.ok(await b.round());
    assert.deepEqual([a.leader, b.leader], [true, false]);
    // The leader's session ends within seconds of its machine going silent, not after the OS's 2 h
    // keepalive: the server took the settings (this URL is TCP, where they apply).
    assert.notEqual(new URL(database.url).hostname, '', 'a TCP URL');
    const session = await a.round();
    assert.ok(session);
    const shown: string[] = [];
    for (const name of ['tcp_keepalives_idle', 'tcp_keepalives_interval', 'tcp_keepalives_count', 'tcp_user_timeout'])
      shown.push(Object.values((await sql.raw(`SHOW ${name}`).execute(session)).rows[0] as object)[0] as string);
    assert.deepEqual(shown, ['5', '2', '3', '10000']);
    // Asking again changes nothing: the lock is held by a's session, not re-taken.
    await a.round();
    await b.round();
    assert.deepEqual([a.leader, b.leader], [true, false]);
    const holders = await query<{ application_name: string }>(
      database.url,
      `SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
       WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND l.objid = ${LEADER_LOCK_KEY}
         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`, // advisory locks are per database
    );
    assert.deepEqual(
      holders.map((h) => h.application_name),
      ['kissmon:a'],
    );

    await a.close();
    await b.round();
    assert.equal(b.leader, true, 'b leads once a has closed');

    // c joins; then b's session is killed under it: b loses the lead, c takes it.
    const c = new LeaderConnection({ url: database.url, host: 'c' });
    connections.push(c);
    await c.round();
    assert.equal(c.leader, false);
    await query(
      database.url,
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'kissmon:b' AND datname = current_database()`,
    );
    // b notices from the connection's own events, before it asks anything.
    await waitFor('b notices its session is gone', () => !b.leader && !b.connected);
    await waitFor('c takes over', async () => {
      await c.round();
      return c.leader;
    });
    // b reconnects as a follower: it never holds the lock again without winning it.
    await waitFor('b reconnected', async () => (await b.round()) !== null && b.connected);
    assert.deepEqual([b.leader, c.leader], [false, true]);
  });
});
