// PostgreSQL going away while bots send: a real monitor on a PostgreSQL store reached through a
// TCP proxy this test controls (the machine's server is never stopped), llm_usage rows with ids
// through the real socket. First its connections are killed over and over (pg_terminate_backend),
// then the store is unreachable for ~10 s (the proxy drops every connection and refuses new
// ones). The monitor keeps serving, health says the store is down and why, and once it is back
// every row is there exactly once (count and ids).
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { adminQuery, openBackend, PG_ADMIN_URL } from './helpers/backends.js';
import {
  actorHealth,
  botStatus,
  flush,
  killStarted,
  line,
  sendLines,
  sleep,
  startMonitor,
  stopMonitor,
  TestDirs,
  waitFor,
} from './helpers/monitor-process.js';

const dirs = new TestDirs();
after(async () => {
  await killStarted();
  dirs.removeAll();
});

/** A TCP proxy to the PostgreSQL server: `cut()` drops every connection and refuses new ones until `restore()`. */
class StoreProxy {
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  #open = true;
  port = 0;

  constructor(target: { host: string; port: number }) {
    this.#server = net.createServer((client) => {
      if (!this.#open) {
        client.destroy();
        return;
      }
      const upstream = net.connect(target.port, target.host);
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on('close', () => this.#sockets.delete(s));
        s.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.port = (this.#server.address() as net.AddressInfo).port;
  }

  cut(): void {
    this.#open = false;
    for (const s of this.#sockets) s.destroy();
  }

  restore(): void {
    this.#open = true;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise((resolve) => this.#server.close(resolve));
  }
}

/** An llm_usage row without an id: nothing dedups it, so a replay that doubled rows would show in the count. */
const anonymous = (n: number) =>
  line({
    type: 'llm_usage',
    channel: `bot_${n % 20}`,
    model: 'gpt-4o-mini',
    feature: 'outage-noid',
    tokens_in: n,
    tokens_out: 1,
  });

const call = (n: number) =>
  line({
    type: 'llm_usage',
    id: `call-${n}`,
    channel: `bot_${n % 20}`,
    model: 'gpt-4o-mini',
    feature: 'outage',
    tokens_in: n,
    tokens_out: 1,
  });

test(
  'a PostgreSQL outage loses no row and doubles none; the monitor keeps serving and says the store is down',
  {
    timeout: 180_000,
  },
  async (t) => {
    const store = await openBackend(t, 'postgres');
    if (!store) return;
    const dir = dirs.create();
    const target = new URL(PG_ADMIN_URL);
    const proxy = new StoreProxy({ host: target.hostname, port: Number(target.port || 5432) });
    await proxy.listen();
    t.after(() => proxy.close());
    const viaProxy = new URL(store.dbPath);
    viaProxy.host = `127.0.0.1:${proxy.port}`;
    const dbName = viaProxy.pathname.slice(1);
    const config = join(dir.path, 'config.json');
    writeFileSync(
      config,
      JSON.stringify({
        healthIntervalMs: 200,
        spool: { path: join(dir.path, 'monitor.spool') },
        // Small bounds, so the outage goes through held rows, the spool and its replay.
        writer: { maxHeldRows: 2_000, maxHeldMs: 3_000, retryDelayMs: 100 },
      }),
    );
    const monitor = await startMonitor(
      dir,
      ['--socket', dir.socket, '--db', viaProxy.toString(), '--host-name', 'outage-host', '--config', config],
      { pathFlags: false },
    );

    let sent = 0;
    let sentAnonymous = 0;
    const send = async (n: number) => {
      const lines = Array.from({ length: n }, () => call(sent++));
      // Every tenth row has no id: only the delivery cursor keeps it from landing twice.
      for (let i = 0; i < n / 10; i++) lines.push(anonymous(sentAnonymous++));
      await sendLines(monitor.socket, lines);
    };
    await send(500);
    await flush(monitor);
    assert.equal(await store.count('llm_usage'), 550);

    // 1. Connections killed again and again while bots send (each kill fails an attempt or an idle connection).
    let killed = 0;
    for (let i = 0; i < 10; i++) {
      await send(300);
      const { rows } = await adminQuery(
        'SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
        [dbName],
      );
      killed += rows.filter((r: { ended: boolean }) => r.ended).length;
      await sleep(200);
    }
    // Whether a kill fails one of the writer's attempts depends on timing (a fast writer is idle and
    // its pool replaces the dead connection); that its connections were killed does not.
    assert.ok(killed > 0, "the monitor's connections were killed");

    // 2. The store unreachable for ~10 s: every connection dropped, new ones refused.
    proxy.cut();
    const outageStart = Date.now();
    let sawDown = false;
    let downError = '';
    while (Date.now() - outageStart < 10_000) {
      await send(400);
      const db = await actorHealth(monitor, 'db');
      if (db.detail.store_down === 1) {
        sawDown = true;
        downError = String(db.detail.store_error ?? '');
      }
      await sleep(250);
    }
    // The monitor kept serving bots: a bot that registers during the outage is live.
    await sendLines(monitor.socket, [line({ type: 'register', channel: 'during_outage', pid: process.pid })]);
    await waitFor(
      'bot registered while the store is down',
      async () => (await botStatus(monitor, 'during_outage')) !== undefined,
    );
    assert.ok(sawDown, 'health said the store was down');
    assert.notEqual(downError, '', 'and why');
    const spooled = (await actorHealth(monitor, 'db')).detail.rows_spooled;
    assert.ok(Number(spooled) > 0, `rows went to the spool during the outage (rows_spooled ${spooled})`);

    // 3. Back: everything lands, once.
    proxy.restore();
    await send(500);
    await waitFor(
      'every row stored',
      async () => {
        await flush(monitor).catch(() => {});
        return (await store.count('llm_usage')) >= sent + sentAnonymous;
      },
      90_000,
    );
    await sleep(500);
    const [noid] = await store.rows<{ n: number }>("SELECT count(*) AS n FROM llm_usage WHERE feature = 'outage-noid'");
    assert.equal(noid.n, sentAnonymous, 'every row without an id stored exactly once');
    const [stats] = await store.rows<{ n: number; ids: number; host: string }>(
      "SELECT count(*) AS n, count(DISTINCT id) AS ids, min(host) AS host FROM llm_usage WHERE feature = 'outage'",
    );
    assert.deepEqual(stats, { n: sent, ids: sent, host: 'outage-host' });
    const missing = await store.rows<{ n: number }>(
      `SELECT count(*) AS n FROM generate_series(0, ?::int - 1) g WHERE NOT EXISTS (SELECT 1 FROM llm_usage WHERE id = 'call-' || g)`,
      [sent],
    );
    assert.equal(missing[0].n, 0, 'every id sent is stored');
    await waitFor(
      'health says the store is up again',
      async () => (await actorHealth(monitor, 'db')).detail.store_down === 0,
    );
    const db = await actorHealth(monitor, 'db');
    assert.ok(Number(db.detail.rows_replayed) > 0, 'the spool was replayed into the store');
    // Which one it logs depends on where the cut found the writer: a commit (unreachable) or re-opening its store.
    assert.match(monitor.output(), /database unreachable|database not writable yet/);
    // The alerter kept its state in a local SQLite file beside the spool, not in the store.
    assert.ok(existsSync(join(dir.path, 'monitor.alerts.db')), 'local alert file beside the spool');
    assert.equal(
      (await store.rows("SELECT count(*) AS n FROM pg_tables WHERE tablename LIKE 'alert%'"))[0].n,
      0,
      'no alert tables in PostgreSQL',
    );
    assert.equal(await stopMonitor(monitor), 0);
  },
);

test(
  'a read-only or closed database is the store down: rows are held and land once, none is rejected or dropped',
  { timeout: 180_000 },
  async (t) => {
    const store = await openBackend(t, 'postgres');
    if (!store) return;
    const dir = dirs.create();
    const dbName = new URL(store.dbPath).pathname.slice(1);
    const terminate = () =>
      adminQuery(
        'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
        [dbName],
      );
    // Runs before the database is dropped (hooks run last-registered first), so a failed step
    // leaves it writable and open.
    const restore = async () => {
      await adminQuery(`ALTER DATABASE "${dbName}" RESET default_transaction_read_only`);
      await adminQuery(`ALTER DATABASE "${dbName}" ALLOW_CONNECTIONS true`);
    };
    const config = join(dir.path, 'config.json');
    writeFileSync(
      config,
      JSON.stringify({
        healthIntervalMs: 200,
        spool: { path: join(dir.path, 'monitor.spool') },
        writer: { maxHeldRows: 2_000, maxHeldMs: 3_000, retryDelayMs: 100 },
      }),
    );
    const monitor = await startMonitor(
      dir,
      ['--socket', dir.socket, '--db', store.dbPath, '--host-name', 'ro-host', '--config', config],
      { pathFlags: false },
    );
    let sent = 0;
    let sentAnonymous = 0;
    const send = async (n: number) => {
      const lines = Array.from({ length: n }, () => call(sent++));
      for (let i = 0; i < n / 10; i++) lines.push(anonymous(sentAnonymous++));
      await sendLines(monitor.socket, lines);
    };
    /** Sends for `ms` while the store is made unusable; true once health said store_down. */
    const sendWhileDown = async (ms: number) => {
      let sawDown = false;
      const start = Date.now();
      while (Date.now() - start < ms) {
        await send(100);
        if ((await actorHealth(monitor, 'db')).detail.store_down === 1) sawDown = true;
        await sleep(250);
      }
      return sawDown;
    };
    await send(200);
    await flush(monitor);
    try {
      // 1. Read-only (what a failover to a standby looks like): every write fails with 25006.
      await adminQuery(`ALTER DATABASE "${dbName}" SET default_transaction_read_only = on`);
      await terminate();
      assert.ok(await sendWhileDown(5_000), 'health said store_down while the database was read-only');
      await adminQuery(`ALTER DATABASE "${dbName}" RESET default_transaction_read_only`);
      await terminate(); // sessions opened read-only stay so

      // 2. Not accepting connections (55000).
      await adminQuery(`ALTER DATABASE "${dbName}" ALLOW_CONNECTIONS false`);
      await terminate();
      assert.ok(await sendWhileDown(4_000), 'health said store_down while the database refused connections');
    } finally {
      await restore();
    }

    await send(100);
    await waitFor(
      'every row stored',
      async () => {
        await flush(monitor).catch(() => {});
        return (await store.count('llm_usage')) >= sent + sentAnonymous;
      },
      90_000,
    );
    await sleep(500);
    const [stats] = await store.rows<{ n: number; ids: number }>(
      "SELECT count(*) AS n, count(DISTINCT id) AS ids FROM llm_usage WHERE feature = 'outage'",
    );
    assert.deepEqual(stats, { n: sent, ids: sent });
    const [noid] = await store.rows<{ n: number }>("SELECT count(*) AS n FROM llm_usage WHERE feature = 'outage-noid'");
    assert.equal(noid.n, sentAnonymous, 'every row without an id stored exactly once');
    const output = monitor.output();
    // The start line names the local files with absolute paths (on PostgreSQL they are not beside a database file).
    const started = output.split('\n').find((l) => l.includes('kissbot-monitor started')) ?? '';
    assert.ok(started.includes(join(dir.path, 'monitor.spool')), `spool path in: ${started}`);
    assert.ok(started.includes(join(dir.path, 'monitor.alerts.db')), `alert store path in: ${started}`);
    assert.doesNotMatch(output, /row rejected by the database/);
    assert.match(output, /database unreachable/);
    assert.equal(await stopMonitor(monitor), 0);
  },
);
