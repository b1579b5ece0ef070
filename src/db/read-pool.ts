// Report and status queries off the main thread and off the writer: a small piscina pool of
// threads with read-only connections (WAL lets them read while the writer commits).
//
// piscina fits here because the queries are stateless; the actors are not, and do not use it.
import { resolve } from 'node:path';
import { Piscina } from 'piscina';
import type { BotSnapshot } from '../actors/registry-messages.js';
import type { ReadTask } from './read-task.js';
import type { UsageReport, UsageReportOptions } from '../llm/report.js';
import type { BotDetail, UsageTotals } from './queries.js';

export interface ReadPoolOptions {
  /** Threads kept even when idle (0: none; the first query after idleTimeoutMs pays ~200 ms start-up). */
  minThreads?: number;
  maxThreads?: number;
  /** An idle thread (beyond minThreads) exits after this long. */
  idleTimeoutMs?: number;
}

export class ReadPool {
  #pool: Piscina<ReadTask, unknown>;
  #dbPath: string;
  #closing: Promise<void> | null = null;

  constructor(dbPath: string, options: ReadPoolOptions = {}) {
    if (typeof dbPath !== 'string' || dbPath.length === 0) throw new TypeError('dbPath must be a file path');
    this.#dbPath = resolve(dbPath);
    this.#pool = new Piscina({
      filename: new URL('./read-task.js', import.meta.url).href,
      minThreads: options.minThreads ?? 0,
      maxThreads: options.maxThreads ?? 2,
      idleTimeout: options.idleTimeoutMs ?? 60_000,
      // The default 'sync' parks an idle worker in Atomics.wait, which also stops its timers.
      atomics: 'disabled',
    });
  }

  /** Every bot as last written to bot_status, with its latest resource sample. */
  status(): Promise<BotSnapshot[]> {
    return this.#run({ dbPath: this.#dbPath, query: 'status' }) as Promise<BotSnapshot[]>;
  }

  /** LLM usage over a window grouped by one or more dimensions (src/llm/report.ts). */
  usage(options: UsageReportOptions): Promise<UsageReport> {
    return this.#run({ dbPath: this.#dbPath, query: 'usage', options }) as Promise<UsageReport>;
  }

  /** LLM usage since `sinceMs` over all groups (e.g. the load tester's row count). */
  totals(options: { sinceMs: number }): Promise<UsageTotals> {
    return this.#run({ dbPath: this.#dbPath, query: 'totals', options }) as Promise<UsageTotals>;
  }

  /** One bot's resource history, events and LLM spend (the dashboard's detail view). */
  bot(options: { channel: string; sinceMs: number }): Promise<BotDetail> {
    return this.#run({ dbPath: this.#dbPath, query: 'bot', options }) as Promise<BotDetail>;
  }

  /** Lets running queries finish, then ends the threads. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#pool.close();
    return this.#closing;
  }

  #run(task: ReadTask): Promise<unknown> {
    if (this.#closing) return Promise.reject(new Error('read pool is closed'));
    return this.#pool.run(task);
  }
}
