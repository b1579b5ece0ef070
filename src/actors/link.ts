// A reliable, batched, one-way-per-direction channel over a MessagePort.
//
//   send(item) ─▶ current batch ─(one postMessage per 1 ms or per busy tick)─▶ peer.onBatch(items, ack)
//                      │                                               │
//                 unacked batches ◀──────────── ack(seq) ──────────────┘
//
// Batches stay in `unacked` until the peer acknowledges them (the db-writer only after COMMIT).
// When the peer crashes the supervisor hands us a new port (`attach`) and every unacked batch is
// re-sent in order. The receiver drops batches it already handled (per-sender sequence numbers;
// the writer persists them so a restarted writer does not insert a row twice). Everything held is
// bounded by `maxPending`: past it `send` refuses the item (returns false) and the item is dropped,
// not held. Drops are counted (`stats().dropped`, in every actor's health `dropped`; on the main
// thread `dropped_overflow`, also logged). Ingest stops reading long before the bound
// (PAUSE_READING_AT in src/server/ingest-server.ts), so the bound is a last guard that keeps memory finite.
import { randomUUID } from 'node:crypto';
import type { MessagePort } from 'node:worker_threads';
import type { ColumnRun } from './link-messages.js';

type Envelope =
  | { type: 'batch'; from: string; seq: number; cols: ColumnRun[] }
  | { type: 'ack'; from: string; seq: number }
  | { type: 'signal'; body: unknown };

/**
 * A batch is posted 1 ms after its first item, or at the end of the event-loop turn once it holds
 * this many. Under one-shot load a turn carries about one message, so posting every turn cost one
 * postMessage per item; the 1 ms timer gathers them at a cost of at most 1 ms latency (measured:
 * docs/PERFORMANCE.md, Findings 2).
 */
const BUSY_BATCH = 64;

/** Items → runs of one shape; a key whose value is undefined is kept (as the item had it). */
export function toColumns(items: readonly unknown[]): ColumnRun[] {
  const runs: ColumnRun[] = [];
  let run: ColumnRun | null = null;
  for (const item of items) {
    const obj = item as Record<string, unknown>;
    if (obj === null || typeof obj !== 'object' || Object.getPrototypeOf(obj) !== Object.prototype) {
      if (run === null || run.keys !== null) runs.push((run = { keys: null, columns: [[]], count: 0 }));
      run.columns[0].push(item);
      run.count++;
      continue;
    }
    let same = run !== null && run.keys !== null;
    if (same) {
      const keys = run!.keys!;
      let i = 0;
      for (const key in obj) {
        if (key !== keys[i++]) {
          same = false;
          break;
        }
      }
      if (i !== keys.length) same = false;
    }
    if (!same) {
      const keys: string[] = [];
      for (const key in obj) keys.push(key);
      run = { keys, columns: keys.map(() => []), count: 0 };
      runs.push(run);
    }
    const { keys, columns } = run! as { keys: string[]; columns: unknown[][] };
    for (let j = 0; j < keys.length; j++) columns[j].push(obj[keys[j]]);
    run!.count++;
  }
  return runs;
}

/** Runs → items, each with its keys in the order it was sent. */
export function fromColumns(runs: readonly ColumnRun[]): unknown[] {
  const items: unknown[] = [];
  for (const { keys, columns, count } of runs) {
    if (keys === null) {
      for (const item of columns[0]) items.push(item);
      continue;
    }
    for (let i = 0; i < count; i++) {
      const obj: Record<string, unknown> = {};
      for (let j = 0; j < keys.length; j++) obj[keys[j]] = columns[j][i];
      items.push(obj);
    }
  }
  return items;
}

export interface LinkOptions<In> {
  /** Items held (queued + unacknowledged) before new ones are refused. */
  maxPending?: number;
  /** A batch is posted early once it holds this many items. */
  maxBatch?: number;
  /** Called once per incoming batch; call `ack()` when its items are durably handled. */
  onBatch?: (items: In[], ack: () => void, from: string, seq: number) => void;
  /** Unreliable side messages (no ack, no resend), e.g. periodic samples. */
  onSignal?: (body: unknown) => void;
}

export interface LinkStats {
  pending: number;
  dropped: number;
  sentItems: number;
  receivedItems: number;
  resentBatches: number;
}

export class Link<Out, In = never> {
  readonly name: string;
  /** This sender's identity for de-duplication; new per Link instance (so per actor incarnation). */
  readonly sender: string;
  #port: MessagePort | null = null;
  #maxPending: number;
  #maxBatch: number;
  #onBatch: LinkOptions<In>['onBatch'];
  #onSignal: LinkOptions<In>['onSignal'];
  #seq = 0;
  #current: Out[] = [];
  /**
   * Posted, not yet acknowledged: kept as the column runs that were posted, not as the items. The
   * items then die young (an llm_usage row waits ~100 ms for its commit, long enough to be promoted
   * to the old generation, where 400k of them stayed as garbage for lack of a major GC after a burst:
   * docs/PERFORMANCE.md, "Numbers behind code choices"); a re-send posts the same runs again.
   */
  #unacked: { seq: number; count: number; cols: ColumnRun[] }[] = [];
  #pending = 0;
  #flushTimer: NodeJS.Timeout | null = null;
  #flushImmediate: NodeJS.Immediate | null = null;
  readonly #flushNow = () => this.flush();
  #delivered = new Map<string, number>();
  /** Highest seq the peer acknowledged. */
  #ackedSeq = 0;
  /** Called once the peer has acknowledged everything up to `seq` (in seq order). */
  #ackWaiters: { seq: number; wake: () => void }[] = [];
  #stats: LinkStats = { pending: 0, dropped: 0, sentItems: 0, receivedItems: 0, resentBatches: 0 };

