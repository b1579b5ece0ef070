// The alerter's state in SQLite (tables from migration 0005_alerts), on the alerter's own
// connection to the monitor's database file — or, when the store is PostgreSQL, to a local SQLite
// file beside the spool (src/db/spool.ts alertStorePathFor), so that the alerter never depends on
// the shared store and can tell ops it is down: WAL (readers and the db-writer never wait on it), and
// a short busy_timeout like the writer's, so a locked database costs this thread at most that long
// per attempt. Memory is the truth; this is a write-behind mirror, written once per persist tick
// in one transaction. A write that meets a locked database throws and is retried with everything
// it held.
import BetterSqlite3 from 'better-sqlite3';
import type { DeliveryResult, SilenceMatcher } from '../actors/alerter-messages.js';
import { ALERTS_MIGRATION, isoTime } from '../db/schema-constants.js';
import { alertStorePathFor } from '../db/spool.js';
import { isPostgresUrl, type MonitorConfig } from '../config.js';
import { MonitorError } from '../errors.js';
import type { QueuedDelivery } from './delivery.js';
import type { Alert, Notification, Silence } from './model.js';

export interface StoredState {
  alerts: Alert[];
  groups: Map<string, number>;
  silences: Silence[];
  deliveries: QueuedDelivery[];
  /** Channels in bot_status (any status): who the registry knows. */
  channels: string[];
}

export interface StoreChanges {
  /** Present: upsert; undefined: delete. */
  alerts: [string, Alert | undefined][];
  groups: [string, number | null | undefined][];
  silences: [string, Silence | undefined][];
  deliveries: [string, QueuedDelivery | null][];
}

/** Creates the alerter's tables in a local SQLite file if missing (src/db/schema.ts `ensureLocalAlertTables`). */
export type LocalTablesCreator = (sqlite: BetterSqlite3.Database) => void;

/** The database is not ready for the alerter yet (missing, locked, or its migration not run). */
export class StoreUnavailableError extends MonitorError {
  constructor(message: string) {
    super('ERR_ALERT_STORE_UNAVAILABLE', message);
  }
}

const ms = (text: string | null): number | null => (text === null ? null : Date.parse(text));

export class AlertStore {
  readonly #sqlite: BetterSqlite3.Database;
  readonly #write: (changes: StoreChanges) => void;
  /** False in the local alert file: no bot_status there (the registry's channels come from the store). */
  readonly #hasBotStatus: boolean;

