// LlmBudgetExceeded through the real monitor: a bot's llm_usage rows cross warnAtPct, then the
// limit, of a tiny budget; the receiver gets a warning, then a critical notification labelled with
// the budget, each exactly once.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { alertMonitor } from './helpers/alerts.js';
import { botStatus, flush, line, sendLines, sleep, waitFor } from './helpers/monitor-process.js';

/** $1 per input token: each row of tokens_in 1 costs $1. */
const PRICES = { 'tiny-model': { input: 1_000_000, output: 0 } };

describe('LlmBudgetExceeded end to end', () => {
  const ctx = alertMonitor((_dir, receiver) => ({
    alerts: { receivers: [{ url: receiver.url('/am') }] },
    other: { prices: PRICES, budgets: [{ name: 'tiny', period: 'day', limitUsd: 10, warnAtPct: 50 }] },
  }));

  it('sends a warning, then a critical notification, once each', async () => {
    const { monitor, receiver } = ctx;
    const usage = (n: number) =>
      Array.from({ length: n }, () =>
        line({
          type: 'llm_usage',
          channel: 'spender_bot',
          model: 'tiny-model',
          feature: 'chat',
          tokens_in: 1,
          tokens_out: 0,
        }),
      );
    const firing = () =>
      receiver.received
        .flatMap((r) => (r.body as { alerts: { status: string; labels: Record<string, string> }[] }).alerts)
        .filter((a) => a.status === 'firing' && a.labels.alertname === 'LlmBudgetExceeded');
    await sendLines(monitor.socket, [
      line({ type: 'register', channel: 'spender_bot', pid: process.pid, features: { llm: true } }),
      ...usage(6),
    ]);
    await waitFor('registered', () => botStatus(monitor, 'spender_bot'));
    await flush(monitor);
    await waitFor('warning notification', () => firing().length >= 1, 30_000);
    await sendLines(monitor.socket, usage(5));
    await flush(monitor);
    await waitFor('critical notification', () => firing().length >= 2, 30_000);
    await sleep(2_000); // past a group interval: anything sent twice would be here
    assert.deepEqual(
      firing().map((a) => [a.labels.severity, a.labels.budget, a.labels.period]),
      [
        ['warning', 'tiny', 'day'],
        ['critical', 'tiny', 'day'],
      ],
    );
  });
});
