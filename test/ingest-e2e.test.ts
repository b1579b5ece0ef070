// Every message type end to end through the real daemon: socket in → registry and database out,
// over persistent and one-shot connections, with bad lines in between.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { requestControl } from '../src/http/control-client.js';
import {
  botStatus,
  flush,
  killStarted,
  line,
  query,
  sendLines,
  sendOneShot,
  sleep,
  startMonitor,
  stopMonitor,
  TestDir,
  waitFor,
  type MonitorProcess,
} from './helpers/monitor-process.js';

describe('ingest end to end', () => {
  const dir = new TestDir();
  let monitor: MonitorProcess;
  const pid = process.pid; // a live pid: this test process stands in for the bot

  before(async () => {
    monitor = await startMonitor(dir, ['--stale-after', '30']);
  });
  after(async () => {
    if (monitor) await stopMonitor(monitor);
    await killStarted();
    dir.remove();
  });

  it('register, heartbeat, llm_usage and unregister on one persistent connection', async () => {
    const conn = net.connect(monitor.socket);
    await new Promise((r) => conn.once('connect', r));
    conn.write(`${line({ type: 'register', channel: 'persist_bot', pid, features: { llm: true, jokes: false } })}\n`);
    const registered = await waitFor(
      'registered',
      async () => (await botStatus(monitor, 'persist_bot'))?.status === 'online' && botStatus(monitor, 'persist_bot'),
    );
    assert.equal(registered.pid, pid);
    assert.deepEqual(registered.features, { llm: true, jokes: false });

    const before = registered.last_heartbeat!;
    await sleep(20); // a later millisecond for the heartbeat's timestamp
    conn.write(`${line({ type: 'heartbeat', channel: 'persist_bot', pid })}\n`);
    await waitFor('heartbeat applied', async () => (await botStatus(monitor, 'persist_bot'))!.last_heartbeat! > before);

    conn.write(
      `${line({ type: 'llm_usage', channel: 'persist_bot', model: 'gpt-4o', feature: 'jokes', tokens_in: 1000, tokens_out: 500, latency_ms: 1850 })}\n`,
    );
    conn.write(`${line({ type: 'unregister', channel: 'persist_bot', pid })}\n`);
    await waitFor('offline', async () => (await botStatus(monitor, 'persist_bot'))?.status === 'offline');
    conn.end();
    await flush(monitor);

    const [usage] = query<{
      channel: string;
      model: string;
      tokens_in: number;
      tokens_out: number;
      latency_ms: number;
      cost_usd: number;
      ts: string;
    }>(monitor.db, "SELECT * FROM llm_usage WHERE channel = 'persist_bot'");
    assert.equal(usage.model, 'gpt-4o');
    assert.equal(usage.tokens_in, 1000);
    assert.equal(usage.latency_ms, 1850);
    assert.ok(Math.abs(usage.cost_usd - (1000 * 2.5 + 500 * 10) / 1e6) < 1e-12, `cost ${usage.cost_usd}`);
    assert.match(usage.ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

    const [row] = query<{
      status: string;
      pid: number;
      features_json: string;
      registered_at: string;
      last_heartbeat: string;
    }>(monitor.db, "SELECT * FROM bot_status WHERE channel = 'persist_bot'");
    assert.equal(row.status, 'offline');
    assert.equal(row.pid, pid);
    assert.deepEqual(JSON.parse(row.features_json), { llm: true, jokes: false });
    assert.ok(Date.parse(row.last_heartbeat) >= Date.parse(row.registered_at));

    const events = query<{ from_status: string | null; to_status: string; reason: string }>(
      monitor.db,
      "SELECT from_status, to_status, reason FROM bot_events WHERE channel = 'persist_bot' ORDER BY id",
    );
    assert.deepEqual(
      events.map((e) => `${e.from_status}->${e.to_status}:${e.reason}`),
      ['null->online:registered', 'online->offline:unregistered'],
    );
  });

  it('one-shot connections (connect, one line, close) as the old Python bots send them', async () => {
    const accepted = async () =>
      (await requestControl<{ ingest: { accepted: Record<string, number> } }>(monitor.control, 'GET', '/health')).ingest
        .accepted.llm_usage;
    const acceptedBefore = await accepted();
    await sendOneShot(monitor.socket, line({ type: 'register', channel: 'oneshot_bot', pid }));
    for (let i = 0; i < 50; i++) {
      await sendOneShot(
        monitor.socket,
        line({
          type: 'llm_usage',
          channel: 'oneshot_bot',
          model: 'gpt-4o-mini',
          feature: 'chat',
          tokens_in: i,
          tokens_out: 1,
        }),
      );
    }
    // The last line of a one-shot client may lack its newline: end of stream ends the line.
    await new Promise<void>((resolve, reject) => {
      const c = net.connect(monitor.socket, () =>
        c.end(line({ type: 'heartbeat', channel: 'oneshot_bot', pid }), resolve),
      );
      c.on('error', reject);
    });
    await waitFor('one-shot bot online', async () => (await botStatus(monitor, 'oneshot_bot'))?.status === 'online');
    // Written is not read: each line sits in its own connection until the monitor accepts and reads
    // it, in no set order across connections. Flush once all 50 are counted as read.
    await waitFor('the 50 one-shot lines read', async () => (await accepted()) - acceptedBefore >= 50);
    await flush(monitor);
    const [{ n, total }] = query<{ n: number; total: number }>(
      monitor.db,
      "SELECT count(*) n, sum(tokens_in) total FROM llm_usage WHERE channel = 'oneshot_bot'",
    );
    assert.equal(n, 50);
    assert.equal(total, (49 * 50) / 2);
  });

  it('skips bad lines, counts them by reason, and processes the next good line on the same connection', async () => {
    const { ingest: beforeStats } = await requestControl<{ ingest: { rejected: Record<string, number> } }>(
      monitor.control,
      'GET',
      '/health',
    );
    const bad = [
      'not json at all',
      '{"type":"register","channel":"bad bot!","pid":1}',
      '{"type":"heartbeat","channel":"x"}',
      '[1,2,3]',
      '{"type":"reboot","channel":"x","pid":1}',
      `{"type":"llm_usage","channel":"x","model":"m","feature":"f","tokens_in":-1,"tokens_out":0}`,
      '{"a":'.repeat(40) + '1' + '}'.repeat(40),
    ];
    const invalidUtf8 = Buffer.concat([
      Buffer.from('{"type":"register","channel":"'),
      Buffer.from([0xc3, 0x28]),
      Buffer.from('","pid":1}\n'),
    ]);
    await new Promise<void>((resolve, reject) => {
      const c = net.connect(monitor.socket, () => {
        c.write(bad.map((l) => `${l}\n`).join(''));
        c.write(invalidUtf8);
        c.end(
          `${line({ type: 'llm_usage', channel: 'after_bad', model: 'gpt-4', feature: 'f', tokens_in: 7, tokens_out: 7 })}\n`,
          resolve,
        );
      });
      c.on('error', reject);
    });
    await flush(monitor);
    assert.equal(query(monitor.db, "SELECT * FROM llm_usage WHERE channel = 'after_bad'").length, 1);
    const { ingest } = await requestControl<{ ingest: { rejected: Record<string, number> } }>(
      monitor.control,
      'GET',
      '/health',
    );
    const delta = (reason: string) => ingest.rejected[reason] - beforeStats.rejected[reason];
    assert.equal(delta('invalid_json'), 1);
    assert.equal(delta('invalid_fields'), 3);
    assert.equal(delta('not_an_object'), 1);
    assert.equal(delta('unknown_type'), 1);
    assert.equal(delta('too_deep'), 1);
    assert.equal(delta('invalid_utf8'), 1);
    assert.match(monitor.output(), /bad line skipped/);
  });

  it('a heartbeat from an unknown channel with a live pid registers it implicitly; a dead pid does not', async () => {
    await sendLines(monitor.socket, [
      line({ type: 'heartbeat', channel: 'implicit_bot', pid }),
      line({ type: 'heartbeat', channel: 'ghost_bot', pid: 2_000_000_000 }),
    ]);
    const bot = await waitFor('implicit register', () => botStatus(monitor, 'implicit_bot'));
    assert.equal(bot.status, 'online');
    await flush(monitor);
    assert.deepEqual(query(monitor.db, "SELECT reason FROM bot_events WHERE channel = 'implicit_bot'"), [
      { reason: 'implicit_register' },
    ]);
    assert.equal(await botStatus(monitor, 'ghost_bot'), undefined);
  });

  it('a heartbeat whose pid differs from the registered one is counted as pid_mismatch, not accepted', async () => {
    await sendLines(monitor.socket, [line({ type: 'register', channel: 'mismatch_bot', pid })]);
    const registered = await waitFor('registered', () => botStatus(monitor, 'mismatch_bot'));
    const ppid = process.ppid; // another live pid
    await sendLines(monitor.socket, [line({ type: 'heartbeat', channel: 'mismatch_bot', pid: ppid })]);
    const health = await waitFor('pid_mismatch counted', async () => {
      const { actors } = await requestControl<{ actors: { actor: string; detail: Record<string, number> }[] }>(
        monitor.control,
        'GET',
        '/health',
      );
      const registry = actors.find((a) => a.actor === 'registry')!;
      return registry.detail.pid_mismatch >= 1 && registry;
    });
    assert.ok(health.detail.pid_mismatch >= 1);
    const after = await botStatus(monitor, 'mismatch_bot');
    assert.equal(after!.pid, pid);
    assert.equal(after!.last_heartbeat, registered.last_heartbeat);
  });

  it('a heartbeat that raced its own unregister does not bring the bot back', async () => {
    await sendLines(monitor.socket, [
      line({ type: 'register', channel: 'goodbye_bot', pid }),
      line({ type: 'unregister', channel: 'goodbye_bot', pid }),
      line({ type: 'heartbeat', channel: 'goodbye_bot', pid }),
    ]);
    await waitFor('offline', async () => (await botStatus(monitor, 'goodbye_bot'))?.status === 'offline');
    await flush(monitor);
    assert.equal((await botStatus(monitor, 'goodbye_bot'))?.status, 'offline');
    await sendLines(monitor.socket, [line({ type: 'register', channel: 'goodbye_bot', pid })]);
    await waitFor(
      'online after a new register',
      async () => (await botStatus(monitor, 'goodbye_bot'))?.status === 'online',
    );
  });
});
