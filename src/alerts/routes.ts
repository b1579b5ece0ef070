// Control API routes of the alerter: alerts, silences, receiver test. `kissmon alerts` and
// `kissmon silence` call these; the dashboard reads and creates silences through them.
import { Type } from '@sinclair/typebox';
import type * as Comlink from 'comlink';
import type { AlertView, ReceiverTestResult, SilenceMatcher, SilenceView } from '../actors/alerter-messages.js';
import { DURATION_PATTERN, parseDuration } from '../duration.js';
import { HttpError, route, type ControlRoute } from '../http/control-server.js';
import type { ControlOf } from '../supervisor/supervisor.js';

/** Calls the alerter's control plane; null while it is down or restarting. */
export type AlerterCall = <T>(fn: (alerter: Comlink.Remote<ControlOf<'alerter'>>) => Promise<T>) => Promise<T | null>;

/** Longest silence: a year (a forgotten "forever" silence hides real trouble). */
const MAX_SILENCE_MS = 366 * 86_400_000;

export function alertRoutes(call: AlerterCall): ControlRoute[] {
  const none = Type.Object({}, { additionalProperties: false });
  const answer = async <T>(fn: (alerter: Comlink.Remote<ControlOf<'alerter'>>) => Promise<T>): Promise<T> => {
    const result = await call(fn);
    if (result === null) throw new HttpError(503, 'alerter is restarting; try again');
    return result;
  };
  return [
    route({
      method: 'GET',
      path: '/alerts',
      admin: false,
      query: none,
      handler: async () => ({ alerts: await answer<AlertView[]>((a) => a.alerts()) }),
    }),
    route({
      method: 'GET',
      path: '/silences',
      admin: false,
      query: none,
      handler: async () => ({ silences: await answer<SilenceView[]>((a) => a.silences()) }),
    }),
    route({
      method: 'POST',
      path: '/silences',
      admin: true,
      query: Type.Object(
        {
          channel: Type.Optional(
            Type.String({ pattern: '^[A-Za-z0-9_]{1,64}$', must: 'a channel (1-64 chars of [A-Za-z0-9_])' }),
          ),
          match: Type.Optional(
            Type.String({ minLength: 1, maxLength: 128, must: 'a glob of 1-128 characters, e.g. eu_*' }),
          ),
          host: Type.Optional(
            Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$', must: 'a host name (1-64 chars of [A-Za-z0-9_.-])' }),
          ),
          all: Type.Optional(Type.Union([Type.Literal('1'), Type.Literal('true')], { must: '1 or true' })),
          for: Type.String({ pattern: DURATION_PATTERN, must: 'a duration such as 30m, 2h, 1d' }),
          comment: Type.Optional(Type.String({ maxLength: 500, must: 'at most 500 characters' })),
          by: Type.Optional(Type.String({ minLength: 1, maxLength: 100, must: 'who creates it, 1-100 characters' })),
        },
        { additionalProperties: false },
      ),
      handler: async (q) => {
        const given = [q.channel, q.match, q.host, q.all].filter((v) => v !== undefined).length;
        if (given !== 1) throw new HttpError(400, 'give exactly one of channel, match, host or all');
        const forMs = parseDuration(q.for, 'for');
        if (!(forMs > 0) || forMs > MAX_SILENCE_MS)
          throw new HttpError(400, 'for must be a duration above 0 and at most 366d');
        const matcher: SilenceMatcher =
          q.channel !== undefined
            ? { channel: q.channel }
            : q.match !== undefined
              ? { match: q.match }
              : q.host !== undefined
                ? { host: q.host }
                : { all: true };
        const silence = await answer<SilenceView>((a) =>
          a.addSilence({ matcher, forMs, comment: q.comment ?? '', createdBy: q.by ?? 'control-api' }),
        );
        return { silence };
      },
    }),
    route({
      method: 'POST',
      path: '/silences/remove',
      admin: true,
      query: Type.Object(
        { id: Type.String({ minLength: 1, maxLength: 64, must: 'a silence id (kissmon silence list)' }) },
        { additionalProperties: false },
      ),
      handler: async (q) => {
        if (!(await answer<boolean>((a) => a.removeSilence(q.id)))) throw new HttpError(404, `no silence ${q.id}`);
        return { removed: q.id };
      },
    }),
    route({
      method: 'POST',
      path: '/alerts/test',
      admin: true,
      query: none,
      handler: async () => ({ results: await answer<ReceiverTestResult[]>((a) => a.test()) }),
    }),
  ];
}
