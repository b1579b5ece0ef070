// The expected fleet: `expected` in the settings is a list of channels or the path of a file of
// them (one per line, `#` comments), re-read on SIGHUP. An expected channel the registry does not
// know is `missing` in `kissmon status` and raises BotMissing after alerts.missingGraceMs.
import { readFileSync } from 'node:fs';
import type { BotSnapshot } from '../actors/registry-messages.js';
import { MonitorError } from '../errors.js';
import { LIMITS } from '../protocol/constants.js';

export class ExpectedFileError extends MonitorError {
  constructor(message: string) {
    super('ERR_EXPECTED_FILE', message);
  }
}

/** A `kissmon status` row for an expected channel that is not registered. */
export interface MissingBot extends Omit<BotSnapshot, 'status' | 'pid' | 'registered_at' | 'last_seen'> {
  status: 'missing';
  pid: null;
  registered_at: null;
  last_seen: null;
}

export type StatusRow = BotSnapshot | MissingBot;

/** The channels `expected` names; a file with a bad line is an ExpectedFileError naming the line. */
export function loadExpected(expected: string[] | string): string[] {
  if (Array.isArray(expected)) return [...new Set(expected)];
  let text: string;
  try {
    text = readFileSync(expected, 'utf8');
  } catch (err) {
    throw new ExpectedFileError(`cannot read the expected fleet file ${expected}: ${(err as Error).message}`);
  }
  const channel = new RegExp(LIMITS.channelPattern);
  const channels = new Set<string>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') return;
    if (!channel.test(line))
      throw new ExpectedFileError(
        `${expected}:${i + 1}: ${JSON.stringify(line)} is not a channel (1-64 chars of [A-Za-z0-9_])`,
      );
    channels.add(line);
  });
  return [...channels];
}

/** The registry's bots, plus a `missing` row for each expected channel it does not know. */
export function withMissing(bots: BotSnapshot[], expected: string[]): StatusRow[] {
  const known = new Set(bots.map((b) => b.channel));
  const missing: MissingBot[] = expected
    .filter((c) => !known.has(c))
    .map((channel) => ({
      channel,
      status: 'missing',
      pid: null,
      features: null,
      registered_at: null,
      last_seen: null,
      last_heartbeat: null,
      heartbeat_age_s: null,
      start_time: null,
      cpu_pct: null,
      cpu_pct_machine: null,
      rss_mb: null,
      sampled_at: null,
    }));
  return [...bots, ...missing];
}
