// Protocol v1 lines as the client writes them. Typed from protocol.ts, generated from the schemas the
// monitor validates with (src/protocol/messages.ts), so a field renamed there breaks the client's
// build, not the fleet.
import { randomUUID } from 'node:crypto';
import {
  DEFAULT_SOCKET,
  FEATURE_KEY_PATTERN,
  LIMITS,
  PROTOCOL_VERSION,
  SOCKET_ENV,
  TOKEN_ENV,
  type Features,
  type HeartbeatMessage,
  type LlmUsageMessage,
  type RegisterMessage,
  type UnregisterMessage,
} from './protocol.js';

/** One LLM call as the bot reports it (camelCase here, snake_case on the wire). */
export interface LlmUsage {
  model: string;
  feature: string;
  tokensIn: number;
  tokensOut: number;
  latencyMs?: number;
  /**
   * Identifies this call so the monitor stores it once even if it is sent twice (1-64 chars).
   * Default: a random UUID, generated once; a line re-sent after a reconnect keeps it.
   */
  id?: string;
  /** Input tokens served from the provider's cache: part of tokensIn (at most tokensIn). */
  tokensCached?: number;
  /** Output tokens spent on reasoning: part of tokensOut (at most tokensOut). */
  tokensReasoning?: number;
  /** Who served the call: openai, anthropic, google, mistral, ... */
  provider?: string;
  /** Outcome of the call; absent means ok. */
  status?: LlmCallStatus;
  /** The error class or code when status is not ok. */
  errorType?: string;
  /** The provider's id of the response. */
  requestId?: string;
}

export type LlmCallStatus = NonNullable<LlmUsageMessage['status']>;
const STATUSES: readonly string[] = ['ok', 'error', 'timeout', 'rate_limited'] satisfies LlmCallStatus[];

/** Who is speaking: fixed for a client's lifetime. */
export interface Identity {
  readonly channel: string;
  readonly pid: number;
  readonly token: string | undefined;
}

const CHANNEL = new RegExp(LIMITS.channelPattern);
const FEATURE_KEY = new RegExp(FEATURE_KEY_PATTERN);

/** `KISSBOT_MONITOR_SOCKET`, else /tmp/kissbot_monitor.sock — read at call time, like the monitor does. */
export function defaultSocketPath(): string {
  return process.env[SOCKET_ENV] || DEFAULT_SOCKET;
}

/** An explicit token wins; otherwise `KISSBOT_MONITOR_TOKEN`, so a fleet can turn auth on without code changes. */
export function defaultToken(token: string | undefined): string | undefined {
  return token ?? (process.env[TOKEN_ENV] || undefined);
}

export function isChannel(value: unknown): value is string {
  return typeof value === 'string' && CHANNEL.test(value);
}

export function isPid(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 1 && (value as number) <= LIMITS.maxPid;
}

export function isToken(value: unknown): value is string | undefined {
  return value === undefined || (typeof value === 'string' && value.length <= LIMITS.maxTokenLength);
}

/** Why `features` would be refused by the monitor, or null when it is fine. */
export function featuresProblem(features: unknown): string | null {
  if (features === null || typeof features !== 'object' || Array.isArray(features))
    return 'must be an object of booleans';
  const keys = Object.keys(features);
  if (keys.length > LIMITS.maxFeatures) return `must have at most ${LIMITS.maxFeatures} entries`;
  for (const key of keys) {
    if (!FEATURE_KEY.test(key)) return `keys must be at most ${LIMITS.maxFeatureLength} characters`;
    if (typeof (features as Record<string, unknown>)[key] !== 'boolean') return `.${key} must be true or false`;
  }
  return null;
}

const isTokenCount = (v: unknown) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= LIMITS.maxTokens;