  private constructor(sqlite: BetterSqlite3.Database, hasBotStatus = true) {
    this.#sqlite = sqlite;
    this.#hasBotStatus = hasBotStatus;
    const upsertAlert =
      sqlite.prepare(`INSERT INTO alerts (fingerprint, alertname, severity, labels_json, annotations_json, state, starts_at, ends_at, notified_at, resolved_notified, last_delivery_json)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (fingerprint) DO UPDATE SET
      severity = excluded.severity, annotations_json = excluded.annotations_json, state = excluded.state, starts_at = excluded.starts_at, ends_at = excluded.ends_at,
      notified_at = excluded.notified_at, resolved_notified = excluded.resolved_notified, last_delivery_json = excluded.last_delivery_json`);
    const deleteAlert = sqlite.prepare('DELETE FROM alerts WHERE fingerprint = ?');
    const upsertGroup = sqlite.prepare(
      'INSERT INTO alert_groups (group_key, last_flush_at) VALUES (?, ?) ON CONFLICT (group_key) DO UPDATE SET last_flush_at = excluded.last_flush_at',
    );
    const deleteGroup = sqlite.prepare('DELETE FROM alert_groups WHERE group_key = ?');
    const upsertSilence =
      sqlite.prepare(`INSERT INTO alert_silences (id, matcher_json, starts_at, ends_at, comment, created_by) VALUES (?, ?, ?, ?, ?, ?)
      ON CONFLICT (id) DO UPDATE SET ends_at = excluded.ends_at`);
    const deleteSilence = sqlite.prepare('DELETE FROM alert_silences WHERE id = ?');
    const upsertDelivery =
      sqlite.prepare(`INSERT INTO alert_deliveries (id, receiver, notification_json, attempts, next_attempt_at, last_error) VALUES (?, ?, ?, ?, ?, ?)
      ON CONFLICT (id) DO UPDATE SET attempts = excluded.attempts, next_attempt_at = excluded.next_attempt_at, last_error = excluded.last_error`);
    const deleteDelivery = sqlite.prepare('DELETE FROM alert_deliveries WHERE id = ?');
    this.#write = sqlite.transaction((changes: StoreChanges) => {
      for (const [fp, a] of changes.alerts) {
        if (!a) deleteAlert.run(fp);
        else {
          upsertAlert.run(
            fp,
            a.alertname,
            a.severity,
            JSON.stringify(a.labels),
            JSON.stringify(a.annotations),
            a.state,
            isoTime(a.startsAt),
            a.endsAt === null ? null : isoTime(a.endsAt),
            a.notifiedAt === null ? null : isoTime(a.notifiedAt),
            a.resolvedNotified ? 1 : 0,
            a.lastDelivery ? JSON.stringify(a.lastDelivery) : null,
          );
        }
      }
      for (const [key, at] of changes.groups) {
        if (at === undefined || at === null) deleteGroup.run(key);
        else upsertGroup.run(key, isoTime(at));
      }
      for (const [id, s] of changes.silences) {
        if (!s) deleteSilence.run(id);
        else
          upsertSilence.run(
            id,
            JSON.stringify(s.matcher),
            isoTime(s.startsAt),
            isoTime(s.endsAt),
            s.comment,
            s.createdBy,
          );
      }
      for (const [id, d] of changes.deliveries) {
        if (!d) deleteDelivery.run(id);
        else
          upsertDelivery.run(
            id,
            d.receiver,
            JSON.stringify(d.notification),
            d.attempts,
            isoTime(d.nextAttemptAt),
            d.lastError,
          );
      }
    });
  }

  /**
   * The store for `config`: the SQLite database itself, or the local alert file when the store is
   * PostgreSQL (then `createLocalTables`, src/db/schema.ts `ensureLocalAlertTables`, is required:
   * the caller loads it, and kysely with it, only then).
   */
  static openFor(
    config: Pick<MonitorConfig, 'dbPath' | 'spool' | 'hostName'>,
    busyTimeoutMs: number,
    createLocalTables: LocalTablesCreator | null,
  ): AlertStore {
    if (!isPostgresUrl(config.dbPath)) return AlertStore.open(config.dbPath, busyTimeoutMs);
    if (!createLocalTables) throw new TypeError('createLocalTables is required when the store is PostgreSQL');
    return AlertStore.openLocal(alertStorePathFor(config), busyTimeoutMs, createLocalTables);
  }

  /** The local alert file (created with its tables if missing); StoreUnavailableError if it cannot be. */
  static openLocal(path: string, busyTimeoutMs: number, createLocalTables: LocalTablesCreator): AlertStore {
    let sqlite: BetterSqlite3.Database;
    try {
      sqlite = new BetterSqlite3(path);
    } catch (err) {
      throw new StoreUnavailableError(`cannot open ${path}: ${(err as Error).message}`);
    }
    try {
      sqlite.pragma(`busy_timeout = ${Math.round(busyTimeoutMs)}`);
      sqlite.pragma('journal_mode = WAL');
      sqlite.pragma('synchronous = NORMAL');
      createLocalTables(sqlite);
      return new AlertStore(sqlite, false);
    } catch (err) {
      sqlite.close();
      throw new StoreUnavailableError(`cannot use ${path}: ${(err as Error).message}`);
    }
  }

  /** Opens the alerter's connection; StoreUnavailableError while the database or its alert tables are not there yet. */
  static open(path: string, busyTimeoutMs: number): AlertStore {
    let sqlite: BetterSqlite3.Database;
    try {
      sqlite = new BetterSqlite3(path, { fileMustExist: true });
    } catch (err) {
      throw new StoreUnavailableError(`cannot open ${path}: ${(err as Error).message}`);
    }
    try {
      sqlite.pragma(`busy_timeout = ${Math.round(busyTimeoutMs)}`);
      sqlite.pragma('synchronous = NORMAL');
      const migrated =
        sqlite.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'kysely_migration'").get() &&
        sqlite.prepare('SELECT 1 FROM kysely_migration WHERE name = ?').get(ALERTS_MIGRATION);
      if (!migrated) throw new StoreUnavailableError(`migration ${ALERTS_MIGRATION} has not run yet`);
      return new AlertStore(sqlite);
    } catch (err) {
      sqlite.close();
      if (err instanceof StoreUnavailableError) throw err;
      throw new StoreUnavailableError(`cannot use ${path}: ${(err as Error).message}`);
    }
  }

  load(): StoredState {
    const read = this.#sqlite.transaction(() => ({
      alerts: this.#sqlite.prepare('SELECT * FROM alerts').all() as Record<string, string | number | null>[],
      groups: this.#sqlite.prepare('SELECT group_key, last_flush_at FROM alert_groups').all() as {
        group_key: string;
        last_flush_at: string;
      }[],
      silences: this.#sqlite.prepare('SELECT * FROM alert_silences').all() as Record<string, string>[],
      deliveries: this.#sqlite.prepare('SELECT * FROM alert_deliveries ORDER BY rowid').all() as Record<
        string,
        string | number | null
      >[],
      channels: this.#hasBotStatus
        ? (this.#sqlite.prepare('SELECT channel FROM bot_status').all() as { channel: string }[]).map((r) => r.channel)
        : [],
    }));
    const raw = read();
    return {
      alerts: raw.alerts.map((r) => ({
        fingerprint: String(r.fingerprint),
        alertname: r.alertname as Alert['alertname'],
        severity: r.severity as Alert['severity'],
        labels: JSON.parse(String(r.labels_json)) as Record<string, string>,
        annotations: JSON.parse(String(r.annotations_json)) as Alert['annotations'],
        state: r.state as Alert['state'],
        startsAt: Date.parse(String(r.starts_at)),
        endsAt: ms(r.ends_at as string | null),
        notifiedAt: ms(r.notified_at as string | null),
        resolvedNotified: r.resolved_notified === 1,
        lastDelivery: r.last_delivery_json ? (JSON.parse(String(r.last_delivery_json)) as DeliveryResult) : null,
      })),
      groups: new Map(raw.groups.map((g) => [g.group_key, Date.parse(g.last_flush_at)])),
      silences: raw.silences.map((s) => ({
        id: s.id,
        matcher: JSON.parse(s.matcher_json) as SilenceMatcher,
        startsAt: Date.parse(s.starts_at),
        endsAt: Date.parse(s.ends_at),
        comment: s.comment,
        createdBy: s.created_by,
      })),
      deliveries: raw.deliveries.map((d) => ({
        id: String(d.id),
        receiver: String(d.receiver),
        notification: JSON.parse(String(d.notification_json)) as Notification,
        attempts: Number(d.attempts),
        nextAttemptAt: Date.parse(String(d.next_attempt_at)),
        lastError: d.last_error === null ? null : String(d.last_error),
      })),
      channels: raw.channels,
    };
  }

  /** One transaction; throws (SQLITE_BUSY, …) with nothing written. */
  write(changes: StoreChanges): void {
    this.#write(changes);
  }

  /** Start-up reads may wait longer on a lock than the steady writes. */
  setBusyTimeout(ms: number): void {
    this.#sqlite.pragma(`busy_timeout = ${Math.round(ms)}`);
  }

  close(): void {
    this.#sqlite.close();
  }
}
