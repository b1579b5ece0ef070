// The kissmon CLI as users run it: exit codes for bad usage, status/usage/health output, the
// /usage control route, and `kissmon health` failing while an actor is down.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import stringWidth from 'string-width';
import { plainTable } from '../src/cli-options.js';
import { requestControl } from '../src/http/control-client.js';
import {
  CLI,
  flush,
  runKissmon as kissmon,
  killStarted,
  line,
  query,
  sendLines,
  startMonitor,
  stopMonitor,
  TestDir,
  waitFor,
  botStatus,
  type MonitorProcess,
} from './helpers/monitor-process.js';

/** The llm_usage rows this file sends; the expected reports below are summed from them by hand. */
const USAGE_ROWS = [
  { channel: 'cli_bot', model: 'gpt-4o', feature: 'jokes', tokens_in: 100, tokens_out: 50, latency_ms: 100 },
  { channel: 'cli_bot', model: 'gpt-4o-mini', feature: 'chat', tokens_in: 200, tokens_out: 10, latency_ms: 300 },
  { channel: 'usage_a', model: 'gpt-4o', feature: 'jokes', tokens_in: 1000, tokens_out: 500, latency_ms: 200 },
  { channel: 'usage_a', model: 'gpt-4o-mini', feature: 'jokes', tokens_in: 3000, tokens_out: 1000, latency_ms: 600 },
  { channel: 'usage_b', model: 'gpt-4o', feature: 'chat', tokens_in: 10, tokens_out: 20 }, // no latency
  // o1-pro has no price (it is not o1): usage_c's cost is unknown, usage_d's is partial.
  { channel: 'usage_c', model: 'o1-pro', feature: 'vision', tokens_in: 100, tokens_out: 100 },
  { channel: 'usage_d', model: 'o1-pro', feature: 'vision', tokens_in: 100, tokens_out: 100 },
  { channel: 'usage_d', model: 'gpt-4o', feature: 'vision', tokens_in: 100, tokens_out: 100 },
];
// Prices per 1M tokens (in/out): gpt-4o 2.50/10, gpt-4o-mini 0.15/0.60. Costs in µUSD per row:
// 250+500=750, 30+6=36, 2500+5000=7500, 450+600=1050, 25+200=225, none, none, 250+1000=1250. Latency percentiles are
// linear between the nearest ranks (p50 of [100, 300] is 200; p95 100 + 0.95 × 200 = 290).
type Expected = {
  calls: number;
  tokens_in: number;
  tokens_out: number;
  micro_usd: number | null;
  p50: number | null;
  p95: number | null;
};
const EXPECTED_USAGE: Record<'channel' | 'model' | 'feature', Record<string, Expected>> = {
  channel: {
    cli_bot: { calls: 2, tokens_in: 300, tokens_out: 60, micro_usd: 786, p50: 200, p95: 290 },
    usage_a: { calls: 2, tokens_in: 4000, tokens_out: 1500, micro_usd: 8550, p50: 400, p95: 580 },
    usage_b: { calls: 1, tokens_in: 10, tokens_out: 20, micro_usd: 225, p50: null, p95: null },
    usage_c: { calls: 1, tokens_in: 100, tokens_out: 100, micro_usd: null, p50: null, p95: null },
    usage_d: { calls: 2, tokens_in: 200, tokens_out: 200, micro_usd: 1250, p50: null, p95: null },
  },
  model: {
    'gpt-4o': { calls: 4, tokens_in: 1210, tokens_out: 670, micro_usd: 9725, p50: 150, p95: 195 },
    'o1-pro': { calls: 2, tokens_in: 200, tokens_out: 200, micro_usd: null, p50: null, p95: null },
    'gpt-4o-mini': { calls: 2, tokens_in: 3200, tokens_out: 1010, micro_usd: 1086, p50: 450, p95: 585 },
  },
  feature: {
    jokes: { calls: 3, tokens_in: 4100, tokens_out: 1550, micro_usd: 9300, p50: 200, p95: 560 },
    chat: { calls: 2, tokens_in: 210, tokens_out: 30, micro_usd: 261, p50: 300, p95: 300 },
    vision: { calls: 3, tokens_in: 300, tokens_out: 300, micro_usd: 1250, p50: null, p95: null },
  },
};

interface UsageReportRow {
  key: string;
  calls: number;
  tokens_in: number;
  tokens_out: number;
  cost_usd: number | null;
  latency_p50_ms: number | null;
  latency_p95_ms: number | null;
}

function assertUsage(rows: UsageReportRow[], by: keyof typeof EXPECTED_USAGE, source: string): void {
  const got = Object.fromEntries(
    rows.map((r) => [
      r.key,
      {
        calls: r.calls,
        tokens_in: r.tokens_in,
        tokens_out: r.tokens_out,
        micro_usd: r.cost_usd === null ? null : Math.round(r.cost_usd * 1e6 * 1e6) / 1e6,
        p50: r.latency_p50_ms,
        p95: r.latency_p95_ms,
      },
    ]),
  );
  assert.deepEqual(got, EXPECTED_USAGE[by], `${source} by ${by}`);
}

