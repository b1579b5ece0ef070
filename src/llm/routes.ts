// The LLM room's control routes: GET /usage, /budgets, /prices; POST /usage/recompute (admin).
// src/monitor.ts spreads llmRoutes(...) into its route list.
import { Type } from '@sinclair/typebox';
import { HOST_NAME_PATTERN, type MonitorConfig } from '../config.js';
import { DURATION_PATTERN, parseDuration } from '../duration.js';
import { HttpError, route, type ControlRoute } from '../http/control-server.js';
import { RECOMPUTE_TIMEOUT_MS, type RecomputeResult } from './accounting.js';
import type { BudgetStatus } from './budgets.js';
import { PriceTable } from './prices.js';
import { usageOptions, USAGE_DIMENSIONS, type UsageReport, type UsageReportOptions } from './report.js';

export interface LlmRouteDeps {
  config: MonitorConfig;
  usage: (options: UsageReportOptions) => Promise<UsageReport>;
  /** The writer's budgets (null: it is down or not open). */
  budgets: () => Promise<BudgetStatus[] | null>;
  /** Re-price through the writer (null: it is down). */
  recompute: (sinceMs: number) => Promise<RecomputeResult | null>;
}

const windowTime = Type.String({
  minLength: 1,
  maxLength: 40,
  must: 'a duration such as 7d, 12h, 30m, or an ISO time',
});

function badQuery<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw new HttpError(400, (err as Error).message);
  }
}

export { RECOMPUTE_TIMEOUT_MS };

export function llmRoutes(deps: LlmRouteDeps): ControlRoute[] {
  const none = Type.Object({}, { additionalProperties: false });
  return [
    route({
      method: 'GET',
      path: '/usage',
      admin: false,
      query: Type.Object(
        {
          since: Type.Optional(windowTime),
          until: Type.Optional(windowTime),
          by: Type.Optional(
            Type.String({
              pattern: `^(${USAGE_DIMENSIONS.join('|')})(,(${USAGE_DIMENSIONS.join('|')}))*$`,
              must: `comma-separated dimensions from ${USAGE_DIMENSIONS.join(', ')}`,
            }),
          ),
          top: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,5}$', must: 'a positive integer' })),
          host: Type.Optional(Type.String({ pattern: HOST_NAME_PATTERN, must: '1-64 characters of [A-Za-z0-9_.-]' })),
        },
        { additionalProperties: false },
      ),
      handler: async (q) => deps.usage(badQuery(() => usageOptions(deps.config, q))),
    }),
    route({
      method: 'GET',
      path: '/budgets',
      admin: false,
      query: none,
      handler: async () => {
        const budgets = await deps.budgets();
        if (budgets === null)
          throw new HttpError(503, 'database writer is restarting or the database is not open; try again');
        return { budgets };
      },
    }),
    route({
      method: 'GET',
      path: '/prices',
      admin: false,
      query: none,
      handler: async () => ({ prices: new PriceTable(deps.config.prices).list() }),
    }),
    route({
      method: 'POST',
      path: '/usage/recompute',
      admin: true,
      query: Type.Object(
        { since: Type.String({ pattern: DURATION_PATTERN, must: 'a duration such as 30d' }) },
        { additionalProperties: false },
      ),
      handler: async (q) => {
        const result = await deps.recompute(Date.now() - parseDuration(q.since, 'since'));
        if (result === null)
          throw new HttpError(
            503,
            'database writer is down or did not finish in time; what it committed stays re-priced, run it again',
          );
        return result;
      },
    }),
  ];
}
