const UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** What parseDuration accepts, as a regular expression source (also used in query schemas). */
export const DURATION_PATTERN = '^(\\d+(?:\\.\\d+)?)(ms|s|m|h|d|w)?$';

/** "7d", "12h", "30m", "90s", "250ms", or a bare number of seconds → milliseconds. */
export function parseDuration(text: string, what = 'duration'): number {
  const match = new RegExp(DURATION_PATTERN).exec(text.trim());
  if (!match)
    throw new TypeError(`${what} must look like 7d, 12h, 30m, 90s or a number of seconds; got ${JSON.stringify(text)}`);
  return Number(match[1]) * UNITS[match[2] ?? 's'];
}
