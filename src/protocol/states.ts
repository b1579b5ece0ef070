// Bot lifecycle as the monitor sees it (docs/PROTOCOL.md draws it).
//
//            register / heartbeat(implicit)
//   (none) ─────────────────────────────▶ online ◀──── heartbeat ────┐
//                                          │   │                      │
//                         no heartbeat for │   └── unregister ──▶ offline
//                          stale-after     ▼
//                                        stale ───────────────────────┘
//   online/stale ── pid gone / pid reused ──▶ dead
//   offline/dead ── register ──▶ online
export const BOT_STATUSES = ['online', 'stale', 'dead', 'offline'] as const;
export type BotStatus = (typeof BOT_STATUSES)[number];

/** Why a bot changed state; stored with every bot_events row. */
export const TRANSITION_REASONS = [
  'registered', // register message
  'implicit_register', // heartbeat from a channel the monitor did not know, pid alive
  'heartbeat_resumed', // stale → online
  'no_heartbeat', // online → stale
  'process_exited', // pid no longer exists
  'pid_reused', // pid now belongs to another process (start time changed)
  'replaced', // a register for the channel with a new pid while the old one was alive
  'unregistered', // clean unregister
] as const;
export type TransitionReason = (typeof TRANSITION_REASONS)[number];
