// A compact latency histogram for the rollups: buckets growing by 25 % from 1 ms (bucket 0 holds
// everything under 1 ms), so a percentile estimated from it is within one bucket (±12.5 %) of the
// exact one, clamped to the bucket's observed min/max. Stored sparse: 5 bytes (u8 bucket, u32le
// count) per non-empty bucket, in bucket order; a typical hour of one model fills 10-20 buckets.
//
// SQLite sees two functions, registered on every connection that reads or writes rollups:
//   kissmon_hist_merge(a, b)  scalar: the writer's upsert adds a transaction's histogram to the row's
//   kissmon_hist_agg(h)       aggregate: a report merges the histograms of a group
import type BetterSqlite3 from 'better-sqlite3';

const GROWTH = 1.25;
const LOG_GROWTH = Math.log(GROWTH);
/** 1.25^90 ≈ 5.2e8 ms: past protocol's maxLatencyMs (one day). */
export const BUCKETS = 92;
const ENTRY = 5;

function bucketByLog(latencyMs: number): number {
  if (!(latencyMs >= 1)) return 0;
  return Math.min(BUCKETS - 1, Math.floor(Math.log(latencyMs) / LOG_GROWTH) + 1);
}

/** bucketByLog of every whole ms below 65,536 (what bots report), computed once. */
const BUCKET_OF_WHOLE_MS = Uint8Array.from({ length: 65_536 }, (_, ms) => bucketByLog(ms));

export function bucketOf(latencyMs: number): number {
  // A table read instead of Math.log per rollup row (bench: ~1 % of the writer's CPU per row); any
  // other value (a fraction, ≥ 65,536, NaN) reads undefined and takes the formula, so both agree.
  return BUCKET_OF_WHOLE_MS[latencyMs] ?? bucketByLog(latencyMs);
}

/** [low, high) of a bucket in ms. */
function bucketBounds(bucket: number): [number, number] {
  return bucket === 0 ? [0, 1] : [GROWTH ** (bucket - 1), GROWTH ** bucket];
}

export type DenseHistogram = Float64Array;

export const emptyHistogram = (): DenseHistogram => new Float64Array(BUCKETS);

export function addTo(dense: DenseHistogram, encoded: Uint8Array | null): void {
  if (encoded === null) return;
  // Byte by byte, like encode(): a 90-day report decodes ~1.5M entries, and DataView reads were 13 % of its CPU.
  for (let i = 0; i + ENTRY <= encoded.length; i += ENTRY)
    dense[encoded[i]] += (encoded[i + 1] | (encoded[i + 2] << 8) | (encoded[i + 3] << 16)) + encoded[i + 4] * 0x1000000;
}

export function encode(dense: DenseHistogram): Buffer | null {
  let n = 0;
  for (let b = 0; b < BUCKETS; b++) if (dense[b] > 0) n++;
  if (n === 0) return null;
  // Byte by byte: the writer encodes every rollup row it writes (Buffer.writeUInt32LE cost 2 µs a row).
  const out = Buffer.allocUnsafe(n * ENTRY);
  let at = 0;
  for (let b = 0; b < BUCKETS; b++) {
    const count = dense[b];
    if (count === 0) continue;
    const c = count > 0xffffffff ? 0xffffffff : count;
    out[at] = b;
    out[at + 1] = c & 0xff;
    out[at + 2] = (c >>> 8) & 0xff;
    out[at + 3] = (c >>> 16) & 0xff;
    out[at + 4] = c >>> 24;
    at += ENTRY;
  }
  return out;
}

/**
 * The `fraction` percentile (0..1), linear between the nearest ranks like the exact report, with
 * values inside a bucket taken as evenly spread; clamped to [min, max]. null for no calls.
 */
export function estimatePercentile(
  dense: DenseHistogram,
  fraction: number,
  min: number | null,
  max: number | null,
): number | null {
  let total = 0;
  for (const count of dense) total += count;
  if (total === 0) return null;
  const rank = fraction * (total - 1); // 0-based rank, as percentile_cont
  let seen = 0;
  for (let b = 0; b < BUCKETS; b++) {
    const count = dense[b];
    if (count === 0) continue;
    if (rank < seen + count) {
      const [low, high] = bucketBounds(b);
      const lo = Math.max(low, min ?? low);
      const hi = Math.min(high, max ?? high);
      const value = count === 1 ? (lo + hi) / 2 : lo + ((rank - seen) / (count - 1)) * (hi - lo);
      return Math.round(Math.min(Math.max(value, min ?? value), max ?? value) * 100) / 100;
    }
    seen += count;
  }
  return max;
}

/**
 * Two encoded histograms added: a merge of the two sorted entry lists, no dense array. The writer's
 * upsert calls it once per rollup key and transaction (bench: the dense version made the rollups
 * cost more than the rows they summed).
 */
export function mergeEncoded(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length + b.length);
  let i = 0;
  let j = 0;
  let o = 0;
  while (i < a.length || j < b.length) {
    const ka = i < a.length ? a[i] : BUCKETS;
    const kb = j < b.length ? b[j] : BUCKETS;
    if (ka === kb) {
      out[o] = ka;
      out.writeUInt32LE(Math.min(a.readUInt32LE(i + 1) + b.readUInt32LE(j + 1), 0xffffffff), o + 1);
      i += ENTRY;
      j += ENTRY;
    } else if (ka < kb) {
      a.copy(out, o, i, i + ENTRY);
      i += ENTRY;
    } else {
      b.copy(out, o, j, j + ENTRY);
      j += ENTRY;
    }
    o += ENTRY;
  }
  return out.subarray(0, o);
}

export function registerHistogramFunctions(sqlite: BetterSqlite3.Database): void {
  sqlite.function('kissmon_hist_merge', { deterministic: true }, (a: unknown, b: unknown) => {
    if (a === null) return b;
    if (b === null) return a;
    return mergeEncoded(a as Buffer, b as Buffer);
  });
  sqlite.aggregate('kissmon_hist_agg', {
    start: () => emptyHistogram(),
    // Per rollup row of a report: plain index reads, no DataView (this runs ~100k times a query).
    step: (dense: DenseHistogram, h: unknown) => {
      if (h === null) return dense;
      const b = h as Buffer;
      for (let i = 0; i + ENTRY <= b.length; i += ENTRY)
        dense[b[i]] += b[i + 1] + b[i + 2] * 0x100 + b[i + 3] * 0x10000 + b[i + 4] * 0x1000000;
      return dense;
    },
    result: (dense: DenseHistogram) => encode(dense),
  });
}
