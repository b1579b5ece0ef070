// Receiver formats on real HTTP receivers, and an exec receiver: Slack and Discord payloads are
// validated against their documented incoming-webhook shape (Slack: `text` + mrkdwn section
// blocks of at most 3000 characters, at most 50; Discord: `content` of at most 2000 characters);
// the exec receiver is run with the notification's JSON on stdin; a script that hangs is killed at
// its timeout together with what it started in the background (its process group), and it sees only
// PATH, HOME, LANG and KISSMON_* of the monitor's environment. `kissmon alerts test` reports every receiver.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { Ajv } from 'ajv';
import { alertMonitor } from './helpers/alerts.js';
import { botStatus, runKissmon, startBot, waitFor } from './helpers/monitor-process.js';

const EXEC_FIXTURE = fileURLToPath(new URL('./fixtures/exec-receiver.js', import.meta.url));
const BOTS = 40;

/** A process exists and is not a zombie (a killed orphan may wait for its reaper a moment). */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

const SLACK = {
  type: 'object',
  required: ['text', 'blocks'],
  additionalProperties: false,
  properties: {
    text: { type: 'string', minLength: 1, maxLength: 40_000 },
    blocks: {
      type: 'array',
      minItems: 1,
      maxItems: 50,
      items: {
        type: 'object',
        required: ['type', 'text'],
        additionalProperties: false,
        properties: {
          type: { const: 'section' },
          text: {
            type: 'object',
            required: ['type', 'text'],
            additionalProperties: false,
            properties: { type: { const: 'mrkdwn' }, text: { type: 'string', minLength: 1, maxLength: 3_000 } },
          },
        },
      },
    },
  },
};
const DISCORD = {
  type: 'object',
  required: ['content'],
  additionalProperties: false,
  properties: {
    content: { type: 'string', minLength: 1, maxLength: 2_000 },
    username: { type: 'string', minLength: 1, maxLength: 80 },
    allowed_mentions: { type: 'object', properties: { parse: { type: 'array', maxItems: 0 } } },
  },
};

