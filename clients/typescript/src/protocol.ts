// Generated from src/protocol/messages.ts by src/protocol/generate-schema.ts (npm run build); do not edit.
// The protocol v1 types, limits and defaults the client needs, without the monitor's TypeBox schemas;
// test/protocol-drift.test.ts fails when this file or these types drift from src/protocol.

export const PROTOCOL_VERSION = 1;

/** Limits a message must respect; the monitor refuses a line that breaks one. */
export const LIMITS = {
  channelPattern: '^[A-Za-z0-9_]{1,64}$',
  maxPid: 2147483647,
  maxTokens: 1000000000,
  maxModelLength: 128,
  maxFeatureLength: 64,
  maxFeatures: 64,
  maxTokenLength: 256,
  maxLatencyMs: 86400000,
  maxUsageIdLength: 64,
  maxReasonLength: 64,
  maxProviderLength: 64,
  maxErrorTypeLength: 128,
  maxRequestIdLength: 128,
} as const;

/** A feature name: at most LIMITS.maxFeatureLength code points. */
export const FEATURE_KEY_PATTERN = '^(?:[\\uD800-\\uDBFF][\\uDC00-\\uDFFF]|[^\\uD800-\\uDBFF]|[\\uD800-\\uDBFF](?![\\uDC00-\\uDFFF])){0,64}$';

export const DEFAULT_SOCKET = '/tmp/kissbot_monitor.sock';
export const SOCKET_ENV = 'KISSBOT_MONITOR_SOCKET';
export const TOKEN_ENV = 'KISSBOT_MONITOR_TOKEN';

export interface RegisterMessage {
  type: 'register';
  /** the bot key: 1-64 chars of [A-Za-z0-9_] */
  channel: string;
  /** OS process id of the bot */
  pid: number;
  features?: Record<string, boolean>;
  /** protocol version the client speaks */
  v?: number;
  /** client send time, ms since the epoch */
  ts?: number;
  /** auth token, when the monitor runs with --auth-tokens */
  token?: string;
}

export interface HeartbeatMessage {
  type: 'heartbeat';
  /** the bot key: 1-64 chars of [A-Za-z0-9_] */
  channel: string;
  /** OS process id of the bot */
  pid: number;
  /** protocol version the client speaks */
  v?: number;
  /** client send time, ms since the epoch */
  ts?: number;
  /** auth token, when the monitor runs with --auth-tokens */
  token?: string;
}

export interface UnregisterMessage {
  type: 'unregister';
  /** the bot key: 1-64 chars of [A-Za-z0-9_] */
  channel: string;
  /** OS process id of the bot */
  pid: number;
  /** why the bot stops, e.g. "deploy": a planned stop raises no alert */
  reason?: string;
  /** protocol version the client speaks */
  v?: number;
  /** client send time, ms since the epoch */
  ts?: number;
  /** auth token, when the monitor runs with --auth-tokens */
  token?: string;
}

export interface LlmUsageMessage {
  type: 'llm_usage';
  /** the bot key: 1-64 chars of [A-Za-z0-9_] */
  channel: string;
  model: string;
  feature: string;
  tokens_in: number;
  tokens_out: number;
  latency_ms?: number;
  /** client-generated id of this call, kept when re-sent: the monitor stores each id once */
  id?: string;
  /** input tokens served from the provider's cache; part of tokens_in (at most tokens_in) */
  tokens_cached?: number;
  /** output tokens spent on reasoning; part of tokens_out (at most tokens_out) */
  tokens_reasoning?: number;
  /** who served the call: openai, anthropic, google, mistral, ... */
  provider?: string;
  /** outcome of the call; absent means ok */
  status?: 'ok' | 'error' | 'timeout' | 'rate_limited';
  /** the error class or code when status is not ok */
  error_type?: string;
  /** the provider's id of the response */
  request_id?: string;
  /** protocol version the client speaks */
  v?: number;
  /** client send time, ms since the epoch */
  ts?: number;
  /** auth token, when the monitor runs with --auth-tokens */
  token?: string;
}

export type Features = NonNullable<RegisterMessage['features']>;
export type BotMessage = RegisterMessage | HeartbeatMessage | UnregisterMessage | LlmUsageMessage;
export type MessageType = BotMessage['type'];
