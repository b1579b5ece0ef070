// Three monitors on one machine as three hosts (own sockets, own --host-name, one PostgreSQL
// database), each with real bot processes and real llm_usage lines:
//   - every bot shows in `kissmon status --all-hosts`, with its host; `kissmon hosts` lists a, b, c up
//   - `kissmon usage --by host` is exact per host (and `--host` filters)
//   - SIGKILL one monitor → its bots `unknown` (host_down) and exactly one MonitorHostDown{host}
//     reaches the webhook within --host-stale-after + 10 s; it resolves when that monitor is back
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { alertConfig, TestReceiver } from './helpers/alerts.js';
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
  type MonitorProcess,
  type TestDir,
} from './helpers/monitor-process.js';
import { createPgDatabase, postgresMissing } from './helpers/backends.js';
import { requireResource } from './helpers/resources.js';
import { requestControl } from '../src/http/control-client.js';
import type { HostView } from '../src/hosts/hosts.js';

const HOSTS = ['a', 'b', 'c'] as const;
type Host = (typeof HOSTS)[number];
const STALE_AFTER_S = 5;
/** Calls per host, so a mix-up between hosts shows in the totals. */
const CALLS: Record<Host, number> = { a: 3, b: 5, c: 7 };

interface FleetBot {
  host: string;
  channel: string;
  status: string;
  reason?: string;
}

interface Notification {
  status: string;
  alerts: { status: string; labels: Record<string, string> }[];
}

