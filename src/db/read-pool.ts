// Report and status queries off the main thread and off the writer: a small piscina pool of
// threads with read-only connections (SQLite: WAL lets them read while the writer commits;
// PostgreSQL: a small pool per thread).
//
// piscina fits here because the queries are stateless; the actors are not, and do not use it.
import { resolve } from 'node:path';
import { Piscina } from 'piscina';
import type { HostView } from '../actors/host-messages.js';
import type { BotSnapshot } from '../actors/registry-messages.js';
import { parseBackend } from './backend.js';
import type { ReadTask } from './read-task.js';
import type { UsageReport, UsageReportOptions } from '../llm/report.js';
import type { BotDetail, FleetBot, HostFilter, UsageTotals } from './queries.js';

export interface ReadPoolOptions {
  /** Threads kept even when idle (0: none; the first query after idleTimeoutMs pays ~200 ms start-up). */
  minThreads?: number;
  maxThreads?: number;
  /** An idle thread (beyond minThreads) exits after this long. */
  idleTimeoutMs?: number;
}

export class ReadPool {
  #pool: Piscina<ReadTask, unknown>;
  /** The store as every task names it: an absolute file path, or the postgres:// URL. */
  #store: string;
  #closing: Promise<void> | null = null;

  constructor(dbPath: string, options: ReadPoolOptions = {}) {
    if (typeof dbPath !== 'string' || dbPath.length === 0)
      throw new TypeError('dbPath must be a file path or a postgres:// URL');
    const backend = parseBackend(dbPath);
    this.#store = backend.kind === 'sqlite' ? resolve(backend.path) : backend.url;
    this.#pool = new Piscina({
      filename: new URL('./read-task.js', import.meta.url).href,
      minThreads: options.minThreads ?? 0,
      maxThreads: options.maxThreads ?? 2,
      idleTimeout: options.idleTimeoutMs ?? 60_000,
      // The default 'sync' parks an idle worker in Atomics.wait, which also stops its timers.
      atomics: 'disabled',
    });
  }

  /** Every bot as last written to bot_status (of one host, or of all), with its latest resource sample. */
  status(options: HostFilter = {}): Promise<BotSnapshot[]> {
    return this.#run({ store: this.#store, query: 'status', options }) as Promise<BotSnapshot[]>;
  }

  /** The cross-host view: every host's bots, `unknown` where the host is down. */
  fleet(options: HostFilter & { staleAfterMs?: number }): Promise<FleetBot[]> {
    return this.#run({ store: this.#store, query: 'fleet', options }) as Promise<FleetBot[]>;
  }

  /** The `hosts` table: every monitor sharing the store, up or down. */
  hosts(options: { staleAfterMs?: number } = {}): Promise<HostView[]> {
    return this.#run({ store: this.#store, query: 'hosts', options }) as Promise<HostView[]>;
  }

  /** LLM usage over a window grouped by one or more dimensions (src/llm/report.ts). */
  usage(options: UsageReportOptions): Promise<UsageReport> {
    return this.#run({ store: this.#store, query: 'usage', options }) as Promise<UsageReport>;
  }

  /** LLM usage since `sinceMs` over all groups (e.g. the load tester's row count). */
  totals(options: { sinceMs: number } & HostFilter): Promise<UsageTotals> {
    return this.#run({ store: this.#store, query: 'totals', options }) as Promise<UsageTotals>;
  }

  /** One bot's resource history, events and LLM spend (the dashboard's detail view). */
  bot(options: { channel: string; sinceMs: number } & HostFilter): Promise<BotDetail> {
    return this.#run({ store: this.#store, query: 'bot', options }) as Promise<BotDetail>;
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