describe('kissmon CLI', () => {
  const dir = new TestDir();
  let monitor: MonitorProcess;

  before(async () => {
    monitor = await startMonitor(dir);
    await sendLines(monitor.socket, [
      line({ type: 'register', channel: 'cli_bot', pid: process.pid, features: { llm: true } }),
      ...USAGE_ROWS.map((row) => line({ type: 'llm_usage', ...row })),
    ]);
    await waitFor('registered', () => botStatus(monitor, 'cli_bot'));
    await waitFor('every usage row committed', async () => {
      await flush(monitor);
      return query<{ n: number }>(dir.db, 'SELECT count(*) n FROM llm_usage')[0].n === USAGE_ROWS.length;
    });
  });
  after(async () => {
    if (monitor) await stopMonitor(monitor);
    await killStarted();
    dir.remove();
  });

  it('unknown flags and bad values exit 2 with a clear message', async () => {
    for (const args of [
      ['start', '--bogus'],
      ['start', '--stale-after', 'soon'],
      ['start', '--socket-mode', '999'],
      ['usage', '--since', '3x', '--db', dir.db],
      ['usage', '--by', 'planet'],
      ['frobnicate'],
    ]) {
      const r = await kissmon(args);
      assert.equal(r.code, 2, `${args.join(' ')} → ${r.code}: ${r.stderr}`);
      assert.match(r.stderr, /error|must|unknown|allowed|invalid/i, args.join(' '));
    }
  });

  it('--version and -V print the version from package.json, exit 0', async () => {
    const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    assert.match(version, /^\d+\.\d+\.\d+/);
    for (const flag of ['--version', '-V'])
      assert.deepEqual(await kissmon([flag]), { code: 0, stdout: `${version}\n`, stderr: '' });
  });

  it('a second monitor on a socket that a running monitor answers on is refused (exit 2), not stolen', async () => {
    const r = await kissmon(['start', '--socket', dir.socket, '--db', `${dir.db}.2`]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /another monitor is running/);
    assert.equal((await botStatus(monitor, 'cli_bot'))?.status, 'online', 'the running monitor still answers');
  });

  it('status --json lists the live registry; the table shows the same bot', async () => {
    const json = await kissmon(['status', '--socket', dir.socket, '--json']);
    assert.equal(json.code, 0, json.stderr);
    const bots = JSON.parse(json.stdout) as { channel: string; pid: number; status: string; source: string }[];
    const bot = bots.find((b) => b.channel === 'cli_bot')!;
    assert.equal(bot.pid, process.pid);
    assert.equal(bot.status, 'online');
    assert.equal(bot.source, 'live');
    const table = await kissmon(['status', '--socket', dir.socket]);
    assert.equal(table.code, 0);
    assert.match(table.stdout, /cli_bot/);
    assert.match(table.stdout, /online/);
  });

  it('usage groups calls, tokens, cost and latency exactly as summed by hand (kissmon usage --json)', async () => {
    for (const by of ['channel', 'model', 'feature'] as const) {
      const r = await kissmon(['usage', '--db', dir.db, '--by', by, '--since', '1h', '--json']);
      assert.equal(r.code, 0, r.stderr);
      assertUsage((JSON.parse(r.stdout) as { rows: UsageReportRow[] }).rows, by, 'kissmon usage');
    }
    const table = await kissmon(['usage', '--db', dir.db, '--by', 'feature']);
    assert.match(table.stdout, /jokes/);
    assert.match(table.stdout, /0\.009300/, 'the table shows the jokes cost');
    // Unknown cost is shown as unknown, not $0; a partial cost is marked.
    const byChannel = await kissmon(['usage', '--db', dir.db, '--by', 'channel']);
    const cells = (name: string) =>
      byChannel.stdout
        .split('\n')
        .find((l) => l.includes(name))
        ?.split('│')
        .map((c) => c.trim());
    assert.equal(cells('usage_c')?.[6], '', 'no call of usage_c is priced: cost empty');
    assert.equal(cells('usage_d')?.[6], '0.001250+', "one of usage_d's two calls is priced");
    assert.equal(cells('usage_b')?.[6], '0.000225', 'all priced: no mark');
    assert.match(byChannel.stdout, /\+ = without the unpriced calls/);
    const csv = (await kissmon(['usage', '--db', dir.db, '--by', 'channel', '--csv'])).stdout.split('\n');
    const header = csv[0].split(',');
    const csvRow = (name: string) =>
      Object.fromEntries(
        csv
          .find((l) => l.startsWith(`${name},`))!
          .split(',')
          .map((v, i) => [header[i], v]),
      );
    assert.deepEqual([csvRow('usage_c').cost_usd, csvRow('usage_c').unpriced_calls], ['', '1']);
    assert.deepEqual([csvRow('usage_d').cost_usd, csvRow('usage_d').unpriced_calls], ['0.00125', '1']);
  });

  it('a reader that goes away ends the command quietly (kissmon usage | head): exit 0, no EPIPE crash', async () => {
    const child = spawn(process.execPath, [CLI, 'usage', '--db', dir.db, '--by', 'channel'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.destroy(); // the reader is gone before the report is written
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.doesNotMatch(stderr, /EPIPE|Unhandled/, 'no crash report');
    assert.equal(code, 0, stderr);
  });

  it('the /usage control route answers the same report, and refuses a bad grouping or window', async () => {
    for (const by of ['channel', 'model', 'feature'] as const) {
      assertUsage(
        (await requestControl<{ rows: UsageReportRow[] }>(monitor.control, 'GET', `/usage?by=${by}&since=1h`)).rows,
        by,
        'GET /usage',
      );
    }
    assertUsage(
      (await requestControl<{ rows: UsageReportRow[] }>(monitor.control, 'GET', '/usage')).rows,
      'channel',
      'GET /usage (defaults: by channel, 7 days)',
    );
    await assert.rejects(
      requestControl(monitor.control, 'GET', '/usage?by=planet'),
      /query parameter by must be comma-separated dimensions from host, channel, model, feature/,
    );
    await assert.rejects(requestControl(monitor.control, 'GET', '/usage?since=3x'), /since/);
  });

  it('health reports every actor, exit 0 while all are up', async () => {
    const r = await kissmon(['health', '--socket', dir.socket, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const actors = JSON.parse(r.stdout) as { actor: string; up: boolean }[];
    assert.deepEqual(actors.map((a) => a.actor).sort(), ['alerter', 'db', 'ingest', 'registry', 'sampler']);
    assert.ok(actors.every((a) => a.up));
  });

  it('status falls back to the database when no monitor answers, and says so', async () => {
    const r = await kissmon(['status', '--socket', `${dir.path}/nobody.sock`, '--db', dir.db, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /no monitor answers/);
    const bots = JSON.parse(r.stdout) as { channel: string; status: string; source: string }[];
    assert.equal(bots.find((b) => b.channel === 'cli_bot')?.source, 'database');
  });

  it('KISSBOT_MONITOR_SOCKET sets the socket', async () => {
    const r = await kissmon(['status', '--json'], { KISSBOT_MONITOR_SOCKET: dir.socket });
    assert.equal(r.code, 0, r.stderr);
    assert.ok((JSON.parse(r.stdout) as { channel: string }[]).some((b) => b.channel === 'cli_bot'));
  });
});

describe('kissmon health exit code', () => {
  const dir = new TestDir();
  let monitor: MonitorProcess;

  before(async () => {
    // A crashed actor waits 4 s for its restart: long enough to ask `kissmon health` meanwhile.
    const config = join(dir.path, 'slow-restart.json');
    writeFileSync(config, JSON.stringify({ supervisor: { backoffInitialMs: 4_000, backoffMaxMs: 4_000 } }));
    monitor = await startMonitor(dir, ['--enable-faults', '--config', config]);
  });
  after(async () => {
    if (monitor) await stopMonitor(monitor);
    await killStarted();
    dir.remove();
  });

  it('exits 1 while an actor is down (crashed, waiting for its restart), 0 once it is back', async () => {
    assert.equal((await kissmon(['health', '--socket', dir.socket])).code, 0, 'all up before the crash');
    const crash = await kissmon(['fault', 'crash', 'sampler', '--socket', dir.socket]);
    assert.equal(crash.code, 0, crash.stderr);
    const down = await waitFor(
      'kissmon health to report the sampler down',
      async () => {
        const r = await kissmon(['health', '--socket', dir.socket, '--json']);
        return r.code === 1 && r;
      },
      20_000,
      100,
    );
    const actors = JSON.parse(down.stdout) as { actor: string; up: boolean }[];
    assert.deepEqual(
      actors.filter((a) => !a.up).map((a) => a.actor),
      ['sampler'],
      'the crashed actor is the one reported down',
    );
    const table = await kissmon(['health', '--socket', dir.socket]);
    if (table.code === 1) assert.match(table.stdout, /sampler\s*│\s*NO/, 'the table says which');
    await waitFor(
      'kissmon health to exit 0 after the restart',
      async () => (await kissmon(['health', '--socket', dir.socket])).code === 0,
      30_000,
      250,
    );
  });

  it('exits 1 when no monitor answers', async () => {
    const r = await kissmon(['health', '--socket', join(dir.path, 'nobody.sock')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no monitor answers/);
  });
});

describe('plainTable', () => {
  it('pads every cell to its column by display width, wide and combining characters included', () => {
    const table = plainTable(['model', 'calls']);
    table.push(['gpt-4o', 12]);
    table.push(['モデル-x', null]); // three double-width characters
    table.push(['café', 3]); // e + combining acute accent: one column
    const lines = table.toString().split('\n');
    assert.equal(lines.length, 4 + 3, 'a frame of 4 lines and one line per row');
    const widths = new Set(lines.map((l) => stringWidth(l)));
    assert.equal(widths.size, 1, `every line as wide as the others: ${[...widths].join(', ')}`);
    assert.equal(lines[4], '│ モデル-x │       │', 'a null cell is empty');
    assert.ok(lines[1].startsWith('│ model    │ calls │'), lines[1]);
  });
});