/** Why the monitor would refuse this llm_usage (it would count it `invalid_fields`), or null. */
export function usageProblem(u: LlmUsage): string | null {
  if (u === null || typeof u !== 'object') return 'usage must be an object';
  if (typeof u.model !== 'string' || u.model.length < 1 || u.model.length > LIMITS.maxModelLength)
    return `model must be 1-${LIMITS.maxModelLength} characters`;
  if (typeof u.feature !== 'string' || u.feature.length < 1 || u.feature.length > LIMITS.maxFeatureLength)
    return `feature must be 1-${LIMITS.maxFeatureLength} characters`;
  if (!isTokenCount(u.tokensIn)) return `tokensIn must be an integer from 0 to ${LIMITS.maxTokens}`;
  if (!isTokenCount(u.tokensOut)) return `tokensOut must be an integer from 0 to ${LIMITS.maxTokens}`;
  if (
    u.latencyMs !== undefined &&
    !(typeof u.latencyMs === 'number' && u.latencyMs >= 0 && u.latencyMs <= LIMITS.maxLatencyMs)
  ) {
    return `latencyMs must be a number from 0 to ${LIMITS.maxLatencyMs}`;
  }
  if (u.id !== undefined && !(typeof u.id === 'string' && u.id.length >= 1 && u.id.length <= LIMITS.maxUsageIdLength)) {
    return `id must be 1-${LIMITS.maxUsageIdLength} characters`;
  }
  if (u.tokensCached !== undefined && !(isTokenCount(u.tokensCached) && u.tokensCached <= u.tokensIn))
    return 'tokensCached must be an integer from 0 to tokensIn';
  if (u.tokensReasoning !== undefined && !(isTokenCount(u.tokensReasoning) && u.tokensReasoning <= u.tokensOut))
    return 'tokensReasoning must be an integer from 0 to tokensOut';
  const text = (v: unknown, max: number) =>
    v === undefined || (typeof v === 'string' && v.length >= 1 && v.length <= max);
  if (!text(u.provider, LIMITS.maxProviderLength)) return `provider must be 1-${LIMITS.maxProviderLength} characters`;
  if (u.status !== undefined && !STATUSES.includes(u.status)) return `status must be one of ${STATUSES.join(', ')}`;
  if (!text(u.errorType, LIMITS.maxErrorTypeLength))
    return `errorType must be 1-${LIMITS.maxErrorTypeLength} characters`;
  if (!text(u.requestId, LIMITS.maxRequestIdLength))
    return `requestId must be 1-${LIMITS.maxRequestIdLength} characters`;
  return null;
}

// Each builder fills the Static type of its schema, so the compiler checks the wire shape; `v` and
// `ts` are the optional extensions every message may carry, `token` only when auth is configured.

export function registerLine(id: Identity, features: Features | undefined): string {
  const msg: RegisterMessage = {
    type: 'register',
    channel: id.channel,
    pid: id.pid,
    v: PROTOCOL_VERSION,
    ts: Date.now(),
  };
  if (features !== undefined) msg.features = features;
  if (id.token !== undefined) msg.token = id.token;
  return JSON.stringify(msg) + '\n';
}

export function heartbeatLine(id: Identity): string {
  const msg: HeartbeatMessage = {
    type: 'heartbeat',
    channel: id.channel,
    pid: id.pid,
    v: PROTOCOL_VERSION,
    ts: Date.now(),
  };
  if (id.token !== undefined) msg.token = id.token;
  return JSON.stringify(msg) + '\n';
}

export function unregisterLine(id: Identity): string {
  const msg: UnregisterMessage = {
    type: 'unregister',
    channel: id.channel,
    pid: id.pid,
    v: PROTOCOL_VERSION,
    ts: Date.now(),
  };
  if (id.token !== undefined) msg.token = id.token;
  return JSON.stringify(msg) + '\n';
}

export function llmUsageLine(id: Identity, u: LlmUsage): string {
  const msg: LlmUsageMessage = {
    type: 'llm_usage',
    channel: id.channel,
    model: u.model,
    feature: u.feature,
    tokens_in: u.tokensIn,
    tokens_out: u.tokensOut,
    // The line is built once and re-queued as is after a reconnect, so a re-send keeps this id.
    id: u.id ?? randomUUID(),
    v: PROTOCOL_VERSION,
    ts: Date.now(),
  };
  if (u.latencyMs !== undefined) msg.latency_ms = u.latencyMs;
  if (u.tokensCached !== undefined) msg.tokens_cached = u.tokensCached;
  if (u.tokensReasoning !== undefined) msg.tokens_reasoning = u.tokensReasoning;
  if (u.provider !== undefined) msg.provider = u.provider;
  if (u.status !== undefined) msg.status = u.status;
  if (u.errorType !== undefined) msg.error_type = u.errorType;
  if (u.requestId !== undefined) msg.request_id = u.requestId;
  if (id.token !== undefined) msg.token = id.token;
  return JSON.stringify(msg) + '\n';
}
