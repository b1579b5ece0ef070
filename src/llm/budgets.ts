// Budgets: spend per configured budget and period, tracked by the writer from the rows it commits
// (a map lookup and an add per row, no query), loaded once per period from the hourly rollups.
//
//   ok ──spent ≥ warnAtPct──▶ warning ──spent ≥ limit──▶ critical        a new period: back to ok
//
// A level change is decided inside the rows' transaction and stored there (llm_budget_state), and
// only signalled once that transaction commits: each level is signalled once per period, also
// across writer restarts (the stored level is where a restarted writer starts from).
import type BetterSqlite3 from 'better-sqlite3';
import type { AlerterInput } from '../actors/alerter-messages.js';
import type { MonitorConfig } from '../config.js';
import { isoTime } from '../db/schema.js';
import { nextPeriodStart, periodStart } from './periods.js';
import { globMatcher } from '../glob.js';

export type BudgetLevel = 'ok' | 'warning' | 'critical';
export type BudgetConfig = MonitorConfig['budgets'][number];

/** What the writer sends the alerter (AlerterInput `budget`, contract in the brief). */
export type BudgetSignal = Extract<AlerterInput, { type: 'budget' }>;

import type { BudgetStatus } from '../actors/db-writer-messages.js';

export type { BudgetStatus };

/** A budget's channel/model/feature filter: absent matches all, else the glob (src/glob.ts). */
const filterMatcher = (glob: string | undefined): ((value: string) => boolean) =>
  glob === undefined ? () => true : globMatcher(glob);

interface Tracked {
  config: BudgetConfig;
  timeZone: string;
  matches: (channel: string, model: string, feature: string) => boolean;
  start: number;
  end: number;
  spent: number;
  /**
   * Level last signalled for this period (stored in llm_budget_state); null when an earlier
   * period's alert may still be open, so the current level is signalled whatever it is.
   */
  signalled: BudgetLevel | null;
  /** Spend added by the transaction under way (applied on commit). */
  pending: number;
}

const round = (n: number, digits: number) => Math.round(n * 10 ** digits) / 10 ** digits;

export function levelOf(pct: number, warnAtPct: number): BudgetLevel {
  return pct >= 100 ? 'critical' : pct >= warnAtPct ? 'warning' : 'ok';
}

/**
 * Where budgets keep their state: synchronous on the writer's thread. SQLite reads and writes its
 * tables directly (sqliteBudgetStorage); the PostgreSQL store reads ahead and writes the saved
 * levels in the rows' transaction itself (src/db/postgres-store.ts).
 */
export interface BudgetStorage {
  /** This host's stored levels. */
  states(): { name: string; period_start: string; level: BudgetLevel }[];
  /** Spend by channel/model/feature in [startIso, endIso) of this host (and, on SQLite, host ''). */
  spend(
    source: 'llm_usage_hourly' | 'llm_usage',
    startIso: string,
    endIso: string,
  ): { channel: string; model: string; feature: string; cost: number }[];
  /** Inside the rows' transaction: a budget's level for its period. */
  save(name: string, periodStart: string, level: BudgetLevel, updatedAt: string): void;
}

export function sqliteBudgetStorage(sqlite: BetterSqlite3.Database, host: string): BudgetStorage {
  const saveState =
    sqlite.prepare(`INSERT INTO llm_budget_state (host, name, period_start, level, updated_at) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT (host, name) DO UPDATE SET period_start = excluded.period_start, level = excluded.level, updated_at = excluded.updated_at`);
  return {
    states: () =>
      sqlite.prepare('SELECT name, period_start, level FROM llm_budget_state WHERE host = ?').all(host) as {
        name: string;
        period_start: string;
        level: BudgetLevel;
      }[],
    // This monitor's rows; '' are those of an SQLite file from before 0006_hosts (the same monitor).
    spend: (source, start, end) =>
      sqlite
        .prepare(
          `SELECT channel, model, feature, total(cost_usd) AS cost FROM ${source} WHERE host IN (?, '') AND ts >= ? AND ts < ? GROUP BY channel, model, feature`,
        )
        .all(host, start, end) as { channel: string; model: string; feature: string; cost: number }[],
    save: (name, periodStart, level, updatedAt) => saveState.run(host, name, periodStart, level, updatedAt),
  };
}

export class BudgetTracker {
  #budgets: Tracked[];
  /** channel\0model\0feature → indexes of the budgets it counts for (bounded; misses are cheap). */
  #matchCache = new Map<string, number[]>();
  #dirty = false;
  #storage: BudgetStorage;
  #staged: BudgetSignal[] = [];

