// Protocol v1: the one definition of what bots send. The server validates with these schemas,
// the TypeScript client is typed from them, and docs/PROTOCOL.md describes them.
import { Type, type Static } from '@sinclair/typebox';

import { LIMITS } from './constants.js';

export { DEFAULT_SOCKET, LIMITS, PROTOCOL_VERSION, SOCKET_ENV, TOKEN_ENV } from './constants.js';

/** Outcome of an LLM call (`status` of llm_usage); absent means `ok`. */
export const LLM_CALL_STATUSES = ['ok', 'error', 'timeout', 'rate_limited'] as const;
export type LlmCallStatus = (typeof LLM_CALL_STATUSES)[number];

const Channel = Type.String({ pattern: LIMITS.channelPattern, description: 'the bot key: 1-64 chars of [A-Za-z0-9_]' });
const Pid = Type.Integer({ minimum: 1, maximum: LIMITS.maxPid, description: 'OS process id of the bot' });
const TokenCount = Type.Integer({ minimum: 0, maximum: LIMITS.maxTokens });

/** Optional extensions every message may carry; an old client that omits them still works. */
const Extensions = {
  v: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'protocol version the client speaks' })),
  ts: Type.Optional(Type.Number({ minimum: 0, description: 'client send time, ms since the epoch' })),
  token: Type.Optional(
    Type.String({
      maxLength: LIMITS.maxTokenLength,
      description: 'auth token, when the monitor runs with --auth-tokens',
    }),
  ),
};

/**
 * A feature name: at most maxFeatureLength characters (Unicode code points, as JSON Schema and
 * Python count them). A pattern, because Type.Record keeps only a key schema's `pattern` (a
 * `maxLength` there is silently dropped). TypeBox compiles it without the `u` flag, so a character
 * is a surrogate pair, any other code unit but a high surrogate, or a lone high surrogate; the three
 * never overlap, so a long key cannot make the match backtrack, and with `u` it counts the same.
 */
export const FEATURE_KEY_PATTERN = `^(?:[\\uD800-\\uDBFF][\\uDC00-\\uDFFF]|[^\\uD800-\\uDBFF]|[\\uD800-\\uDBFF](?![\\uDC00-\\uDFFF])){0,${LIMITS.maxFeatureLength}}$`;

// additionalProperties: false, or a key that fails the pattern would be let through unchecked.
export const Features = Type.Record(Type.String({ pattern: FEATURE_KEY_PATTERN }), Type.Boolean(), {
  maxProperties: LIMITS.maxFeatures,
  additionalProperties: false,
});

export const RegisterMessage = Type.Object({
  type: Type.Literal('register'),
  channel: Channel,
  pid: Pid,
  features: Type.Optional(Features),
  ...Extensions,
});

export const HeartbeatMessage = Type.Object({
  type: Type.Literal('heartbeat'),
  channel: Channel,
  pid: Pid,
  ...Extensions,
});

export const UnregisterMessage = Type.Object({
  type: Type.Literal('unregister'),
  channel: Channel,
  pid: Pid,
  reason: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: LIMITS.maxReasonLength,
      description: 'why the bot stops, e.g. "deploy": a planned stop raises no alert',
    }),
  ),
  ...Extensions,
});

export const LlmUsageMessage = Type.Object({
  type: Type.Literal('llm_usage'),
  channel: Channel,
  model: Type.String({ minLength: 1, maxLength: LIMITS.maxModelLength }),
  feature: Type.String({ minLength: 1, maxLength: LIMITS.maxFeatureLength }),
  tokens_in: TokenCount,
  tokens_out: TokenCount,
  latency_ms: Type.Optional(Type.Number({ minimum: 0, maximum: LIMITS.maxLatencyMs })),
  id: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: LIMITS.maxUsageIdLength,
      description: 'client-generated id of this call, kept when re-sent: the monitor stores each id once',
    }),
  ),
  // Accounting details (all optional; docs/LLM_USAGE.md). The two token parts are checked against
  // their totals after the schema (decode.ts): JSON Schema cannot compare two fields.
  tokens_cached: Type.Optional(
    Type.Integer({
      minimum: 0,
      maximum: LIMITS.maxTokens,
      description: "input tokens served from the provider's cache; part of tokens_in (at most tokens_in)",
    }),
  ),
  tokens_reasoning: Type.Optional(
    Type.Integer({
      minimum: 0,
      maximum: LIMITS.maxTokens,
      description: 'output tokens spent on reasoning; part of tokens_out (at most tokens_out)',
    }),
  ),
  provider: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: LIMITS.maxProviderLength,
      description: 'who served the call: openai, anthropic, google, mistral, ...',
    }),
  ),
  status: Type.Optional(
    Type.Union(
      LLM_CALL_STATUSES.map((s) => Type.Literal(s)),
      { description: 'outcome of the call; absent means ok' },
    ),
  ),
  error_type: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: LIMITS.maxErrorTypeLength,
      description: 'the error class or code when status is not ok',
    }),
  ),
  request_id: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: LIMITS.maxRequestIdLength,
      description: "the provider's id of the response",
    }),
  ),
  ...Extensions,
});

export type RegisterMessage = Static<typeof RegisterMessage>;
export type HeartbeatMessage = Static<typeof HeartbeatMessage>;
export type UnregisterMessage = Static<typeof UnregisterMessage>;
export type LlmUsageMessage = Static<typeof LlmUsageMessage>;
export type Features = Static<typeof Features>;
export type BotMessage = RegisterMessage | HeartbeatMessage | UnregisterMessage | LlmUsageMessage;
export type MessageType = BotMessage['type'];

export const MESSAGE_SCHEMAS = {
  register: RegisterMessage,
  heartbeat: HeartbeatMessage,
  unregister: UnregisterMessage,
  llm_usage: LlmUsageMessage,
} as const;
