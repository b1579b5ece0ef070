// kissbot-monitor-client — the bot side of protocol v1 (docs/CLIENT_GUIDE.md). No dependencies.
export {
  MonitorClient,
  type MonitorClientOptions,
  type MonitorClientStats,
  type ClientState,
} from './monitor-client.js';
export {
  registerWithMonitor,
  sendHeartbeat,
  unregisterFromMonitor,
  HeartbeatTask,
  type OneShotOptions,
} from './legacy.js';
export { defaultSocketPath, type LlmCallStatus, type LlmUsage } from './wire.js';
export type { Features } from './protocol.js';
