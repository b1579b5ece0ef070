// alerts.* and expected in the config: defaults as documented, and bad values refused with an
// error naming the setting (a start with them exits 2).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { receiverSpecs } from '../src/alerts/delivery.js';
import { loadExpected } from '../src/alerts/expected.js';
import { defaultConfig, resolveConfig } from '../src/config.js';
import { runKissmon, TestDir } from './helpers/monitor-process.js';

describe('alert settings', () => {
  const dir = new TestDir();
  after(() => dir.remove());

  it('has the documented defaults', () => {
    const { alerts, expected, metricsPerBot } = defaultConfig();
    assert.deepEqual(
      { ...alerts, receivers: undefined, webhooks: undefined },
      {
        receivers: undefined,
        webhooks: undefined,
        groupWaitMs: 10_000,
        groupIntervalMs: 60_000,
        repeatIntervalMs: 14_400_000,
        flap: { windowMs: 600_000, maxTransitions: 4 },
        missingGraceMs: null,
        ingestPausedAfterMs: 60_000,
        deliveryTimeoutMs: 10_000,
        retryInitialMs: 1_000,
        retryMaxMs: 60_000,
        maxQueuedPerReceiver: 1_000,
        maxDeliveryAttempts: 10,
        maxDeliveryAgeMs: 86_400_000,
      },
    );
    assert.deepEqual([alerts.receivers, alerts.webhooks, expected, metricsPerBot], [[], [], [], false]);
  });

  it('refuses bad values naming the setting', () => {
    const cases: [unknown, RegExp][] = [
      [
        { alerts: { receivers: [{ url: 'ftp://x' }] } },
        /config\.alerts\.receivers\.0 must be \{ "url": "http\(s\):\/\/\.\.\."/,
      ],
      [{ alerts: { receivers: [{ url: 'http://x', format: 'teams' }] } }, /config\.alerts\.receivers\.0 must be/],
      [{ alerts: { receivers: [{ command: [] }] } }, /config\.alerts\.receivers\.0 must be .*"command"/],
      [
        {
          alerts: {
            receivers: [
              { name: 'a', url: 'http://x' },
              { name: 'a', command: ['true'] },
            ],
          },
        },
        /config\.alerts\.receivers\[1\]\.name must be unique \("a" is used twice\)/,
      ],
      [{ alerts: { flap: { maxTransitions: 0 } } }, /config\.alerts\.flap\.maxTransitions must be a positive integer$/],
      [{ alerts: { groupWaitMs: -1 } }, /config\.alerts\.groupWaitMs must be a positive number$/],
      [
        { alerts: { retryInitialMs: 5_000, retryMaxMs: 1_000 } },
        /config\.alerts\.retryMaxMs must be at least alerts\.retryInitialMs$/,
      ],
      [{ alerts: { webhooks: ['localhost:9093'] } }, /config\.alerts\.webhooks must be a list of http\(s\) URLs$/],
      [{ expected: ['no spaces allowed'] }, /config\.expected must be a list of channels/],
      [{ alerts: { nope: 1 } }, /config\.alerts\.nope is not a setting$/],
    ];
    for (const [layer, error] of cases)
      assert.throws(() => resolveConfig(layer as never), error, JSON.stringify(layer));
  });

  it('names receivers without their URL (webhook URLs carry secrets)', () => {
    const config = resolveConfig({
      alerts: {
        receivers: [
          { url: 'https://hooks.slack.com/services/T0/B0/secret', format: 'slack' },
          { command: ['/usr/local/bin/restart-bot', '--now'] },
        ],
        webhooks: ['http://127.0.0.1:9093/api/v2/alerts', 'http://127.0.0.1:9093/other'],
      },
    });
    assert.deepEqual(
      receiverSpecs(config).map((r) => r.name),
      ['slack:hooks.slack.com', 'exec:restart-bot', 'alertmanager:127.0.0.1:9093', 'alertmanager:127.0.0.1:9093#2'],
    );
  });

  it('reads an expected file and names a bad line', () => {
    const file = join(dir.path, 'fleet.txt');
    writeFileSync(file, 'a_bot\n\n# comment\nb_bot # trailing\na_bot\n');
    assert.deepEqual(loadExpected(file), ['a_bot', 'b_bot']);
    writeFileSync(file, 'a_bot\nnot valid\n');
    assert.throws(() => loadExpected(file), /fleet\.txt:2: "not valid" is not a channel/);
  });

  it('kissmon start exits 2 on a bad alert setting or --alert-webhook', async () => {
    const file = join(dir.path, 'bad.json');
    writeFileSync(file, JSON.stringify({ alerts: { repeatIntervalMs: 'often' } }));
    const bad = await runKissmon(['start', '--socket', join(dir.path, 's.sock'), '--config', file]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /config\.alerts\.repeatIntervalMs must be a positive number/);
    const flag = await runKissmon(['start', '--socket', join(dir.path, 's.sock'), '--alert-webhook', 'not-a-url']);
    assert.equal(flag.code, 2);
    assert.match(flag.stderr, /--alert-webhook must be an http:\/\/ or https:\/\/ URL/);
    const printed = await runKissmon([
      'start',
      '--socket',
      join(dir.path, 's.sock'),
      '--alert-webhook',
      'http://127.0.0.1:1/a',
      '--alert-webhook',
      'http://127.0.0.1:2/b',
      '--print-config',
    ]);
    assert.deepEqual((JSON.parse(printed.stdout) as { alerts: { webhooks: string[] } }).alerts.webhooks, [
      'http://127.0.0.1:1/a',
      'http://127.0.0.1:2/b',
    ]);
  });
});
