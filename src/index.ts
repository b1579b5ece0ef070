// kissbot-monitor — the package entry point: run a monitor in-process, resolve its config, and the
// protocol v1 types bots send. The bot side is `kissbot-monitor/client`, which is the client package
// kissbot-monitor-client (a bot that needs only the client installs that alone).
export { Monitor, type HealthReport } from './monitor.js';
export { defaultConfig, resolveConfig, type ConfigOverrides, type MonitorConfig } from './config.js';
export {
  PROTOCOL_VERSION,
  type BotMessage,
  type Features,
  type HeartbeatMessage,
  type LlmUsageMessage,
  type MessageType,
  type RegisterMessage,
  type UnregisterMessage,
} from './protocol/messages.js';
export type { BotStatus } from './protocol/states.js';
