// The sampler's Linux path (one pread per pid of /proc/<pid>/stat through an fd held from round to
// round, parsed from the bytes) against the portable path (pidusage) and a fresh open + read on the
// same real processes, in-process: the figures agree, one fd per watched pid and none once it is
// unwatched or exited, a pid whose held fd fails is read by path again, running out of fds degrades
// to open + close (a child with a low RLIMIT_NOFILE), and the byte parser reads the fields a plain
// split of the same file gives, also for a comm with spaces and parentheses. Every child is killed
// by pid in after().
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { createLogger } from '../src/log.js';
import { HeldStatFds, readProcStat, statPath, type ProcStat } from '../src/proc.js';
import { startPlaceholders } from '../src/loadtest/placeholders.js';
import type { SampleResult, SampleRound } from '../src/actors/sampler-messages.js';
import { ProcessSampler } from '../workers/sampler.js';
import { procStatFds } from './helpers/resources.js';
import { sleep, waitFor } from './helpers/wait.js';

type Sample = Extract<SampleResult, { cpu_pct: number }>;

const children: ChildProcess[] = [];
const dirs: string[] = [];
after(() => {
  for (const child of children)
    if (child.pid && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function sampler(useProc: boolean, rounds: SampleRound[]): ProcessSampler {
  return new ProcessSampler({
    intervalMs: 60_000, // rounds are run by hand (sampleNow), never on the schedule
    timeoutMs: 50_000,
    log: createLogger('error'),
    onRound: (round) => rounds.push(round),
    onMetric: () => true,
    useProc,
  });
}

const sampleOf = (round: SampleRound | undefined, pid: number) =>
  round?.samples.find((s): s is Sample => s.pid === pid && 'cpu_pct' in s);

describe('sampler: the /proc fast path', { timeout: 120_000 }, () => {
  test('cpu and rss of a busy child agree with pidusage over the same window', async (t) => {
    // One spinning thread, and ~40 MB touched so rss is well above a bare node's.
    const busy = spawn(
      process.execPath,
      ['-e', "globalThis.keep = Buffer.alloc(40 << 20, 1); process.stdout.write('ready\\n'); for (;;) {}"],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    children.push(busy);
    await new Promise<void>((resolve, reject) => {
      busy.once('error', reject);
      busy.stdout.once('data', () => resolve());
    });
    const pid = busy.pid!;
    const procRounds: SampleRound[] = [];
    const portableRounds: SampleRound[] = [];
    const fast = sampler(true, procRounds);
    const portable = sampler(false, portableRounds);
    await fast.init();
    await portable.init();
    assert.equal(fast.stats().detail.usage_source, 'proc');
    assert.equal(portable.stats().detail.usage_source, 'pidusage');
    for (const s of [fast, portable]) s.apply([{ type: 'watch', channel: 'busy', pid, start_time: null }]);
    // Baselines together, then two measured rounds together, ~1 s apart: both paths see one window.
    await Promise.all([fast.sampleNow(), portable.sampleNow()]);
    for (let i = 0; i < 2; i++) {
      await sleep(1_000);
      await Promise.all([fast.sampleNow(), portable.sampleNow()]);
      const a = sampleOf(procRounds.at(-1), pid);
      const b = sampleOf(portableRounds.at(-1), pid);
      assert.ok(a && b, `both paths sampled the child (proc ${JSON.stringify(a)}, pidusage ${JSON.stringify(b)})`);
      t.diagnostic(`round ${i + 1}: /proc ${a.cpu_pct} % ${a.rss_mb} MB, pidusage ${b.cpu_pct} % ${b.rss_mb} MB`);
      // rss is the same kernel figure (field 24 × page size): close, allowing for growth between reads.
      assert.ok(a.rss_mb > 40, `the child's 40 MB buffer is in its rss (${a.rss_mb} MB)`);
      assert.ok(Math.abs(a.rss_mb - b.rss_mb) < Math.max(5, b.rss_mb * 0.1), `rss ${a.rss_mb} vs ${b.rss_mb} MB`);
      // cpu: the same ticks over nearly the same window; a loaded box skews short windows, so generous.
      assert.ok(a.cpu_pct > 5 && b.cpu_pct > 5, `the busy child ran (${a.cpu_pct} %, ${b.cpu_pct} %)`);
      assert.ok(a.cpu_pct < b.cpu_pct * 2 + 10 && b.cpu_pct < a.cpu_pct * 2 + 10, `cpu ${a.cpu_pct} vs ${b.cpu_pct} %`);
    }
    assert.equal(sampleOf(procRounds.at(-1), pid)?.start_time, (readProcStat(pid) as { startTime: number }).startTime);
    fast.stop();
    portable.stop();
    busy.kill('SIGKILL');
  });

  test('one fd is held per pid from round to round, and closed once the pid is not watched', async () => {
    const fleet = await startPlaceholders(300);
    after(() => fleet.kill());
    const rounds: SampleRound[] = [];
    const s = sampler(true, rounds);
    await s.init();
    const watch = fleet.pids.map((pid, i) => ({ type: 'watch' as const, channel: `bot_${i}`, pid, start_time: null }));
    s.apply(watch);
    await s.sampleNow(); // baseline round: opens them
    const heldAfterBaseline = procStatFds();
    for (const pid of fleet.pids) assert.equal(heldAfterBaseline.get(pid)?.length, 1, `one fd held on pid ${pid}`);
    const outcome = await s.sampleNow();
    assert.equal(outcome.status, 'published');
    assert.equal(outcome.samples, 300, 'every pid was read and sampled');
    const held = procStatFds();
    for (const pid of fleet.pids)
      assert.deepEqual(held.get(pid), heldAfterBaseline.get(pid), `pid ${pid} read through the fd it had`);
    assert.equal(s.stats().detail.held_fds, 300);

    const [gone, kept] = [watch.slice(0, 150), watch.slice(150)];
    s.apply(gone.map((w) => ({ ...w, type: 'unwatch' as const })));
    await s.sampleNow();
    const after150 = procStatFds();
    assert.deepEqual(
      gone.filter((w) => after150.has(w.pid)).map((w) => w.pid),
      [],
      'no fd left on an unwatched pid',
    );
    for (const w of kept) assert.equal(after150.get(w.pid)?.length, 1, `still one fd on watched pid ${w.pid}`);
    assert.equal(s.stats().detail.held_fds, 150);
    s.stop();
    const afterStop = procStatFds();
    assert.deepEqual(
      fleet.pids.filter((pid) => afterStop.has(pid)),
      [],
      'stop() closes every held fd',
    );
  });

  test('a held fd reads what a fresh open + read of the same pid reads', async () => {
    const busy = spawn(process.execPath, ['-e', "process.stdout.write('ready\\n'); for (;;) {}"], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(busy);
    await new Promise<void>((resolve, reject) => {
      busy.once('error', reject);
      busy.stdout.once('data', () => resolve());
    });
    const pid = busy.pid!;
    const fds = new HeldStatFds();
    fds.beginRound(new Set([pid]));
    const buf = Buffer.allocUnsafe(4096);
    assert.equal(typeof fds.read(pid, statPath(pid), buf), 'object');
    assert.equal(fds.held, 1);
    let ticksBefore = 0;
    for (let i = 0; i < 5; i++) {
      await sleep(100);
      // Held fd, then a fresh read by path at once: the same process, the same figures a moment apart.
      const held = fds.read(pid, statPath(pid), buf);
      const fresh = readProcStat(pid);
      assert.ok(
        typeof held === 'object' && typeof fresh === 'object',
        `read ${JSON.stringify(held)} / ${JSON.stringify(fresh)}`,
      );
      assert.equal(held.startTime, fresh.startTime);
      const heldTicks = held.utimeTicks + held.stimeTicks;
      const freshTicks = fresh.utimeTicks + fresh.stimeTicks;
      assert.ok(heldTicks >= ticksBefore, 'cpu time through the held fd advances: it is rendered afresh');
      assert.ok(freshTicks - heldTicks >= 0 && freshTicks - heldTicks <= 10, `ticks ${heldTicks} vs ${freshTicks}`);
      assert.ok(Math.abs(held.rssPages - fresh.rssPages) <= Math.max(64, fresh.rssPages * 0.05), 'rss pages');
      ticksBefore = heldTicks;
    }
    assert.ok(ticksBefore > 0, 'the spinning child used cpu');
    assert.equal(fds.held, 1, 'the same fd all along');
    fds.closeAll();
    busy.kill('SIGKILL');
  });

  test('a held fd stays bound to its process: once it exits the pid is gone, or read again by path', async () => {
    const start = async () => {
      const child = spawn('sleep', ['600'], { stdio: 'ignore' });
      children.push(child);
      await waitFor('sleep running', () => {
        const stat = readProcStat(child.pid!);
        return typeof stat === 'object' && stat.state === 'S';
      });
      return child as ChildProcess & { pid: number };
    };
    const [x, y] = [await start(), await start()];
    const fds = new HeldStatFds();
    fds.beginRound(new Set([x.pid]));
    const buf = Buffer.allocUnsafe(4096);
    assert.equal(typeof fds.read(x.pid, statPath(x.pid), buf), 'object');
    x.kill('SIGKILL');
    await new Promise((resolve) => x.once('exit', resolve)); // reaped: the held fd now reads ESRCH
    // Stand-in for a reuse of x's pid by y: the held fd (bound to x) fails, and the path is read instead.
    const reread = fds.read(x.pid, statPath(y.pid), buf);
    assert.equal(typeof reread === 'object' && reread.startTime, (readProcStat(y.pid) as ProcStat).startTime);
    assert.deepEqual(procStatFds().get(x.pid), undefined, 'the fd on the exited process is closed');
    assert.equal(procStatFds().get(y.pid)?.length, 1, 'the one read by path is held now');
    fds.closeAll();

    // Through the sampler: watched, read once (fd held), killed and reaped → process_exited, fd closed.
    const rounds: SampleRound[] = [];
    const s = sampler(true, rounds);
    await s.init();
    s.apply([{ type: 'watch', channel: 'y', pid: y.pid, start_time: null }]);
    await s.sampleNow();
    assert.equal(procStatFds().get(y.pid)?.length, 1);
    y.kill('SIGKILL');
    await new Promise((resolve) => y.once('exit', resolve));
    await s.sampleNow();
    assert.deepEqual(rounds.at(-1)?.samples, [{ channel: 'y', pid: y.pid, gone: 'process_exited' }]);
    await s.sampleNow(); // the entry is gone: its pid is swept
    assert.equal(procStatFds().get(y.pid), undefined, 'no fd left on the exited pid');
    s.stop();
  });

  test('out of fds, it reads by open + close instead of failing, logs it once, and holds fds again later', async (t) => {
    // A child whose fd limit is 1,100 (a shell lowers it, then execs node): the budget leaves it
    // ~50 fds to hold (limit - 1,024 reserve - open). It fills its fd table to 3 short of the limit
    // between a round's budget count and its reads, so the first opens meet EMFILE.
    const fleet = await startPlaceholders(200);
    after(() => fleet.kill());
    const url = (file: string) => new URL(file, import.meta.url).href;
    const script = `
      import { openSync, closeSync } from 'node:fs';
      import { createLogger } from ${JSON.stringify(url('../src/log.js'))};
      import { ProcessSampler } from ${JSON.stringify(url('../workers/sampler.js'))};
      const pids = ${JSON.stringify(fleet.pids)};
      const result = { rounds: [] };
      const s = new ProcessSampler({ intervalMs: 60000, timeoutMs: 50000, log: createLogger('warn'),
        onRound: () => {}, onMetric: () => true, useProc: true });
      await s.init();
      s.apply(pids.map((pid, i) => ({ type: 'watch', channel: 'b' + i, pid, start_time: null })));
      const round = async () => {
        const o = await s.sampleNow();
        const d = s.stats().detail;
        result.rounds.push({ status: o.status, samples: o.samples, held: d.held_fds, hits: d.fd_limit_hits });
      };
      const running = s.sampleNow(); // counts its budget now; reads after a turn of the loop
      const fillers = [];
      for (;;) try { fillers.push(openSync('/dev/null', 'r')); } catch { break; }
      for (let i = 0; i < 3; i++) closeSync(fillers.pop());
      await running;
      await round(); // still 3 fds short: every pid by open + close
      for (const fd of fillers) closeSync(fd);
      for (let i = 0; i < 10; i++) await round(); // the next scheduled count finds fds free again
      s.stop();
      process.stdout.write(JSON.stringify(result) + '\\n');
    `;
    const child = spawn(
      '/bin/sh',
      ['-c', 'ulimit -n 1100 && exec "$0" --input-type=module -e "$1"', process.execPath, script],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    children.push(child);
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const code = await new Promise((resolve) => child.once('exit', resolve));
    assert.equal(code, 0, out);
    const lines = out.trim().split('\n');
    const result = JSON.parse(lines.find((line) => line.startsWith('{"rounds"')) ?? 'null') as {
      rounds: { status: string; samples: number; held: number; hits: number }[];
    };
    t.diagnostic(JSON.stringify(result.rounds));
    const warnings = lines.filter((line) => line.includes('out of fds'));
    assert.equal(warnings.length, 1, `logged once: ${out}`);
    const [full, ...later] = result.rounds;
    assert.deepEqual(
      full,
      { status: 'published', samples: 200, held: 0, hits: 1 },
      'every pid sampled with no fd held',
    );
    assert.ok(
      later.every((r) => r.status === 'published' && r.samples === 200),
      JSON.stringify(later),
    );
    const last = later.at(-1)!;
    assert.ok(last.held > 0 && last.held <= 1100 - 1024, `fds held again within the budget: ${last.held}`);
    assert.equal(last.hits, 1);
  });

  test('the byte parser reads what a split of the same stat line gives, comm with spaces and parentheses included', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'kissmon-stat-'));
    dirs.push(dir);
    const odd = path.join(dir, 'a) (b c)');
    copyFileSync('/bin/sleep', odd);
    const child = spawn(odd, ['600'], { stdio: 'ignore' });
    children.push(child);
    // The split of the line, here the oracle: fields[0] is field 3. Read once `sleep` runs (asleep,
    // state S, under its new name): right after the exec its rss can still be 0.
    const split = () => {
      const line = readFileSync(`/proc/${child.pid}/stat`, 'latin1');
      return {
        comm: line.slice(line.indexOf('(') + 1, line.lastIndexOf(')')),
        fields: line.slice(line.lastIndexOf(')') + 2).split(' '),
      };
    };
    await waitFor('the child asleep in sleep', () => {
      const { comm, fields } = split();
      return comm === 'a) (b c)' && fields[0] === 'S' && Number(fields[21]) > 0;
    });
    const { fields } = split();
    const stat = readProcStat(child.pid!);
    assert.ok(typeof stat === 'object', `read ${JSON.stringify(stat)}`);
    assert.deepEqual(stat, {
      state: fields[0],
      ppid: process.pid,
      utimeTicks: Number(fields[11]),
      stimeTicks: Number(fields[12]),
      cutimeTicks: Number(fields[13]),
      cstimeTicks: Number(fields[14]),
      startTime: Number(fields[19]),
      rssPages: Number(fields[21]),
    });
    assert.ok(stat.rssPages > 0 && stat.startTime > 0);
    child.kill('SIGKILL');
    await waitFor(
      'the child gone',
      () => readProcStat(child.pid!) === 'gone' || child.exitCode !== null || child.signalCode !== null,
    );
  });
});