describe('receiver formats', () => {
  const ctx = alertMonitor((dir, receiver) => ({
    alerts: {
      groupWaitMs: 1_500,
      receivers: [
        { url: receiver.url('/slack'), format: 'slack', headers: { 'X-Test': 'yes' } },
        { url: receiver.url('/discord'), format: 'discord' },
        { url: receiver.url('/json'), format: 'json', name: 'raw' },
        { command: [process.execPath, EXEC_FIXTURE, join(dir.path, 'exec.jsonl')], name: 'restart_script' },
        // Records its pid (= its process group) and its background child's, then hangs.
        {
          command: ['sh', '-c', `sleep 60 & echo $$ $! >> ${join(dir.path, 'hang.pids')}; sleep 60`],
          name: 'hanging_script',
          timeoutMs: 500,
        },
      ],
    },
    other: { staleAfterMs: 10_000 },
  }));

  it('sends valid Slack and Discord payloads, runs the exec receiver with the JSON on stdin', async () => {
    const { monitor, receiver } = ctx;
    const execOut = join(ctx.dir.path, 'exec.jsonl');
    // 40 bots with long names die at once: one notification big enough to need splitting.
    const bots = Array.from({ length: BOTS }, (_, i) =>
      startBot(monitor.socket, `a_rather_long_channel_name_number_${i}`, 500),
    );
    await waitFor(
      'bots online',
      async () =>
        (await Promise.all(bots.map((_, i) => botStatus(monitor, `a_rather_long_channel_name_number_${i}`)))).every(
          (b) => b?.status === 'online',
        ),
      60_000,
    );
    for (const bot of bots) bot.child.kill('SIGKILL');
    await waitFor(
      'all 40 listed on the json receiver',
      () =>
        receiver.received.filter((r) => r.path === '/json').flatMap((r) => (r.body as { alerts: unknown[] }).alerts)
          .length >= BOTS,
      30_000,
    );
    await waitFor(
      'slack, discord and exec got it too',
      () =>
        receiver.received.some((r) => r.path === '/slack') &&
        receiver.received.some((r) => r.path === '/discord') &&
        existsSync(execOut),
      30_000,
    );

    const ajv = new Ajv({ allErrors: true });
    const slack = ajv.compile(SLACK);
    const discord = ajv.compile(DISCORD);
    for (const r of receiver.received) {
      if (r.path === '/slack') assert.ok(slack(r.body), JSON.stringify(slack.errors));
      if (r.path === '/discord') assert.ok(discord(r.body), JSON.stringify(discord.errors));
    }
    const firstSlack = receiver.received.find((r) => r.path === '/slack')!.body as {
      text: string;
      blocks: { text: { text: string } }[];
    };
    assert.match(firstSlack.text, /^\[FIRING:\d+\] BotDead$/);
    assert.match(
      firstSlack.blocks.map((b) => b.text.text).join('\n'),
      /a_rather_long_channel_name_number_\d+: process \(pid \d+\) exited/,
    );
    const firstDiscord = receiver.received.find((r) => r.path === '/discord')!.body as { content: string };
    assert.match(firstDiscord.content, /\*\*\[FIRING:\d+\] BotDead\*\*/);
    assert.match(firstDiscord.content, /a\\_rather\\_long/, 'underscores escaped, not italics');

    const runs = readFileSync(execOut, 'utf8')
      .trim()
      .split('\n')
      .map(
        (l) =>
          JSON.parse(l) as {
            stdin: { type: string; status: string; alerts: { labels: Record<string, string> }[] };
            env: Record<string, string>;
            envKeys: string[];
          },
      );
    assert.equal(runs[0].stdin.type, 'alerts');
    assert.equal(runs[0].stdin.status, 'firing');
    assert.equal(runs[0].env.KISSMON_ALERT_STATUS, 'firing');
    assert.equal(runs[0].env.KISSMON_ALERTNAME, 'BotDead');
    const onStdin = runs.flatMap((r) => r.stdin.alerts.map((a) => a.labels.channel));
    assert.deepEqual(new Set(onStdin), new Set(bots.map((_, i) => `a_rather_long_channel_name_number_${i}`)));
    assert.deepEqual(new Set(runs.flatMap((r) => r.env.KISSMON_CHANNELS.split(' '))), new Set(onStdin));
    const foreign = runs[0].envKeys.filter((k) => !['PATH', 'HOME', 'LANG'].includes(k) && !k.startsWith('KISSMON_'));
    assert.deepEqual(foreign, [], 'only PATH, HOME, LANG and KISSMON_* are passed');

    const test = await runKissmon(['alerts', 'test', '--socket', monitor.socket, '--json']);
    assert.equal(test.code, 1, 'one receiver (the hanging script) failed');
    const results = (JSON.parse(test.stdout) as { results: { receiver: string; ok: boolean; error?: string }[] })
      .results;
    const byName = Object.fromEntries(results.map((r) => [r.receiver, r]));
    assert.deepEqual(
      Object.keys(byName).sort(),
      [
        'discord:127.0.0.1:' + new URL(receiver.url()).port,
        'hanging_script',
        'raw',
        'restart_script',
        'slack:127.0.0.1:' + new URL(receiver.url()).port,
      ].sort(),
    );
    assert.equal(byName.hanging_script.ok, false);
    assert.match(byName.hanging_script.error ?? '', /killed: still running after 500 ms/);
    const hangPids = readFileSync(join(ctx.dir.path, 'hang.pids'), 'utf8').trim().split(/\s+/).map(Number);
    assert.ok(hangPids.length >= 2 && hangPids.every((p) => p > 0), `the hanging script ran (${hangPids.join(' ')})`);
    await waitFor(
      'the hanging scripts and their background sleeps are gone',
      () => hangPids.every((p) => !running(p)),
      15_000,
    );
    for (const name of ['raw', 'restart_script']) assert.equal(byName[name].ok, true, name);
    const testSlack = receiver.received.filter((r) => r.path === '/slack').at(-1)!.body as { text: string };
    assert.match(testSlack.text, /^\[TEST\]/);
  });
});
