// The live feed's wire format (GET /api/events), shared by the server (src/http/live-feed.ts) and
// the page (src/dashboard/app.ts). Rows go as arrays in a fixed column order, not objects: with
// 10,000 bots the snapshot is less than half the bytes, and a heartbeat is ~40 bytes, not ~260.
import type { BotSnapshot } from '../actors/registry-messages.js';

/** A bot row as the page gets it: the registry's snapshot without the age (the page ages it itself). */
export type FeedBot = Omit<BotSnapshot, 'heartbeat_age_s'>;

/** Column order of a full row (`snapshot.bots`, `bots.upsert`). */
export const BOT_COLUMNS = [
  'channel',
  'pid',
  'status',
  'features',
  'registered_at',
  'last_seen',
  'last_heartbeat',
  'start_time',
  'cpu_pct',
  'cpu_pct_machine',
  'rss_mb',
  'sampled_at',
] as const satisfies readonly (keyof FeedBot)[];

/** Column order of a numbers-only change (`bots.numbers`): what the page shows that moves without a status change. */
export const NUMBER_COLUMNS = [
  'channel',
  'last_heartbeat',
  'cpu_pct',
  'rss_mb',
] as const satisfies readonly (keyof FeedBot)[];

export const encodeBot = (bot: FeedBot): unknown[] => BOT_COLUMNS.map((c) => bot[c]);
export const encodeNumbers = (bot: FeedBot): unknown[] => NUMBER_COLUMNS.map((c) => bot[c]);

export function decodeBot(row: unknown[]): FeedBot {
  const bot: Record<string, unknown> = {};
  BOT_COLUMNS.forEach((c, i) => (bot[c] = row[i]));
  return bot as unknown as FeedBot;
}

/** Applies a numbers-only change to the row it names; false when the page does not have that bot. */
export function applyNumbers(bots: Map<string, FeedBot>, row: unknown[]): boolean {
  const bot = bots.get(row[0] as string);
  if (!bot) return false;
  const updated: Record<string, unknown> = { ...bot };
  NUMBER_COLUMNS.forEach((c, i) => (updated[c] = row[i]));
  bots.set(bot.channel, updated as unknown as FeedBot);
  return true;
}
