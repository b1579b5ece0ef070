// GET /bot: one bot's history for the dashboard's detail view (and `curl` on the control socket):
// its resource samples from bot_metrics, its transitions from bot_events, its LLM spend.
import { Type } from '@sinclair/typebox';
import { HOST_NAME_PATTERN } from '../config.js';
import type { ReadPool } from '../db/read-pool.js';
import { DURATION_PATTERN, parseDuration } from '../duration.js';
import { LIMITS } from '../protocol/messages.js';
import { route, type ControlRoute } from './control-server.js';

/** `ownHost`: the bot is looked up on this monitor's host unless the query names another (channels are unique per host). */
export function botRoutes(readPool: ReadPool, ownHost: string): ControlRoute[] {
  return [
    route({
      method: 'GET',
      path: '/bot',
      admin: false,
      query: Type.Object(
        {
          channel: Type.String({ pattern: LIMITS.channelPattern, must: '1-64 characters of A-Z, a-z, 0-9, _' }),
          since: Type.Optional(Type.String({ pattern: DURATION_PATTERN, must: 'a duration such as 1h, 24h, 7d' })),
          host: Type.Optional(Type.String({ pattern: HOST_NAME_PATTERN, must: '1-64 characters of [A-Za-z0-9_.-]' })),
        },
        { additionalProperties: false },
      ),
      handler: async (q) => {
        const sinceMs = Date.now() - parseDuration(q.since ?? '1h', 'since');
        return readPool.bot({ channel: q.channel, sinceMs, host: q.host ?? ownHost });
      },
    }),
  ];
}