  constructor(name: string, options: LinkOptions<In> = {}) {
    this.name = name;
    this.sender = `${name}:${randomUUID()}`;
    this.#maxPending = options.maxPending ?? 500_000;
    this.#maxBatch = options.maxBatch ?? 4096;
    this.#onBatch = options.onBatch;
    this.#onSignal = options.onSignal;
  }

  /** Swaps in a new port (first wiring, or a restarted peer) and re-sends what was not acknowledged. */
  attach(port: MessagePort): void {
    this.detach();
    this.#port = port;
    port.on('message', (msg: Envelope) => this.#receive(port, msg));
    for (const batch of this.#unacked) {
      port.postMessage({ type: 'batch', from: this.sender, seq: batch.seq, cols: batch.cols } satisfies Envelope);
      this.#stats.resentBatches++;
    }
  }

  detach(): void {
    if (!this.#port) return;
    this.#port.removeAllListeners('message');
    this.#port.close();
    this.#port = null;
  }

  /** Queues one item for the next batch; false when the pending bound is reached (item dropped, counted). */
  send(item: Out): boolean {
    if (this.#pending >= this.#maxPending) {
      this.#stats.dropped++;
      return false;
    }
    this.#current.push(item);
    this.#pending++;
    const size = this.#current.length;
    if (size >= this.#maxBatch) this.flush();
    else if (size === 1) this.#flushTimer = setTimeout(this.#flushNow, 1);
    else if (size === BUSY_BATCH) {
      // Busy: post at the end of this event-loop turn rather than waiting out the timer.
      clearTimeout(this.#flushTimer!);
      this.#flushTimer = null;
      this.#flushImmediate = setImmediate(this.#flushNow);
    }
    return true;
  }

  /** Posts the current batch now (normally done once per tick by send's scheduling). */
  flush(): void {
    if (this.#flushTimer) clearTimeout(this.#flushTimer);
    if (this.#flushImmediate) clearImmediate(this.#flushImmediate);
    this.#flushTimer = this.#flushImmediate = null;
    if (this.#current.length === 0) return;
    const batch = { seq: ++this.#seq, count: this.#current.length, cols: toColumns(this.#current) };
    this.#current = [];
    this.#unacked.push(batch);
    this.#stats.sentItems += batch.count;
    this.#port?.postMessage({ type: 'batch', from: this.sender, seq: batch.seq, cols: batch.cols } satisfies Envelope);
  }

  signal(body: unknown): void {
    this.#port?.postMessage({ type: 'signal', body } satisfies Envelope);
  }

  /** Marks batches from `from` up to `seq` as already handled (the writer restores this from the database). */
  markDelivered(from: string, seq: number): void {
    if ((this.#delivered.get(from) ?? 0) < seq) this.#delivered.set(from, seq);
  }

  /** Items queued or sent but not yet acknowledged by the peer. */
  get pending(): number {
    return this.#pending;
  }

  /**
   * Calls `wake` once the peer has acknowledged every item sent so far (at once when it has).
   * Calls come back in the order they were made. The current batch is not posted early: it
   * goes at its usual time and `wake` waits for its ack.
   */
  whenAcknowledged(wake: () => void): void {
    const seq = this.#current.length > 0 ? this.#seq + 1 : this.#seq;
    if (seq <= this.#ackedSeq) wake();
    else this.#ackWaiters.push({ seq, wake });
  }

  /** Resolves true once everything sent so far is acknowledged, false after `timeoutMs`. */
  drained(timeoutMs: number): Promise<boolean> {
    this.flush();
    return new Promise((resolve) => {
      let done = false;
      const timer = setTimeout(
        () => {
          done = true;
          resolve(false);
        },
        Math.max(0, timeoutMs),
      );
      this.whenAcknowledged(() => {
        if (done) return;
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  /**
   * Every batch not yet acknowledged (the current one posted first), with the identity the
   * receiver de-duplicates by: what a shutdown spools when the peer cannot take it any more.
   */
  unacknowledged(): { from: string; seq: number; items: Out[] }[] {
    this.flush();
    return this.#unacked.map((b) => ({ from: this.sender, seq: b.seq, items: fromColumns(b.cols) as Out[] }));
  }

  stats(): LinkStats {
    return { ...this.#stats, pending: this.#pending };
  }

  #receive(port: MessagePort, msg: Envelope): void {
    switch (msg.type) {
      case 'batch': {
        const ackOn = () => {
          this.markDelivered(msg.from, msg.seq);
          port.postMessage({ type: 'ack', from: msg.from, seq: msg.seq } satisfies Envelope);
        };
        if (msg.seq <= (this.#delivered.get(msg.from) ?? 0)) {
          ackOn(); // a re-sent batch we already handled: acknowledge again, apply nothing
          return;
        }
        const items = fromColumns(msg.cols) as In[];
        this.#stats.receivedItems += items.length;
        this.#onBatch?.(items, ackOn, msg.from, msg.seq);
        return;
      }
      case 'ack':
        this.#acknowledge(msg.seq);
        return;
      case 'signal':
        this.#onSignal?.(msg.body);
        return;
      default:
        return; // not ours; ignore rather than crash the thread
    }
  }

  #acknowledge(seq: number): void {
    // Acks are cumulative: the receiver handles batches in order.
    while (this.#unacked.length > 0 && this.#unacked[0].seq <= seq) {
      this.#pending -= this.#unacked.shift()!.count;
    }
    if (seq > this.#ackedSeq) this.#ackedSeq = seq;
    let woken = 0;
    while (woken < this.#ackWaiters.length && this.#ackWaiters[woken].seq <= this.#ackedSeq) woken++;
    if (woken === 0) return;
    for (const waiter of this.#ackWaiters.splice(0, woken)) waiter.wake();
  }
}
