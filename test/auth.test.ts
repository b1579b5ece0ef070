// Who may change a bot's state. With --auth-tokens, every message type needs its channel's token
// (or the fleet token): a wrong or missing one changes nothing and is counted, an unauthenticated
// unregister cannot take a bot offline, a connection is closed after repeated failures, tokens are
// never logged, and SIGHUP reloads the file without dropping connections. Independently of tokens,
// a register whose pid is not a live process is refused and counted.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { requestControl } from '../src/http/control-client.js';
import { closedWithin, connect, counters, json, oneShot, type RawConnection } from './fixtures/socket-tools.js';
import {
  botStatus,
  flush,
  killStarted,
  query,
  sleep,
  startMonitor,
  stopMonitor,
  TestDir,
  waitFor,
  type MonitorProcess,
} from './helpers/monitor-process.js';

const pid = process.pid; // a live pid: this test process stands in for the bots
const TOKEN_A = 'tokA-7f3c9e1d-SECRET';
const TOKEN_B = 'tokB-2b8d4a6f-SECRET';
const FLEET = 'fleet-9e4f1c2a-SECRET';
const TOKEN_NEW = 'tokN-5d1e8b3c-SECRET';
const TOKEN_A2 = 'tokA2-c4e6a8f0-SECRET'; // auth_a's next token: both valid during a rotation
const WRONG = 'wrong-0a1b2c3d-SECRET';
/** Every secret-looking string this file sends: none may ever show up in the monitor's output. */
const SECRETS = [TOKEN_A, TOKEN_B, FLEET, TOKEN_NEW, TOKEN_A2, WRONG];

const tokensFile = (lines: string[]) => `# kissbot-monitor tokens (test)\n${lines.join('\n')}\n`;

type MessageType = 'register' | 'heartbeat' | 'unregister' | 'llm_usage';
function message(
  type: MessageType,
  channel: string,
  token: string | undefined,
  extra: Record<string, unknown> = {},
): string {
  const base: Record<string, unknown> =
    type === 'llm_usage'
      ? { type, channel, model: 'gpt-4o-mini', feature: 'auth', tokens_in: 10, tokens_out: 5 }
      : { type, channel, pid };
  return json({ ...base, ...(token === undefined ? {} : { token }), ...extra });
}

/** Resolves once the monitor has read (and counted) `n` more auth failures than `base`. */
async function authFailuresReach(m: MonitorProcess, base: number, n: number): Promise<void> {
  await waitFor(`${n} auth failures counted`, async () => (await counters(m.control)).ingest.auth_failed - base >= n);
}

