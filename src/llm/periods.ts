// Calendar periods (day, ISO week from Monday, month) in an IANA time zone, as UTC instants.
export type Period = 'day' | 'week' | 'month';

const formatters = new Map<string, Intl.DateTimeFormat>();

function wallClock(
  ms: number,
  timeZone: string,
): { y: number; m: number; d: number; h: number; min: number; s: number; weekday: number } {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, f);
  }
  const parts: Record<string, number> = {};
  for (const p of f.formatToParts(ms)) if (p.type !== 'literal') parts[p.type] = Number(p.value);
  const y = parts.year,
    m = parts.month,
    d = parts.day;
  return {
    y,
    m,
    d,
    h: parts.hour,
    min: parts.minute,
    s: parts.second,
    weekday: (new Date(Date.UTC(y, m - 1, d)).getUTCDay() + 6) % 7,
  };
}

/** Offset of `timeZone` from UTC at `ms`, in ms (wall clock minus UTC). */
function offsetAt(ms: number, timeZone: string): number {
  const w = wallClock(ms, timeZone);
  return Date.UTC(w.y, w.m - 1, w.d, w.h, w.min, w.s) - Math.floor(ms / 1000) * 1000;
}

/** The UTC instant of local midnight on the date y-m-d in `timeZone`. */
function localMidnight(y: number, m: number, d: number, timeZone: string): number {
  const guess = Date.UTC(y, m - 1, d);
  const first = guess - offsetAt(guess, timeZone);
  return guess - offsetAt(first, timeZone); // again at the found instant: right across a DST change
}

/** Start of the period that `ms` falls in. */
export function periodStart(period: Period, ms: number, timeZone: string): number {
  const w = wallClock(ms, timeZone);
  if (period === 'month') return localMidnight(w.y, w.m, 1, timeZone);
  if (period === 'week') {
    const monday = new Date(Date.UTC(w.y, w.m - 1, w.d - w.weekday));
    return localMidnight(monday.getUTCFullYear(), monday.getUTCMonth() + 1, monday.getUTCDate(), timeZone);
  }
  return localMidnight(w.y, w.m, w.d, timeZone);
}

/** Start of the period after the one starting at `start` (a day is 23-25 h, a month 28-31 days). */
export function nextPeriodStart(period: Period, start: number, timeZone: string): number {
  const step = { day: 26 * 3_600_000, week: 7 * 86_400_000 + 2 * 3_600_000, month: 32 * 86_400_000 }[period];
  return periodStart(period, start + step, timeZone);
}

/** The next instant at or after `ms` when the local hour in `timeZone` is `hour`:00. */
export function nextLocalHour(hour: number, ms: number, timeZone: string): number {
  let day = periodStart('day', ms, timeZone);
  for (let i = 0; i < 3; i++) {
    const w = wallClock(day, timeZone);
    const at = localMidnight(w.y, w.m, w.d, timeZone) + hour * 3_600_000;
    if (at >= ms) return at;
    day = nextPeriodStart('day', day, timeZone);
  }
  return ms + 86_400_000;
}
