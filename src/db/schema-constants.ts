// The parts of the schema a thread needs without loading kysely (src/db/schema.ts re-exports them):
// the alerter reads and writes its tables with better-sqlite3 alone, and kysely would cost its
// thread heap for its whole life (docs/PERFORMANCE.md, "Numbers behind code choices").

/** The migration that creates the alerter's tables: it waits for it before it opens them. */
export const ALERTS_MIGRATION = '0005_alerts';

// Rows stamped in the same millisecond (a tick's worth of ingest) share one conversion: without
// this, toISOString was a visible share of the writer's CPU (docs/PERFORMANCE.md, "Numbers behind code choices").
let lastMs = Number.NaN;
let lastText = '';

/** Milliseconds since the epoch → the stored text form. */
export function isoTime(ms: number): string {
  if (ms !== lastMs) {
    lastText = new Date(ms).toISOString();
    lastMs = ms;
  }
  return lastText;
}
