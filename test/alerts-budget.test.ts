// LlmBudgetExceeded from the writer's `budget` inputs, on the alert engine itself (the rule has no
// I/O; the writer's side is tested in the LLM accounting tests): warning, then critical replaces
// it, `ok` resolves it, a new period resolves the old one's, and each change is one notification.
// With no word from the writer it resolves at the period end the writer sent (the budget's time
// zone decides it: a 25-hour day at the end of daylight saving time).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AlerterInput } from '../src/actors/alerter-messages.js';
import { AlertEngine } from '../src/alerts/engine.js';
import type { Notification } from '../src/alerts/model.js';
import { nextPeriodStart, periodStart } from '../src/llm/periods.js';

const DAY = 86_400_000;
const settings = {
  groupWaitMs: 100,
  groupIntervalMs: 100,
  repeatIntervalMs: 10 * DAY,
  flapWindowMs: 60_000,
  flapMaxTransitions: 4,
  missingGraceMs: 1_000,
  staleAfterMs: 1_000,
  host: 'test-host',
};

function budget(
  level: 'ok' | 'warning' | 'critical',
  periodStart: number,
  at: number,
  periodEnd = periodStart + DAY,
): AlerterInput {
  return {
    type: 'budget',
    at,
    budget: 'daily',
    period: 'day',
    periodStart,
    periodEnd,
    level,
    spentUsd: level === 'ok' ? 1 : 9,
    limitUsd: 10,
    pct: level === 'ok' ? 10 : 90,
  };
}

describe('LlmBudgetExceeded', () => {
  it('fires with the level as severity, is replaced on escalation, resolves on ok and on a new period', () => {
    const sent: Notification[] = [];
    const engine = new AlertEngine(settings, (n) => sent.push(n));
    const day0 = Date.UTC(2026, 11, 1);
    let now = day0 + 3_600_000;
    const step = (input: AlerterInput | null) => {
      if (input) engine.apply(input, now);
      now += 1_000;
      engine.tick(now);
    };
    const seen = () =>
      sent.map((n) =>
        n.type === 'alerts' ? n.alerts.map((a) => `${a.status}:${a.labels.severity}:${a.labels.period_start}`) : [],
      );

    step(budget('warning', day0, now));
    step(budget('critical', day0, now));
    step(budget('ok', day0, now));
    const start = new Date(day0).toISOString();
    assert.deepEqual(seen(), [
      [`firing:warning:${start}`],
      [`firing:critical:${start}`, `resolved:warning:${start}`],
      [`resolved:critical:${start}`],
    ]);
    const labels = (sent[0] as Extract<Notification, { type: 'alerts' }>).alerts[0].labels;
    assert.deepEqual(labels, {
      alertname: 'LlmBudgetExceeded',
      severity: 'warning',
      host: 'test-host',
      budget: 'daily',
      period: 'day',
      period_start: start,
      period_end: new Date(day0 + DAY).toISOString(),
    });

    sent.length = 0;
    step(budget('critical', day0, now));
    now = day0 + DAY + 10_000; // the day is over and no word came: the period rolled over
    step(null);
    assert.deepEqual(seen(), [[`firing:critical:${start}`], [`resolved:critical:${start}`]]);

    sent.length = 0;
    step(budget('warning', day0 + DAY, now));
    step(budget('critical', day0, now)); // a late word about the old period changes nothing
    assert.deepEqual(seen(), [[`firing:warning:${new Date(day0 + DAY).toISOString()}`]]);
  });

  it('resolves at the period end it was given, not 24 h after the start', () => {
    const sent: Notification[] = [];
    const engine = new AlertEngine(settings, (n) => sent.push(n));
    const tz = 'America/New_York';
    const start = periodStart('day', Date.UTC(2026, 10, 1, 12), tz); // 1 Nov 2026: clocks go back, 25 hours
    const end = nextPeriodStart('day', start, tz);
    assert.equal(end - start, 25 * 3_600_000, 'the time zone data knows the 25-hour day');
    engine.apply(budget('critical', start, start + 3_600_000, end), start + 3_600_000);
    engine.tick(start + 3_700_000);
    assert.equal(sent.length, 1, 'fired');
    engine.tick(start + DAY + 10_000); // 24 h on: still the budget's day
    assert.equal(sent.length, 1, 'not resolved before the period ends');
    engine.tick(end + 10_000);
    engine.tick(end + 20_000);
    const resolved = sent
      .slice(1)
      .flatMap((n) => (n.type === 'alerts' ? n.alerts.map((a) => `${a.status}:${a.labels.period_end}`) : []));
    assert.deepEqual(resolved, [`resolved:${new Date(end).toISOString()}`]);
  });
});
