// MonitorIngestPaused: another connection holds the database's write lock longer than
// alerts.ingestPausedAfterMs: the alert fires (cause database_locked) and resolves once the lock
// is released. The alerter's own store is locked too meanwhile: it delivers from memory.
import assert from 'node:assert/strict';
import { defaultHostName } from '../src/config.js';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { alertMonitor } from './helpers/alerts.js';
import { actorDetail, waitFor } from './helpers/monitor-process.js';

describe('MonitorIngestPaused', () => {
  const ctx = alertMonitor((_dir, receiver) => ({
    alerts: { receivers: [{ url: receiver.url('/am') }], ingestPausedAfterMs: 2_000 },
    other: { healthIntervalMs: 500 },
  }));

  it('fires while the database stays locked and resolves when it is released', async () => {
    const { monitor, receiver, dir } = ctx;
    const locker = new Database(dir.db);
    try {
      locker.exec('BEGIN IMMEDIATE');
      // worker_health rows every 500 ms make the writer try (and fail) to commit.
      await waitFor('writer blocked', async () => (await actorDetail(monitor, 'db', 'busy_retries')) > 0, 30_000);
      await waitFor('MonitorIngestPaused firing', () => receiver.seen('/am').length >= 1, 30_000);
      assert.deepEqual(receiver.seen('/am'), [
        { status: 'firing', alerts: [{ status: 'firing', alertname: 'MonitorIngestPaused' }] },
      ]);
      const alert = (receiver.received[0].body as { alerts: { labels: Record<string, string> }[] }).alerts[0];
      assert.deepEqual(alert.labels, {
        alertname: 'MonitorIngestPaused',
        severity: 'warning',
        host: defaultHostName(),
        cause: 'database_locked',
      });
    } finally {
      locker.exec('ROLLBACK');
      locker.close();
    }
    await waitFor('resolved after the lock is gone', () => receiver.seen('/am').length >= 2, 30_000);
    assert.deepEqual(receiver.seen('/am')[1], {
      status: 'resolved',
      alerts: [{ status: 'resolved', alertname: 'MonitorIngestPaused' }],
    });
  });
});