  /** `storage`: an SQLite connection (this host's tables in it) or a BudgetStorage. */
  constructor(storage: BetterSqlite3.Database | BudgetStorage, config: MonitorConfig, now = Date.now()) {
    this.#storage = 'prepare' in storage ? sqliteBudgetStorage(storage, config.hostName) : storage;
    this.#budgets = config.budgets.map((b) => {
      const [channel, model, feature] = [filterMatcher(b.channel), filterMatcher(b.model), filterMatcher(b.feature)];
      const timeZone = b.timeZone ?? config.llm.timeZone;
      return {
        config: b,
        timeZone,
        matches: (c, m, f) => channel(c) && model(m) && feature(f),
        start: 0,
        end: 0,
        spent: 0,
        signalled: 'ok',
        pending: 0,
      };
    });
    this.reload(config.llm.rollups ? 'llm_usage_hourly' : 'llm_usage', now);
  }

  get size(): number {
    return this.#budgets.length;
  }

  /**
   * Spend of every budget's current period from the database, and the level last stored. Once at
   * start, after a recompute, and when a period turns over. `source` llm_usage when rollups are off.
   */
  reload(source: 'llm_usage_hourly' | 'llm_usage', now = Date.now()): void {
    if (this.#budgets.length === 0) return;
    const states = new Map(this.#storage.states().map((s) => [s.name, s]));
    for (const b of this.#budgets) {
      b.start = periodStart(b.config.period, now, b.timeZone);
      b.end = nextPeriodStart(b.config.period, b.start, b.timeZone);
      b.spent = 0;
      for (const r of this.#storage.spend(source, isoTime(b.start), isoTime(b.end))) {
        if (b.matches(r.channel, r.model, r.feature)) b.spent += r.cost;
      }
      const stored = states.get(b.config.name);
      if (stored === undefined) b.signalled = 'ok';
      else if (stored.period_start === isoTime(b.start)) b.signalled = stored.level;
      else b.signalled = stored.level === 'ok' ? 'ok' : null;
      b.pending = 0;
    }
    this.#dirty = true; // levels are compared on the next transaction
  }

  /** A committed-to-be row; `at` outside a budget's current period does not count for it. */
  add(at: number, channel: string, model: string, feature: string, cost: number | null): void {
    if (cost === null || cost === 0 || this.#budgets.length === 0) return;
    const key = `${channel}\0${model}\0${feature}`;
    let hits = this.#matchCache.get(key);
    if (hits === undefined) {
      hits = [];
      this.#budgets.forEach((b, i) => b.matches(channel, model, feature) && hits!.push(i));
      if (this.#matchCache.size >= 50_000) this.#matchCache.clear();
      this.#matchCache.set(key, hits);
    }
    for (const i of hits) {
      const b = this.#budgets[i];
      if (at >= b.end) this.#turnOver(b, at);
      if (at >= b.start && at < b.end) {
        b.pending += cost;
        this.#dirty = true;
      }
    }
  }

  /** Inside the transaction: levels that change are stored; their signals wait for commit(). */
  stage(now = Date.now()): void {
    this.#staged = [];
    if (!this.#dirty && !this.#budgets.some((b) => now >= b.end)) return;
    for (const b of this.#budgets) {
      if (now >= b.end) this.#turnOver(b, now);
      if (b.signalled === null) this.#dirty = true;
      const spent = b.spent + b.pending;
      const pct = (spent / b.config.limitUsd) * 100;
      const level = levelOf(pct, b.config.warnAtPct);
      if (level === b.signalled) continue;
      this.#storage.save(b.config.name, isoTime(b.start), level, isoTime(now));
      this.#staged.push({
        type: 'budget',
        at: now,
        budget: b.config.name,
        period: b.config.period,
        periodStart: b.start,
        periodEnd: b.end,
        level,
        spentUsd: round(spent, 6),
        limitUsd: b.config.limitUsd,
        pct: round(pct, 2),
      });
    }
  }

  /** The transaction committed: its spend counts, its level changes are signalled (returned). */
  commit(): BudgetSignal[] {
    for (const b of this.#budgets) {
      b.spent += b.pending;
      b.pending = 0;
    }
    for (const s of this.#staged) this.#budgets.find((b) => b.config.name === s.budget)!.signalled = s.level;
    this.#dirty = false;
    const signals = this.#staged;
    this.#staged = [];
    return signals;
  }

  rollback(): void {
    for (const b of this.#budgets) b.pending = 0;
    this.#staged = [];
  }

  /** A new period: spend starts at 0, the level at ok (signalled if it was not). */
  #turnOver(b: Tracked, now: number): void {
    b.start = periodStart(b.config.period, now, b.timeZone);
    b.end = nextPeriodStart(b.config.period, b.start, b.timeZone);
    b.spent = 0;
    b.pending = 0;
    if (b.signalled !== 'ok') b.signalled = null;
  }

  status(now = Date.now()): BudgetStatus[] {
    return this.#budgets.map((b) => {
      const current = now < b.end;
      const spent = current ? b.spent : 0;
      const start = current ? b.start : periodStart(b.config.period, now, b.timeZone);
      const end = current ? b.end : nextPeriodStart(b.config.period, start, b.timeZone);
      const elapsed = Math.max(now - start, 60_000);
      const pct = (spent / b.config.limitUsd) * 100;
      return {
        name: b.config.name,
        period: b.config.period,
        period_start: new Date(start).toISOString(),
        spent_usd: round(spent, 6),
        limit_usd: b.config.limitUsd,
        pct: round(pct, 2),
        projected_usd: round(Math.max(spent, (spent * (end - start)) / elapsed), 6),
        level: levelOf(pct, b.config.warnAtPct),
      };
    });
  }
}
