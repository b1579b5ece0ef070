// The three packages as users install them, from what `npm pack` and pip build, into clean places:
// - kissbot-monitor: its tarball installed globally into a temporary prefix (better-sqlite3 and
//   unix-dgram build from source here, about a minute) → `kissmon --version`, `kissmon start`, a bot
//   on the bundled `kissbot-monitor/client` registers and `kissmon status` shows it;
// - kissbot-monitor-client: its tarball installed into an empty project: no dependency, nothing
//   native, its types compile, and its MonitorClient registers a bot with a running monitor;
// - the Python package: pip-installed into a venv (offline: --no-build-isolation, --no-index), then
//   `from kissbot_monitor_client import MonitorClient` and the old `import monitor_client` register bots.
// It runs after the rest of `npm test`, on its own (test/install/ is outside the main glob): the
// native builds take minutes on a loaded box and would starve the timing-sensitive tests beside it.
// The tarballs are packed from the built tree (`npm test` has just built it): packing runs no
// scripts here, so no second tsc rewrites dist/ under the tests running beside this one. That the
// prepack script builds is checked on package.json.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess, type SpawnSyncOptions } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { controlSocketFor } from '../../src/config.js';
import { requestControl } from '../../src/http/control-client.js';
import type { BotSnapshot } from '../../src/actors/registry-messages.js';
import {
  botStatus,
  killStarted,
  startMonitor,
  stopMonitor,
  TestDir,
  waitFor,
  type MonitorProcess,
} from '../helpers/monitor-process.js';
import { commandMissing, requireResource } from '../helpers/resources.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const clientDir = join(root, 'clients', 'typescript');
const pythonDir = join(root, 'clients', 'python');
const readJson = <T>(file: string) => JSON.parse(readFileSync(file, 'utf8')) as T;
const daemonPkg = readJson<{
  name: string;
  version: string;
  scripts: Record<string, string>;
  bin: Record<string, string>;
}>(join(root, 'package.json'));
const clientPkg = readJson<{ name: string; version: string; scripts: Record<string, string>; dependencies?: object }>(
  join(clientDir, 'package.json'),
);

const dir = new TestDir();
/** Children started here (bots, the installed monitor), ended by pid in after(). */
const children = new Set<ChildProcess>();
after(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await Promise.all(
    [...children]
      .filter((c) => c.exitCode === null && c.signalCode === null)
      .map((c) => new Promise((r) => c.once('exit', r))),
  );
  await killStarted();
  dir.remove();
});

/** Runs a command to completion; fails the test with its output when it exits non-zero. */
function run(command: string, args: string[], options: SpawnSyncOptions = {}): string {
  const r = spawnSync(command, args, {
    encoding: 'utf8',
    timeout: 600_000,
    ...options,
    env: { ...process.env, ...options.env },
  });
  const output = `${r.stdout?.toString() ?? ''}${r.stderr?.toString() ?? ''}`;
  assert.equal(
    r.status,
    0,
    `${command} ${args.join(' ')} exited ${r.status ?? r.signal ?? r.error?.message}:\n${output}`,
  );
  return output;
}

/** npm, with no network it does not need: the registry is only read from the local cache. */
const npm = (args: string[], cwd: string) =>
  run('npm', [...args, '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=warn'], { cwd });

/** `npm pack` of a package directory into dir.path; returns the tarball's path. */
function pack(packageDir: string): string {
  const out = run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir.path], { cwd: packageDir });
  const [{ filename }] = JSON.parse(out.slice(out.indexOf('['))) as [{ filename: string }];
  return join(dir.path, filename);
}
const tarList = (tarball: string) => run('tar', ['tzf', tarball]).split('\n').filter(Boolean);

