// Settings come from defaults < config file < env < flags, where only flags actually given
// override. Paths and limits from a config file are used by a real monitor started without flags;
// --print-config shows the resolved result; a bad setting exits 2 naming it and what it must be.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { MonitorConfig } from '../src/config.js';
import { parseBackend } from '../src/db/backend.js';
import { counters } from './fixtures/socket-tools.js';
import {
  botStatus,
  flush,
  killStarted,
  line,
  query,
  runKissmon,
  sendLines,
  startMonitor,
  stopMonitor,
  TestDirs,
  waitFor,
} from './helpers/monitor-process.js';

const pid = process.pid;
/** The tests' own environment without the monitor's variables, so only what a test sets counts. */
const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KISSBOT_MONITOR_')));

function writeConfig(path: string, settings: Record<string, unknown>): string {
  writeFileSync(path, JSON.stringify(settings));
  return path;
}

async function printConfig(args: string[], env: NodeJS.ProcessEnv = {}): Promise<MonitorConfig> {
  const r = await runKissmon(['start', '--print-config', ...args], { ...cleanEnv, ...env });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as MonitorConfig;
}

describe('config precedence: defaults < file < env < flags', () => {
  const dirs = new TestDirs();
  after(async () => {
    await killStarted();
    dirs.removeAll();
  });

  it("a monitor started with only --config uses the file's socket, database and limits", async () => {
    const dir = dirs.create();
    const file = writeConfig(join(dir.path, 'monitor.json'), {
      socketPath: dir.socket,
      dbPath: dir.db,
      limits: { maxLineBytes: 256 },
    });
    const monitor = await startMonitor(dir, ['--config', file], { pathFlags: false, env: cleanEnv });
    try {
      await sendLines(monitor.socket, [line({ type: 'register', channel: 'config_bot', pid })]);
      await waitFor('config_bot registered', () => botStatus(monitor, 'config_bot'));
      await flush(monitor);
      assert.equal(
        query<{ n: number }>(dir.db, "SELECT count(*) n FROM bot_status WHERE channel = 'config_bot'")[0].n,
        1,
        "row in the file's database",
      );
      const before = (await counters(monitor.control)).ingest.line_too_long;
      await sendLines(monitor.socket, [line({ type: 'heartbeat', channel: 'config_bot', pid, pad: 'x'.repeat(400) })]);
      await waitFor(
        "line over the file's maxLineBytes refused",
        async () => (await counters(monitor.control)).ingest.line_too_long === before + 1,
      );
    } finally {
      assert.equal(await stopMonitor(monitor), 0);
    }
  });

  it('--print-config: file over defaults, env over file, a given flag over both', async () => {
    const dir = dirs.create();
    const file = writeConfig(join(dir.path, 'monitor.json'), {
      socketPath: join(dir.path, 'file.sock'),
      dbPath: join(dir.path, 'file.db'),
      staleAfterMs: 30_000,
      logLevel: 'warn',
      limits: { maxBots: 7 },
    });

    const fromFile = await printConfig(['--config', file]);
    assert.equal(fromFile.socketPath, join(dir.path, 'file.sock'));
    assert.equal(fromFile.controlSocketPath, join(dir.path, 'file.sock.ctl'), "derived from the file's socket");
    assert.equal(fromFile.adminSocketPath, join(dir.path, 'file.sock.admin'));
    assert.equal(fromFile.dbPath, join(dir.path, 'file.db'));
    assert.equal(fromFile.staleAfterMs, 30_000);
    assert.equal(fromFile.limits.maxBots, 7);
    assert.equal(fromFile.limits.maxConnections, 20_000, 'untouched settings keep their defaults');
    assert.equal(fromFile.sampleIntervalMs, 15_000);

    const withEnv = await printConfig(['--config', file], {
      KISSBOT_MONITOR_SOCKET: join(dir.path, 'env.sock'),
      KISSBOT_MONITOR_LOG_LEVEL: 'debug',
    });
    assert.equal(withEnv.socketPath, join(dir.path, 'env.sock'), 'env over file');
    assert.equal(withEnv.logLevel, 'debug');
    assert.equal(withEnv.dbPath, join(dir.path, 'file.db'), 'file where env says nothing');

    const withFlags = await printConfig(
      [
        '--config',
        file,
        '--socket',
        join(dir.path, 'flag.sock'),
        '--db',
        join(dir.path, 'flag.db'),
        '--stale-after',
        '45',
      ],
      { KISSBOT_MONITOR_SOCKET: join(dir.path, 'env.sock') },
    );
    assert.equal(withFlags.socketPath, join(dir.path, 'flag.sock'), 'flag over env');
    assert.equal(withFlags.dbPath, join(dir.path, 'flag.db'), 'flag over file');
    assert.equal(withFlags.staleAfterMs, 45_000);
    assert.equal(withFlags.logLevel, 'warn', 'file where no flag is given');

    const viaEnvFile = await printConfig([], { KISSBOT_MONITOR_CONFIG: file });
    assert.equal(viaEnvFile.limits.maxBots, 7, 'KISSBOT_MONITOR_CONFIG names the file');

    const defaults = await printConfig([]);
    assert.equal(defaults.socketPath, '/tmp/kissbot_monitor.sock');
    assert.equal(defaults.dbPath, './kissbot_monitor.db');
  });

  it('a bad setting exits 2 naming the setting and what it must be', async () => {
    const dir = dirs.create();
    const cases: [Record<string, unknown> | null, NodeJS.ProcessEnv, RegExp][] = [
      [{ limits: { maxBots: -1 } }, {}, /config\.limits\.maxBots must be a positive integer/],
      [{ staleAfterMs: 'soon' }, {}, /config\.staleAfterMs must be a positive number/],
      [
        { limits: { maxLineBytes: 2_000_000 } },
        {},
        /config\.limits\.maxUnterminatedBytes must be at least limits\.maxLineBytes/,
      ],
      [{ socketPath: 'x'.repeat(200) }, {}, /config\.socketPath must be a path shorter than 100 bytes/],
      [
        { writer: { busyTimeoutMs: 1_000 } },
        {},
        /config\.writer\.busyTimeoutMs must be at most a tenth of supervisor\.hungAfterMs/,
      ],
      [{ metricPort: 9100 }, {}, /config\.metricPort is not a setting/],
      // A mistyped scheme is refused, never made an SQLite file of that name.
      [{ dbPath: 'postgress://a@b/c' }, {}, /config\.dbPath must be a file path or a postgres:\/\//],
      [null, { KISSBOT_MONITOR_DB: 'pg://x/y' }, /config\.dbPath must be a file path or a postgres:\/\//],
      [{ writer: { flushEvery: 1 } }, {}, /config\.writer\.flushEvery is not a setting/],
      [{ prices: { 'gpt-x': { input: -1, output: 1 } } }, {}, /prices\["gpt-x"\]\.input must be a number >= 0/],
      [
        null,
        { KISSBOT_MONITOR_LOG_LEVEL: 'loud' },
        /KISSBOT_MONITOR_LOG_LEVEL \(config\.logLevel\) must be one of trace, debug, info/,
      ],
    ];
    for (const [settings, env, message] of cases) {
      const args = settings ? ['--config', writeConfig(join(dir.path, 'bad.json'), settings)] : [];
      const r = await runKissmon(['start', '--print-config', ...args], { ...cleanEnv, ...env });
      assert.equal(r.code, 2, `exit code for ${JSON.stringify(settings ?? env)}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
    writeFileSync(join(dir.path, 'broken.json'), '{ "socketPath": ');
    // parseBackend itself (the migrate command, read tasks) refuses them too; a plain path stays a path.
    for (const typo of ['postgress://a@b/c', 'pg://x/y', 'sqlite://file.db'])
      assert.throws(() => parseBackend(typo), /scheme other than postgres/, typo);
    assert.deepEqual(parseBackend('data/x.db'), { kind: 'sqlite', path: 'data/x.db' });
    assert.deepEqual(parseBackend('postgresql://h/db'), { kind: 'postgres', url: 'postgresql://h/db' });
    const broken = await runKissmon(['start', '--config', join(dir.path, 'broken.json')], cleanEnv);
    assert.equal(broken.code, 2);
    assert.match(broken.stderr, /is not valid JSON/);
  });
});
