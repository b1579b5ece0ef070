// The sampler's Linux path (one open + pread + close of /proc/<pid>/stat per pid, parsed from the
// bytes) against the portable path (pidusage) on the same real processes, in-process: the figures
// agree, no fd outlives a round, and the byte parser reads the fields a plain split of the same file
// gives, also for a comm with spaces and parentheses. Every child is killed by pid in after().
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { createLogger } from '../src/log.js';
import { readProcStat } from '../src/proc.js';
import { startPlaceholders } from '../src/loadtest/placeholders.js';
import type { SampleResult, SampleRound } from '../src/actors/sampler-messages.js';
import { ProcessSampler } from '../workers/sampler.js';
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

const openFds = () => readdirSync('/proc/self/fd').length;

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

  test('a round over 300 pids opens no fd that outlives it', async () => {
    const fleet = await startPlaceholders(300);
    after(() => fleet.kill());
    const rounds: SampleRound[] = [];
    const s = sampler(true, rounds);
    await s.init();
    s.apply(fleet.pids.map((pid, i) => ({ type: 'watch' as const, channel: `bot_${i}`, pid, start_time: null })));
    await s.sampleNow(); // baseline round
    const before = openFds();
    const outcome = await s.sampleNow();
    const grown = openFds() - before;
    assert.equal(outcome.status, 'published');
    assert.equal(outcome.samples, 300, 'every pid was read and sampled');
    // pidusage would keep one fd per pid (+300) for 60 s.
    assert.ok(grown <= 0, `the round left ${grown} more fds open`);
    s.stop();
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
