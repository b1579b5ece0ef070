// Who may connect, and who owns the socket path: the bot socket and its control socket are 0660 by
// default (never world-writable, whatever the umask), --socket-mode and --socket-group change that,
// a running monitor's socket is never taken over (not even while it is paused with a full listen
// backlog), and a stale socket left by a SIGKILLed monitor is replaced.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { controlSocketFor } from '../src/config.js';
import { requestControl } from '../src/http/control-client.js';
import { json } from './fixtures/socket-tools.js';
import {
  botStatus,
  CLI,
  killStarted,
  sendLines,
  startMonitor,
  stopMonitor,
  TestDirs,
  waitFor,
  type MonitorProcess,
} from './helpers/monitor-process.js';

const pid = process.pid;
const modeOf = (path: string) => statSync(path).mode & 0o777;
const octal = (mode: number) => `0${mode.toString(8)}`;

const children = new Set<ChildProcess>();

/** Starts `kissmon ARGS`, optionally under a given umask (sh sets it, then execs node: same pid). */
function spawnKissmon(
  args: string[],
  umask?: string,
): { child: ChildProcess; done: Promise<{ code: number | null; stderr: string }> } {
  const child =
    umask === undefined
      ? spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
      : spawn('sh', ['-c', `umask ${umask} && exec "$0" "$@"`, process.execPath, CLI, ...args], {
          stdio: ['ignore', 'ignore', 'pipe'],
        });
  children.add(child);
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const done = new Promise<{ code: number | null; stderr: string }>((resolve) =>
    child.on('exit', (code) => {
      children.delete(child);
      resolve({ code, stderr });
    }),
  );
  return { child, done };
}
const kissmon = (args: string[]) => spawnKissmon(args).done;

/** A group to hand the socket to that is not our primary one, if this user may do that. */
function otherGroup(): { name: string; gid: number } | null {
  const gid = process.getgid!();
  const mine = (process.getgroups?.() ?? []).filter((g) => g !== gid);
  const groups = readFileSync('/etc/group', 'utf8')
    .split('\n')
    .map((l) => l.split(':'))
    .filter((f) => f.length >= 3);
  const byGid = (g: number) => groups.find((f) => Number(f[2]) === g);
  if (mine.length > 0 && byGid(mine[0])) return { name: byGid(mine[0])![0], gid: mine[0] };
  if (process.getuid!() === 0) {
    const candidate = groups.find((f) => Number(f[2]) !== gid && f[0] !== '');
    if (candidate) return { name: candidate[0], gid: Number(candidate[2]) };
  }
  return null;
}

/** Bot socket works: a register on it becomes visible on the control socket. */
async function answers(monitor: Pick<MonitorProcess, 'socket' | 'control'>, channel: string): Promise<void> {
  await sendLines(monitor.socket, [json({ type: 'register', channel, pid }).trimEnd()]);
  await waitFor(`${channel} registered`, () => botStatus(monitor, channel));
}