/** A long-running child whose stdout is collected; ended in after() if the test does not end it. */
function startChild(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.add(child);
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

/** Waits until `channel` is online in the monitor's registry with `pid`. */
async function online(control: string, channel: string, pid: number, output: () => string): Promise<void> {
  await waitFor(
    `${channel} online with pid ${pid} (bot output: ${output()})`,
    async () => {
      const bot = await botStatus({ control }, channel);
      return bot?.status === 'online' && bot.pid === pid;
    },
    60_000,
  );
}

/**
 * A bot script's life against a monitor: each of `channels` comes online with the bot's pid; closing
 * its stdin makes it unregister (the first channel goes offline) and exit 0 having printed `printed`;
 * then the monitor stops cleanly.
 */
async function botLifecycle(
  monitor: MonitorProcess,
  bot: ReturnType<typeof startChild>,
  channels: string[],
  printed: string,
): Promise<void> {
  for (const channel of channels) await online(monitor.control, channel, bot.child.pid!, bot.output);
  bot.child.stdin.end();
  assert.equal(await bot.exited, 0, bot.output());
  assert.equal(bot.output(), printed);
  await waitFor(
    `${channels[0]} offline after unregister`,
    async () => (await botStatus(monitor, channels[0]))?.status === 'offline',
  );
  assert.equal(await stopMonitor(monitor), 0);
}

describe('packages install and run from clean places', { concurrency: true }, () => {
  test(
    'kissbot-monitor: npm pack → npm install -g into a temp prefix → --version, start, a bot registers, status has it',
    { timeout: 900_000 },
    async (t) => {
      assert.equal(daemonPkg.scripts.prepack, 'npm run build', 'packing builds dist/ first (dist/ is not in git)');
      const tarball = pack(root);
      const files = tarList(tarball);
      for (const file of [
        'bin/kissmon.js',
        'dist/src/cli.js',
        'dist/src/index.js',
        'dist/src/index.d.ts',
        'dist/src/client.js',
        'dist/workers/registry.js',
        'node_modules/kissbot-monitor-client/dist/index.js',
      ]) {
        assert.ok(files.includes(`package/${file}`), `the tarball has ${file}`);
      }
      // The entry points are esbuild's bundles (src/entry-bundles.ts), with the chunks they import.
      assert.ok(
        files.some((f) => /^package\/dist\/src\/chunk-cli-\w+\.js$/.test(f)),
        'the CLI bundle and its chunks are packed',
      );
      assert.ok(
        !files.some(
          (f) =>
            f.startsWith('package/test/') ||
            f.startsWith('package/dist/test/') ||
            (f.endsWith('.ts') && !f.endsWith('.d.ts')),
        ),
        'no tests or sources packed',
      );
      t.diagnostic(`${tarball.slice(dir.path.length + 1)}: ${files.length} files`);

      const prefix = join(dir.path, 'prefix');
      const started = Date.now();
      npm(['install', '--global', '--prefix', prefix, tarball], dir.path);
      t.diagnostic(`npm install -g (native builds included) took ${((Date.now() - started) / 1000).toFixed(0)} s`);
      const kissmon = join(prefix, 'bin', 'kissmon');
      assert.equal(run(kissmon, ['--version']), `${daemonPkg.version}\n`);

      const socket = join(dir.path, 'installed.sock');
      const db = join(dir.path, 'installed.db');
      const monitor = startChild(kissmon, ['start', '--socket', socket, '--db', db, '--log-level', 'warn']);
      const control = controlSocketFor(socket);
      await waitFor(
        `the installed kissmon serves (output: ${monitor.output()})`,
        () => requestControl(control, 'GET', '/status').then(() => true),
        60_000,
      );

      // A bot on the client the daemon package bundles (kissbot-monitor/client), resolved from the prefix.
      const botFile = join(prefix, 'lib', 'daemon-bot.mjs');
      writeFileSync(
        botFile,
        [
          "import { MonitorClient } from 'kissbot-monitor/client';",
          "const client = new MonitorClient({ channel: 'pkg_daemon_bot', socketPath: process.argv[2] });",
          'console.log(await client.register({ installed: true }));',
          "process.stdin.on('end', async () => { await client.unregister(); await client.close(); });",
          'process.stdin.resume();',
        ].join('\n'),
      );
      const bot = startChild(process.execPath, [botFile, socket]);
      await online(control, 'pkg_daemon_bot', bot.child.pid!, bot.output);
      const listed = JSON.parse(run(kissmon, ['status', '--json', '--socket', socket])) as BotSnapshot[];
      assert.deepEqual(
        listed.map((b) => [b.channel, b.status, b.pid]),
        [['pkg_daemon_bot', 'online', bot.child.pid]],
      );
      bot.child.stdin.end();
      assert.equal(await bot.exited, 0, bot.output());
      assert.equal(bot.output(), 'true\n');
      monitor.child.kill('SIGTERM');
      assert.equal(await monitor.exited, 0, monitor.output());
    },
  );

  test(
    'kissbot-monitor-client: the tarball installs alone, no dependencies, nothing native; its MonitorClient registers',
    { timeout: 600_000 },
    async (t) => {
      assert.equal(clientPkg.scripts.prepack, 'tsc -p .', 'packing builds the client first');
      assert.equal(clientPkg.dependencies, undefined, 'the client package has no dependencies');
      const tarball = pack(clientDir);
      const files = tarList(tarball);
      assert.ok(files.includes('package/dist/index.js') && files.includes('package/dist/index.d.ts'), files.join(', '));
      assert.ok(
        files.every((f) => /^package\/(package\.json|README\.md|dist\/[\w-]+\.(js|d\.ts))$/.test(f)),
        `only package.json, README.md and dist/*.js, *.d.ts: ${files.join(', ')}`,
      );

      const project = join(dir.path, 'bot-project');
      mkdirSync(project);
      writeFileSync(
        join(project, 'package.json'),
        JSON.stringify({ name: 'a-bot', version: '1.0.0', private: true, type: 'module' }),
      );
      const output = npm(['install', tarball, '--foreground-scripts'], project);
      assert.doesNotMatch(output, /node-gyp|gyp info|prebuild/i, 'no native build ran');
      // What landed: the client alone, no build/ dir, no .node addon, no binding.gyp.
      const modules = join(project, 'node_modules');
      assert.deepEqual(
        readdirSync(modules).filter((name) => !name.startsWith('.')),
        ['kissbot-monitor-client'],
      );
      const installed = readdirSync(join(modules, 'kissbot-monitor-client'), { recursive: true }).map(String);
      assert.ok(installed.includes(join('dist', 'index.js')), installed.join(', '));
      assert.ok(!existsSync(join(modules, 'kissbot-monitor-client', 'build')), 'no build/ directory');
      assert.ok(
        !installed.some((f) => f.endsWith('.node') || f.endsWith('binding.gyp')),
        `nothing native: ${installed.join(', ')}`,
      );
      t.diagnostic(`installed: ${installed.join(', ')}`);

      // The types ship and compile in the bot's project (TypeScript from this repository: the bot's own dev tool).
      writeFileSync(
        join(project, 'check.ts'),
        [
          "import { MonitorClient, type LlmUsage } from 'kissbot-monitor-client';",
          "import { LIMITS, type RegisterMessage } from 'kissbot-monitor-client/protocol';",
          "const usage: LlmUsage = { model: 'm', feature: 'f', tokensIn: 1, tokensOut: 2 };",
          "const message: RegisterMessage = { type: 'register', channel: 'c', pid: LIMITS.maxPid };",
          'export const checked = [new MonitorClient({ channel: message.channel }), usage];',
        ].join('\n'),
      );
      run(
        process.execPath,
        [
          join(root, 'node_modules', 'typescript', 'bin', 'tsc'),
          '--noEmit',
          '--strict',
          '--module',
          'nodenext',
          '--types',
          'node',
          '--typeRoots',
          join(root, 'node_modules', '@types'),
          'check.ts',
        ],
        { cwd: project },
      );

      const monitorDir = new TestDir();
      t.after(() => monitorDir.remove());
      const monitor = await startMonitor(monitorDir);
      writeFileSync(
        join(project, 'bot.js'),
        [
          "import { MonitorClient } from 'kissbot-monitor-client';",
          "const client = new MonitorClient({ channel: 'pkg_client_bot', socketPath: process.argv[2] });",
          'console.log(await client.register({ llm: true }));',
          "process.stdin.on('end', async () => { await client.unregister(); await client.close(); });",
          'process.stdin.resume();',
        ].join('\n'),
      );
      await botLifecycle(
        monitor,
        startChild(process.execPath, ['bot.js', monitor.socket], { cwd: project }),
        ['pkg_client_bot'],
        'true\n',
      );
    },
  );

  test(
    'python: pip install --no-build-isolation into a venv; kissbot_monitor_client and old monitor_client register bots',
    { timeout: 600_000 },
    async (t) => {
      // An interpreter with its own setuptools, wheel and venv (Debian: python3-setuptools python3-wheel python3-venv).
      const python = ['python3', '/usr/bin/python3'].find(
        (p) => commandMissing(p, ['-c', 'import setuptools, wheel, venv']) === undefined,
      );
      if (
        !requireResource(
          t,
          'python3 with setuptools, wheel and venv',
          python ? undefined : 'none of python3, /usr/bin/python3 has them',
        )
      )
        return;
      // pip builds in the source tree (build/, *.egg-info): build from a copy, never in the repository.
      const source = join(dir.path, 'python-src');
      for (const part of ['pyproject.toml', 'kissbot_monitor_client', 'monitor_client'])
        cpSync(join(pythonDir, part), join(source, part), { recursive: true });
      const venv = join(dir.path, 'venv');
      // --system-site-packages: the venv builds with the interpreter's own setuptools (PyPI is not reachable).
      run(python!, ['-m', 'venv', '--system-site-packages', venv]);
      const quiet = { PIP_DISABLE_PIP_VERSION_CHECK: '1', PYTHONDONTWRITEBYTECODE: '1' };
      run(join(venv, 'bin', 'pip'), ['install', '--no-build-isolation', '--no-index', '--no-cache-dir', source], {
        env: quiet,
      });

      const monitorDir = new TestDir();
      t.after(() => monitorDir.remove());
      const monitor = await startMonitor(monitorDir);
      const script = [
        'import asyncio, os, sys',
        'from kissbot_monitor_client import MonitorClient',
        'import monitor_client',
        'import kissbot_monitor_client',
        'assert monitor_client.MonitorClient is MonitorClient, "the old name is the same module"',
        'installed = kissbot_monitor_client.__file__',
        'assert installed.startswith(sys.prefix), installed',
        'async def main():',
        '    client = MonitorClient("pkg_python_bot", os.getpid(), socket_path=sys.argv[1])',
        '    print(await client.register(features={"llm": True}),',
        '          monitor_client.register_with_monitor("pkg_python_old", os.getpid(), {}, socket_path=sys.argv[1]),',
        '          flush=True)',
        '    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)',
        '    await client.unregister()',
        '    await client.close()',
        'asyncio.run(main())',
      ].join('\n');
      // Run from the temp dir, so only the installed package can be imported (not clients/python).
      const bot = startChild(join(venv, 'bin', 'python'), ['-c', script, monitor.socket], {
        cwd: dir.path,
        env: quiet,
      });
      await botLifecycle(monitor, bot, ['pkg_python_bot', 'pkg_python_old'], 'True True\n');
    },
  );
});
