// The Link's wire format, imported by both sides of a thread boundary (src/actors/link.ts) and by
// contracts that send column runs themselves (sampler-messages.ts).

/**
 * A batch on the wire: runs of items with the same own keys in the same order, one array per key.
 * Structured clone writes every object's property names again; arrays of strings and numbers it
 * copies flat, so the sender's clone costs less and the receiver (the db-writer, for llm_usage rows)
 * deserializes about half as fast again (docs/PERFORMANCE.md, "Data plane"). Items are plain
 * objects (actor contracts); what a key holds (nested objects included) is cloned as it is.
 */
export interface ColumnRun {
  /** null: a run of items that are not plain objects, sent as they are in `columns[0]`. */
  keys: string[] | null;
  columns: unknown[][];
  count: number;
}