describe('socket permissions and ownership of the socket path', () => {
  const dirs = new TestDirs();
  const newDir = () => dirs.create();
  after(async () => {
    for (const child of children) {
      try {
        process.kill(child.pid!, 'SIGCONT');
        process.kill(child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await killStarted();
    dirs.removeAll();
  });

  it('default mode is 0660 for the bot socket and the control socket: not world-writable', async () => {
    const dir = newDir();
    const monitor = await startMonitor(dir);
    for (const path of [monitor.socket, monitor.control]) {
      assert.ok(statSync(path).isSocket(), `${path} is a socket`);
      assert.equal(octal(modeOf(path)), '0660', path);
      assert.equal(modeOf(path) & 0o007, 0, `${path}: no access for others`);
    }
    await answers(monitor, 'perm_default');
    assert.equal(await stopMonitor(monitor), 0);
  });

  it('the mode is the one asked for whatever the umask (000 and 077)', async () => {
    for (const umask of ['000', '077']) {
      const dir = newDir();
      const { child, done } = spawnKissmon(
        ['start', '--socket', dir.socket, '--db', dir.db, '--log-level', 'warn'],
        umask,
      );
      const control = controlSocketFor(dir.socket);
      await waitFor('monitor up', () => requestControl(control, 'GET', '/status').then(() => true), 20_000);
      assert.equal(octal(modeOf(dir.socket)), '0660', `bot socket under umask ${umask}`);
      assert.equal(octal(modeOf(control)), '0660', `control socket under umask ${umask}`);
      child.kill('SIGTERM');
      assert.equal((await done).code, 0);
    }
  });

  it('--socket-mode 0600 applies to both sockets', async () => {
    const dir = newDir();
    const monitor = await startMonitor(dir, ['--socket-mode', '0600']);
    assert.equal(octal(modeOf(monitor.socket)), '0600');
    assert.equal(octal(modeOf(monitor.control)), '0600');
    await answers(monitor, 'perm_0600');
    await stopMonitor(monitor);
  });

  const group = otherGroup();
  let grouped: MonitorProcess | null = null;
  it(
    '--socket-group hands the bot socket to that group',
    { skip: group ? false : 'no other group this user may chown to' },
    async () => {
      grouped = await startMonitor(newDir(), ['--socket-group', group!.name]);
      assert.equal(statSync(grouped.socket).gid, group!.gid);
      assert.equal(octal(modeOf(grouped.socket)), '0660');
    },
  );

  it(
    '--socket-group also applies to the control socket (so group members can run kissmon status)',
    {
      skip: group ? false : 'no other group this user may chown to',
    },
    async () => {
      try {
        assert.equal(statSync(grouped!.control).gid, group!.gid);
      } finally {
        await stopMonitor(grouped!);
      }
    },
  );

  it('--metrics-port serves GET /metrics on loopback and nothing else of the control API', async () => {
    const monitor = await startMonitor(newDir(), ['--metrics-port', '0']);
    try {
      const where = /"listen":"(http:\/\/127\.0\.0\.1:\d+)\/metrics"/.exec(monitor.output())?.[1];
      assert.ok(where, 'the log names the metrics address');
      const metrics = await fetch(`${where}/metrics`);
      assert.equal(metrics.status, 200);
      assert.match(await metrics.text(), /kissmon_connections_open/);
      for (const [method, path] of [
        ['GET', '/status'],
        ['GET', '/health'],
        ['POST', '/flush'],
      ]) {
        const res: Response = await fetch(`${where}${path}`, { method });
        assert.equal(res.status, 404, `${method} ${path} must not be served on the TCP port`);
        await res.body?.cancel();
      }
    } finally {
      await stopMonitor(monitor);
    }
  });

  it('a second monitor on a live socket exits 2 and steals nothing', async () => {
    const dir = newDir();
    const first = await startMonitor(dir);
    const inodes = [statSync(first.socket).ino, statSync(first.control).ino];
    const second = await kissmon(['start', '--socket', dir.socket, '--db', `${dir.db}.second`]);
    assert.equal(second.code, 2, second.stderr);
    assert.match(second.stderr, /another monitor is running/);
    assert.deepEqual([statSync(first.socket).ino, statSync(first.control).ino], inodes, 'both socket files untouched');
    await answers(first, 'not_stolen');
    await stopMonitor(first);
  });

  it('a paused monitor whose listen backlog is full is not taken for dead (EAGAIN is not "stale")', async () => {
    const dir = newDir();
    const first = await startMonitor(dir);
    const inode = statSync(first.socket).ino;
    process.kill(first.pid, 'SIGSTOP');
    const queued: net.Socket[] = [];
    try {
      // Fill the backlog (4096, capped by somaxconn) until the kernel refuses with EAGAIN.
      let refused = '';
      while (!refused && queued.length < 10_000) {
        refused = await new Promise<string>((resolve) => {
          const s = net.connect(first.socket);
          s.once('connect', () => {
            queued.push(s);
            resolve('');
          });
          s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
        });
      }
      assert.equal(refused, 'EAGAIN', `backlog full after ${queued.length} connections`);
      const second = await kissmon(['start', '--socket', dir.socket, '--db', `${dir.db}.second`]);
      assert.equal(second.code, 2, second.stderr);
      assert.match(second.stderr, /EAGAIN/);
      assert.equal(statSync(first.socket).ino, inode, 'socket file untouched');
    } finally {
      for (const s of queued) s.destroy();
      process.kill(first.pid, 'SIGCONT');
    }
    // Resumed, it first works through the 4k queued connects (new connects may see EAGAIN meanwhile).
    await waitFor('resumed monitor answers', () => answers(first, 'paused_not_stolen').then(() => true), 15_000);
    await stopMonitor(first);
  });

  it('a stale socket left by a SIGKILLed monitor is replaced, with the right mode', async () => {
    const dir = newDir();
    const first = await startMonitor(dir);
    first.child.kill('SIGKILL');
    await first.exited;
    assert.ok(
      statSync(dir.socket).isSocket() && statSync(controlSocketFor(dir.socket)).isSocket(),
      'the killed monitor left both socket files',
    );
    const second = await startMonitor(dir);
    assert.equal(octal(modeOf(second.socket)), '0660');
    assert.equal(octal(modeOf(second.control)), '0660');
    await answers(second, 'after_stale');
    assert.equal(await stopMonitor(second), 0);
  });

  it('a path that is not a socket is never replaced (exit 2)', async () => {
    const dir = newDir();
    writeFileSync(dir.socket, 'precious data');
    const r = await kissmon(['start', '--socket', dir.socket, '--db', dir.db]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /not a socket/);
    assert.equal(readFileSync(dir.socket, 'utf8'), 'precious data');
  });
});
