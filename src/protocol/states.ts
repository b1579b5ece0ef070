// Bot lifecycle as the monitor sees it (docs/PROTOCOL.md draws it).
//
//            register / heartbeat(implicit)
//   (none) ─────────────────────────────▶ online ◀──── heartbeat ────┐
//                                          │   │                      │
//                         no heartbeat for │   └── unregister ──▶ offline
//                          stale-after     ▼
//                                        stale ───────────────────────┘
//   online/stale ── pid gone / pid reused ──▶ dead
//   (none)/offline/dead ── register from a pid that has already exited ──▶ dead
//   dead ── unregister from the same pid ──▶ offline   (it ended cleanly; the monitor saw the exit first)
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
  'exited_before_register', // register whose pid had already exited when the registry read it
  'replaced', // a register for the channel with a new pid while the old one was alive
  'unregistered', // clean unregister
] as const;
export type TransitionReason = (typeof TRANSITION_REASONS)[number];

/** Worst first, for views that put what needs a look on top (dashboard, `kissmon status --watch`). */
export const STATUS_SEVERITY: Record<BotStatus, number> = { dead: 0, stale: 1, online: 2, offline: 3 };