describe('three monitors, one PostgreSQL store', () => {
  const dirs = new TestDirs();
  const receiver = new TestReceiver();
  let database: { url: string } | null = null;
  const monitors = new Map<Host, MonitorProcess>();
  const hostDirs = new Map<Host, TestDir>();

  before(async () => {
    await receiver.listen();
  });

  after(async () => {
    await killStarted();
    await receiver.close();
    dirs.removeAll();
  });

  const start = (host: Host) => {
    const dir = hostDirs.get(host)!;
    const config = alertConfig(
      dir,
      { groupWaitMs: 300, groupIntervalMs: 800, webhooks: [receiver.url('/am')] },
      // The spool (and the local alert store beside it) in the test dir, not the working directory.
      { spool: { path: join(dir.path, 'm.spool') }, healthIntervalMs: 1_000 },
    );
    return startMonitor(
      dir,
      [
        '--socket',
        dir.socket,
        '--db',
        database!.url,
        '--host-name',
        host,
        '--host-stale-after',
        String(STALE_AFTER_S),
        '--config',
        config,
      ],
      { pathFlags: false },
    );
  };

  const kissmon = async (args: string[]) => {
    // No --host-stale-after: the views judge each host by the window its monitor stored.
    const r = await runKissmon([...args, '--db', database!.url]);
    assert.equal(r.code, 0, `kissmon ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const fleet = async (extra: string[] = []) =>
    JSON.parse(await kissmon(['status', '--all-hosts', '--json', ...extra])) as FleetBot[];
  const hostDown = (status: 'firing' | 'resolved', host: string) =>
    receiver.received
      .filter((r) => r.path === '/am')
      .flatMap((r) => (r.body as Notification).alerts)
      .filter((a) => a.labels.alertname === 'MonitorHostDown' && a.labels.host === host && a.status === status);

  it('shows every host, counts usage per host, and raises one MonitorHostDown for a killed monitor', async (t) => {
    if (!requireResource(t, 'PostgreSQL', await postgresMissing())) return;
    t.after(() => killStarted()); // before the database is dropped (hooks run in order)
    database = await createPgDatabase(t);
    // One after the other: the first one migrates the new database, the others find it migrated.
    for (const host of HOSTS) {
      hostDirs.set(host, dirs.create());
      monitors.set(host, await start(host));
    }
    // Two bots per host; `shared` runs on a and b: channels are unique per host, not across hosts.
    const channels: Record<Host, string[]> = { a: ['a_one', 'shared'], b: ['b_one', 'shared'], c: ['c_one', 'c_two'] };
    for (const host of HOSTS) for (const channel of channels[host]) startBot(monitors.get(host)!.socket, channel, 300);
    for (const host of HOSTS) {
      const lines = Array.from({ length: CALLS[host] }, (_, i) =>
        line({
          type: 'llm_usage',
          channel: channels[host][0],
          model: 'gpt-4o-mini',
          feature: 'chat',
          tokens_in: 100 + i,
          tokens_out: 10,
          latency_ms: 50,
        }),
      );
      await sendLines(monitors.get(host)!.socket, lines);
    }

    const expected = HOSTS.flatMap((h) => channels[h].map((c) => `${h}/${c}`)).sort();
    await waitFor(
      'all six bots online in status --all-hosts',
      async () => {
        for (const host of HOSTS) await flush(monitors.get(host)!);
        const bots = await fleet();
        return (
          JSON.stringify(bots.map((b) => `${b.host}/${b.channel}`).sort()) === JSON.stringify(expected) &&
          bots.every((b) => b.status === 'online')
        );
      },
      60_000,
    );
    assert.deepEqual(
      (await fleet(['--host', 'b'])).map((b) => `${b.host}/${b.channel}`),
      ['b/b_one', 'b/shared'],
    );

    const hosts = JSON.parse(await kissmon(['hosts', '--json'])) as {
      host: string;
      state: string;
      pid: number;
      bots: Record<string, number>;
    }[];
    assert.deepEqual(
      hosts.map((h) => [h.host, h.state, h.pid]),
      HOSTS.map((h) => [h, 'up', monitors.get(h)!.pid]),
    );

    const usage = JSON.parse(await kissmon(['usage', '--by', 'host', '--since', '1h', '--json'])) as {
      rows: { host: string; calls: number; tokens_in: number; tokens_out: number }[];
      totals: { calls: number };
    };
    const tokensIn = (n: number) => Array.from({ length: n }, (_, i) => 100 + i).reduce((a, b) => a + b, 0);
    assert.deepEqual(
      usage.rows.map((r) => [r.host, r.calls, r.tokens_in, r.tokens_out]).sort(),
      HOSTS.map((h) => [h, CALLS[h], tokensIn(CALLS[h]), 10 * CALLS[h]]),
    );
    assert.equal(usage.totals.calls, CALLS.a + CALLS.b + CALLS.c);
    const onlyC = JSON.parse(await kissmon(['usage', '--host', 'c', '--by', 'channel', '--since', '1h', '--json'])) as {
      rows: { channel: string; calls: number }[];
    };
    assert.deepEqual(
      onlyC.rows.map((r) => [r.channel, r.calls]),
      [['c_one', CALLS.c]],
    );

    // c's monitor vanishes (its bots keep running, now unwatched).
    const killedAt = Date.now();
    monitors.get('c')!.child.kill('SIGKILL');
    await monitors.get('c')!.exited;
    // The CLI views (default 60 s of their own) see c down by c's own 5 s window.
    await waitFor(
      'kissmon hosts and status --all-hosts say c is down',
      async () => {
        const c = (JSON.parse(await kissmon(['hosts', '--json'])) as HostView[]).find((h) => h.host === 'c');
        const cBots = (await fleet(['--host', 'c'])).map((b) => b.status);
        return c?.state === 'down' && cBots.length === 2 && cBots.every((s) => s === 'unknown');
      },
      60_000,
    );
    const viewsMs = Date.now() - killedAt;
    t.diagnostic(`kissmon hosts / status --all-hosts said down ${viewsMs} ms after SIGKILL`);
    assert.ok(
      viewsMs <= (STALE_AFTER_S + 10) * 1000,
      `the views said down ${viewsMs} ms after the kill (bound ${(STALE_AFTER_S + 10) * 1000} ms)`,
    );
    await waitFor('MonitorHostDown{host="c"} delivered', () => hostDown('firing', 'c').length > 0, 60_000);
    const tookMs = Date.now() - killedAt;
    t.diagnostic(`MonitorHostDown delivered ${tookMs} ms after SIGKILL (stale after ${STALE_AFTER_S} s)`);
    assert.ok(
      tookMs <= (STALE_AFTER_S + 10) * 1000,
      `MonitorHostDown came ${tookMs} ms after the kill (bound ${(STALE_AFTER_S + 10) * 1000} ms)`,
    );
    const bots = await fleet();
    assert.deepEqual(
      bots.filter((b) => b.host === 'c').map((b) => [b.channel, b.status, b.reason]),
      [
        ['c_one', 'unknown', 'host_down'],
        ['c_two', 'unknown', 'host_down'],
      ],
    );
    assert.ok(
      bots.filter((b) => b.host !== 'c').every((b) => b.status === 'online'),
      'the other hosts are not affected',
    );
    const [alert] = hostDown('firing', 'c');
    assert.equal(alert.labels.severity, 'critical');
    // Only the leader raises it: a few heartbeats later there is still exactly one.
    await new Promise((r) => setTimeout(r, 3_000));
    assert.equal(hostDown('firing', 'c').length, 1, 'exactly one MonitorHostDown notification');
    assert.equal(
      (JSON.parse(await kissmon(['hosts', '--json'])) as { host: string; state: string }[]).find((h) => h.host === 'c')
        ?.state,
      'down',
    );
    // The same views on a surviving monitor's control socket (what the dashboard reads).
    const viaA = await requestControl<{ host: string; hosts: { host: string; state: string }[] }>(
      monitors.get('a')!.control,
      'GET',
      '/hosts',
    );
    assert.deepEqual([viaA.host, viaA.hosts.map((h) => `${h.host}:${h.state}`)], ['a', ['a:up', 'b:up', 'c:down']]);
    assert.deepEqual(
      (await requestControl<FleetBot[]>(monitors.get('a')!.control, 'GET', '/fleet?host=c')).map((b) => b.status),
      ['unknown', 'unknown'],
    );

    // c is back: its row is fresh again, the alert resolves, its bots are its own again.
    monitors.set('c', await start('c'));
    await waitFor('MonitorHostDown{host="c"} resolved', () => hostDown('resolved', 'c').length > 0, 60_000);
    await waitFor(
      "c's bots online again",
      async () => (await fleet(['--host', 'c'])).every((b) => b.status === 'online' && b.reason === undefined),
      60_000,
    );
    assert.equal(hostDown('firing', 'c').length, 1);
    assert.deepEqual(
      receiver.received
        .filter((r) => r.path === '/am')
        .flatMap((r) => (r.body as Notification).alerts)
        .filter((a) => a.labels.alertname === 'MonitorHostDown' && a.labels.host !== 'c'),
      [],
      'no other host was reported down',
    );
    // Every alert says which host it is about (this monitor's, or the down host for MonitorHostDown).
    for (const r of receiver.received.filter((x) => x.path === '/am'))
      for (const a of (r.body as Notification).alerts)
        assert.ok(HOSTS.includes(a.labels.host as Host), JSON.stringify(a.labels));
  });
});

describe('one live monitor per --host-name on a PostgreSQL store', () => {
  const dirs = new TestDirs();
  after(async () => {
    await killStarted();
    dirs.removeAll();
  });

  it('refuses a second monitor as a live host (naming its pid), and lets one start once that one is gone', async (t) => {
    if (!requireResource(t, 'PostgreSQL', await postgresMissing())) return;
    t.after(() => killStarted()); // before the database is dropped
    const database = await createPgDatabase(t);
    const start = (host: string) => {
      const dir = dirs.create();
      return startMonitor(dir, ['--socket', dir.socket, '--db', database.url, '--host-name', host], {
        pathFlags: false,
      }).catch((err: Error) => err);
    };
    const first = await start('dup');
    if (first instanceof Error) throw first;

    const second = await start('dup');
    assert.ok(second instanceof Error, 'the second monitor as host dup started');
    assert.match(second.message, /exited with 2 during start-up/);
    assert.match(second.message, new RegExp(`another live monitor writes as host "dup" .*pid ${first.pid}`));
    // Another name is no conflict.
    const other = await start('other');
    if (other instanceof Error) throw other;

    // The lock goes with the first one's session: a new monitor as dup starts.
    first.child.kill('SIGKILL');
    await first.exited;
    const again = await start('dup');
    if (again instanceof Error) throw again;
  });
});