describe('token auth (--auth-tokens)', () => {
  const dir = new TestDir();
  const file = join(dir.path, 'tokens');
  let monitor: MonitorProcess;
  const open: RawConnection[] = [];

  before(async () => {
    writeFileSync(file, tokensFile([`auth_a:${TOKEN_A}`, `auth_b:${TOKEN_B}`, `*:${FLEET}`]), { mode: 0o600 });
    // trace: the most talkative level must not leak a token either.
    monitor = await startMonitor(dir, ['--auth-tokens', file, '--log-level', 'trace']);
    await oneShot(monitor.socket, message('register', 'auth_a', TOKEN_A));
    await waitFor('auth_a online', async () => (await botStatus(monitor, 'auth_a'))?.status === 'online');
  });
  after(async () => {
    for (const c of open) c.socket.destroy();
    await killStarted();
    if (monitor) await stopMonitor(monitor);
    dir.remove();
  });

  it('a missing or wrong token is refused for every message type: nothing changes, auth_failed counts it', async () => {
    const before = (await counters(monitor.control)).ingest;
    const a = (await botStatus(monitor, 'auth_a'))!;
    const bad: (string | undefined)[] = [
      undefined,
      WRONG,
      TOKEN_B,
      '',
      TOKEN_A.toLowerCase(),
      `${TOKEN_A} `,
      TOKEN_A.slice(0, -1),
      `${FLEET}x`,
    ];
    const sends: string[] = [];
    for (const token of bad) {
      sends.push(
        message('register', 'auth_newbie', token), // not registered yet: must stay unknown
        message('heartbeat', 'auth_a', token), // must not refresh auth_a
        message('unregister', 'auth_a', token), // must not take auth_a offline
        message('llm_usage', 'auth_a', token, { feature: 'unauthenticated' }), // must not land
        message('register', 'nobody_has_a_token', token),
      );
    }
    // One connection per message: this test is about refusal, not about closing after 5 failures.
    for (const line of sends) await oneShot(monitor.socket, line);
    await authFailuresReach(monitor, before.auth_failed, sends.length);

    // A good message afterwards proves everything before it was read and handled.
    await oneShot(monitor.socket, message('llm_usage', 'auth_a', TOKEN_A, { feature: 'sentinel' }));
    await flush(monitor);
    const after = (await counters(monitor.control)).ingest;
    assert.equal(after.auth_failed - before.auth_failed, sends.length);
    assert.deepEqual(
      Object.fromEntries(Object.entries(after.accepted).map(([k, v]) => [k, v - before.accepted[k as MessageType]])),
      { register: 0, heartbeat: 0, unregister: 0, llm_usage: 1 },
      'only the sentinel was accepted',
    );
    assert.equal(await botStatus(monitor, 'auth_newbie'), undefined);
    assert.equal(await botStatus(monitor, 'nobody_has_a_token'), undefined);
    const now = (await botStatus(monitor, 'auth_a'))!;
    assert.equal(now.status, 'online', 'an unauthenticated unregister did not take auth_a offline');
    assert.equal(now.last_heartbeat, a.last_heartbeat, 'unauthenticated heartbeats did not refresh auth_a');
    assert.deepEqual(query(monitor.db, "SELECT feature FROM llm_usage WHERE channel = 'auth_a'"), [
      { feature: 'sentinel' },
    ]);
    const metrics = await requestControl<string>(monitor.control, 'GET', '/metrics');
    assert.match(metrics, new RegExp(`kissmon_auth_failed_total ${after.auth_failed}`));
  });

  it("the right token is accepted for every message type: the channel's own, and the fleet token (*:)", async () => {
    // Per-channel token, one persistent connection, every type.
    const b = await connect(monitor.socket);
    open.push(b);
    await b.write(message('register', 'auth_b', TOKEN_B));
    await waitFor('auth_b online', async () => (await botStatus(monitor, 'auth_b'))?.status === 'online');
    const first = (await botStatus(monitor, 'auth_b'))!.last_heartbeat!;
    await sleep(5); // a later millisecond for the heartbeat's timestamp
    await b.write(message('heartbeat', 'auth_b', TOKEN_B));
    await waitFor(
      'auth_b heartbeat applied',
      async () => (await botStatus(monitor, 'auth_b'))!.last_heartbeat! > first,
    );
    await b.write(message('llm_usage', 'auth_b', TOKEN_B, { feature: 'own_token' }));
    await b.write(message('unregister', 'auth_b', TOKEN_B));
    await waitFor('auth_b offline', async () => (await botStatus(monitor, 'auth_b'))?.status === 'offline');

    // The fleet token works for a channel that has no line of its own, and for one that has.
    await oneShot(monitor.socket, message('register', 'fleet_bot', FLEET));
    await oneShot(monitor.socket, message('llm_usage', 'fleet_bot', FLEET, { feature: 'fleet_token' }));
    await oneShot(monitor.socket, message('llm_usage', 'auth_a', FLEET, { feature: 'fleet_on_own_channel' }));
    await waitFor('fleet_bot online', async () => (await botStatus(monitor, 'fleet_bot'))?.status === 'online');
    await flush(monitor);
    const rows = query<{ channel: string; feature: string }>(
      monitor.db,
      "SELECT channel, feature FROM llm_usage WHERE feature IN ('own_token', 'fleet_token', 'fleet_on_own_channel') ORDER BY rowid",
    );
    assert.deepEqual(rows, [
      { channel: 'auth_b', feature: 'own_token' },
      { channel: 'fleet_bot', feature: 'fleet_token' },
      { channel: 'auth_a', feature: 'fleet_on_own_channel' },
    ]);
    assert.equal(b.isClosed(), false);
  });

  it('an unauthenticated unregister with the right pid cannot take a bot offline; the authenticated one can', async () => {
    await oneShot(monitor.socket, message('register', 'auth_b', TOKEN_B));
    await waitFor('auth_b online', async () => (await botStatus(monitor, 'auth_b'))?.status === 'online');
    // Read before anything is sent: the heartbeat below must move it (a later millisecond is
    // certain: the refusals are counted first, which takes far longer than 1 ms).
    const registered = (await botStatus(monitor, 'auth_b'))!.last_heartbeat!;
    const before = (await counters(monitor.control)).ingest.auth_failed;
    for (const token of [undefined, WRONG, TOKEN_A])
      await oneShot(monitor.socket, message('unregister', 'auth_b', token));
    await authFailuresReach(monitor, before, 3);
    await oneShot(monitor.socket, message('heartbeat', 'auth_b', TOKEN_B)); // processed after the three
    await waitFor(
      'heartbeat after the refused unregisters applied',
      async () => (await botStatus(monitor, 'auth_b'))!.last_heartbeat! > registered,
    );
    assert.equal(
      (await botStatus(monitor, 'auth_b'))?.status,
      'online',
      'the refused unregisters did not take auth_b offline',
    );
    await oneShot(monitor.socket, message('unregister', 'auth_b', TOKEN_B));
    await waitFor(
      'offline with the right token',
      async () => (await botStatus(monitor, 'auth_b'))?.status === 'offline',
    );
  });

  it('closes a connection after 5 failures and ignores whatever follows on it; fewer failures keep it open', async () => {
    const before = (await counters(monitor.control)).ingest;
    // Four failures, then the right token: a client whose token was just rotated recovers.
    const tolerant = await connect(monitor.socket);
    open.push(tolerant);
    await tolerant.write(Array.from({ length: 4 }, () => message('llm_usage', 'auth_a', WRONG)).join(''));
    await tolerant.write(message('llm_usage', 'auth_a', TOKEN_A, { feature: 'after_four_failures' }));
    // Five failures and a good line in the same write: closed at the fifth, the good line ignored.
    const hostile = await connect(monitor.socket);
    open.push(hostile);
    await hostile.write(
      Array.from({ length: 5 }, () => message('heartbeat', 'auth_a', WRONG)).join('') +
        message('llm_usage', 'auth_a', TOKEN_A, { feature: 'after_close' }),
    );
    assert.ok(await closedWithin(hostile, 20_000), 'closed after repeated failures');
    await flush(monitor);
    const after = (await counters(monitor.control)).ingest;
    assert.equal(after.auth_closed - before.auth_closed, 1);
    assert.equal(after.auth_failed - before.auth_failed, 9);
    assert.equal(tolerant.isClosed(), false, 'four failures do not close a connection');
    const features = query<{ feature: string }>(
      monitor.db,
      "SELECT feature FROM llm_usage WHERE feature IN ('after_four_failures', 'after_close')",
    ).map((r) => r.feature);
    assert.deepEqual(features, ['after_four_failures']);
  });

  it('SIGHUP reloads the file: new tokens accepted (two per channel while rotating), removed ones refused, connections stay open; a broken file keeps the old tokens', async () => {
    // A bot on a persistent connection across the reload.
    const persistent = await connect(monitor.socket);
    open.push(persistent);
    await persistent.write(message('register', 'auth_a', TOKEN_A));
    await persistent.write(message('register', 'auth_new', TOKEN_NEW)); // not in the file yet
    await persistent.write(message('llm_usage', 'auth_a', TOKEN_A, { feature: 'before_reload' }));
    await flush(monitor);
    assert.equal(await botStatus(monitor, 'auth_new'), undefined, 'unknown before the reload');

    const reloads = () => (monitor.output().match(/auth tokens reloaded/g) ?? []).length;
    const reloadsBefore = reloads();
    writeFileSync(file, tokensFile([`auth_a:${TOKEN_A}`, `auth_a:${TOKEN_A2}`, `auth_new:${TOKEN_NEW}`, `*:${FLEET}`])); // auth_b revoked
    process.kill(monitor.pid, 'SIGHUP');
    await waitFor('reload logged', () => reloads() > reloadsBefore);

    await persistent.write(message('register', 'auth_new', TOKEN_NEW));
    await waitFor(
      'auth_new accepted after the reload',
      async () => (await botStatus(monitor, 'auth_new'))?.status === 'online',
    );
    const failed = (await counters(monitor.control)).ingest.auth_failed;
    await oneShot(monitor.socket, message('register', 'auth_b', TOKEN_B));
    await authFailuresReach(monitor, failed, 1);
    assert.equal((await botStatus(monitor, 'auth_b'))?.status, 'offline', 'a revoked token is refused');
    await persistent.write(message('llm_usage', 'auth_a', TOKEN_A, { feature: 'after_reload' }));
    await persistent.write(message('llm_usage', 'auth_a', TOKEN_A2, { feature: 'rotated_token' }));

    // A broken file: the reload fails loudly and the tokens in force stay.
    const failures = () => (monitor.output().match(/auth tokens reload failed/g) ?? []).length;
    writeFileSync(file, 'this line has no colon\n');
    process.kill(monitor.pid, 'SIGHUP');
    await waitFor('failed reload logged', () => failures() > 0);
    await persistent.write(message('llm_usage', 'auth_new', TOKEN_NEW, { feature: 'after_failed_reload' }));
    await flush(monitor);

    assert.equal(persistent.isClosed(), false, 'the connection stayed open across both reloads');
    const features = query<{ feature: string }>(
      monitor.db,
      "SELECT feature FROM llm_usage WHERE feature IN ('before_reload', 'after_reload', 'rotated_token', 'after_failed_reload') ORDER BY rowid",
    ).map((r) => r.feature);
    assert.deepEqual(features, ['before_reload', 'after_reload', 'rotated_token', 'after_failed_reload']);
    assert.equal(monitor.child.exitCode, null, 'SIGHUP does not stop the monitor');
  });

  it('never writes a token to its log, not even from broken or invalid lines', async () => {
    const before = (await counters(monitor.control)).ingest;
    for (const line of [
      `{"type":"heartbeat","channel":"auth_a","pid":${pid},"token":${TOKEN_A}}\n`, // V8 quotes ~10 chars after the error: the token's start
      `{"type":"heartbeat","channel":"auth_a","pid":${pid},"token":'${TOKEN_B}'}\n`,
      `{"token":"${TOKEN_A}"\n`,
      `{"type":"heartbeat","channel":"auth_a","pid":"${TOKEN_A}","token":"${TOKEN_A}"}\n`, // invalid field
      `{"type":"ping","channel":"auth_a","token":"${TOKEN_A}"}\n`, // unknown type
      `{"type":"register","channel":"auth_a","pid":${pid},"token":"${TOKEN_A}${'x'.repeat(300)}"}\n`, // token too long
      message('register', 'auth_a', WRONG),
    ])
      await oneShot(monitor.socket, line);
    await waitFor('lines counted', async () => (await counters(monitor.control)).ingest.lines - before.lines >= 7);
    const output = monitor.output();
    assert.match(output, /bad line skipped|message refused/, 'the refusals were logged');
    // Not even a piece: every 8-character window of every secret is absent.
    for (const secret of SECRETS) {
      for (let i = 0; i + 8 <= secret.length; i++) {
        const piece = secret.slice(i, i + 8);
        assert.equal(output.includes(piece), false, `the log contains "${piece}" of a token`);
      }
    }
  });
});

