// The protocol's plain constants, without the schemas: light enough for the CLI's read commands
// to import (messages.ts re-exports them; TypeBox is ~250 ms of a client command's start).

export const PROTOCOL_VERSION = 1;

/** Where bots and the monitor meet unless told otherwise, and the variables that say otherwise. */
export const DEFAULT_SOCKET = '/tmp/kissbot_monitor.sock';
export const SOCKET_ENV = 'KISSBOT_MONITOR_SOCKET';
export const TOKEN_ENV = 'KISSBOT_MONITOR_TOKEN';

/** Limits a message must respect; the server enforces them and PROTOCOL.md documents them. */
export const LIMITS = {
  channelPattern: '^[A-Za-z0-9_]{1,64}$',
  maxPid: 2_147_483_647,
  maxTokens: 1_000_000_000,
  maxModelLength: 128,
  maxFeatureLength: 64,
  maxFeatures: 64,
  maxTokenLength: 256,
  maxLatencyMs: 86_400_000,
  maxUsageIdLength: 64,
  maxReasonLength: 64,
  maxProviderLength: 64,
  maxErrorTypeLength: 128,
  maxRequestIdLength: 128,
} as const;