describe('pid honesty: a register whose pid is not a live process is stored dead, not taken for alive', () => {
  const dir = new TestDir();
  let monitor: MonitorProcess;
  before(async () => {
    monitor = await startMonitor(dir, ['--sample-interval', '600']); // only the registry judges these pids, never a sample round
  });
  after(async () => {
    await killStarted();
    if (monitor) await stopMonitor(monitor);
    dir.remove();
  });

  it('a process that just exited, and a pid beyond pid_max: dead (exited_before_register), counted; a heartbeat from a dead pid is ignored', async () => {
    const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
    const exitedPid = child.pid!;
    await new Promise((r) => child.once('exit', r));
    const before = (await counters(monitor.control)).registry;
    await oneShot(
      monitor.socket,
      json({ type: 'register', channel: 'pid_exited', pid: exitedPid, features: { short: true } }),
    );
    await oneShot(monitor.socket, json({ type: 'register', channel: 'pid_never', pid: 2_147_483_647 }));
    await oneShot(monitor.socket, json({ type: 'heartbeat', channel: 'pid_never_hb', pid: 2_147_483_647 }));
    await oneShot(monitor.socket, json({ type: 'register', channel: 'pid_alive', pid })); // after them: processed after them
    await waitFor('live pid registered', () => botStatus(monitor, 'pid_alive'));
    const after = (await counters(monitor.control)).registry;
    assert.equal(after.exited_before_register - before.exited_before_register, 2);
    assert.equal(after.heartbeat_unknown_dead_pid - before.heartbeat_unknown_dead_pid, 1);
    const exited = await botStatus(monitor, 'pid_exited');
    assert.deepEqual([exited?.status, exited?.pid, exited?.features], ['dead', exitedPid, { short: true }]);
    assert.equal((await botStatus(monitor, 'pid_never'))?.status, 'dead');
    assert.equal(
      await botStatus(monitor, 'pid_never_hb'),
      undefined,
      'a heartbeat alone from a dead pid registers nothing',
    );
    assert.equal((await botStatus(monitor, 'pid_alive'))?.status, 'online');
    await flush(monitor);
    const events = query<{ channel: string; from_status: string | null; to_status: string; reason: string }>(
      monitor.db,
      "SELECT channel, from_status, to_status, reason FROM bot_events WHERE channel IN ('pid_exited', 'pid_never') ORDER BY id",
    );
    assert.deepEqual(events, [
      { channel: 'pid_exited', from_status: null, to_status: 'dead', reason: 'exited_before_register' },
      { channel: 'pid_never', from_status: null, to_status: 'dead', reason: 'exited_before_register' },
    ]);
    const [row] = query<{ status: string; features_json: string }>(
      monitor.db,
      "SELECT status, features_json FROM bot_status WHERE channel = 'pid_exited'",
    );
    assert.deepEqual(row, { status: 'dead', features_json: '{"short":true}' });
  });

  it('a live bot whose own register arrives after its process ended: dead (process_exited), not a new life', async () => {
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    const exited = new Promise((r) => child.once('exit', r));
    await oneShot(monitor.socket, json({ type: 'register', channel: 'pid_relaunch', pid: child.pid }));
    await waitFor('online', async () => (await botStatus(monitor, 'pid_relaunch'))?.status === 'online');
    child.kill('SIGKILL');
    await exited;
    await oneShot(monitor.socket, json({ type: 'register', channel: 'pid_relaunch', pid: child.pid }));
    await waitFor('dead', async () => (await botStatus(monitor, 'pid_relaunch'))?.status === 'dead');
    await flush(monitor);
    assert.deepEqual(
      query(
        monitor.db,
        "SELECT from_status, to_status, reason FROM bot_events WHERE channel = 'pid_relaunch' ORDER BY id",
      ),
      [
        { from_status: null, to_status: 'online', reason: 'registered' },
        { from_status: 'online', to_status: 'dead', reason: 'process_exited' },
      ],
    );
  });

  it('a script that exited before its lines were read, and said goodbye: dead, then offline by its own unregister', async () => {
    const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
    await new Promise((r) => child.once('exit', r));
    const script = child.pid!;
    await oneShot(
      monitor.socket,
      json({ type: 'register', channel: 'pid_script', pid: script }) +
        json({ type: 'unregister', channel: 'pid_script', pid: script + 1 }) +
        json({ type: 'unregister', channel: 'pid_script', pid: script }),
    );
    await waitFor('offline', async () => (await botStatus(monitor, 'pid_script'))?.status === 'offline');
    await flush(monitor);
    const events = query(
      monitor.db,
      "SELECT from_status, to_status, reason FROM bot_events WHERE channel = 'pid_script' ORDER BY id",
    );
    assert.deepEqual(events, [
      { from_status: null, to_status: 'dead', reason: 'exited_before_register' },
      { from_status: 'dead', to_status: 'offline', reason: 'unregistered' }, // the other pid's unregister changed nothing
    ]);
  });
});
