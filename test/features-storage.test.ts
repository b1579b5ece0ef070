// A bot's features are stored once, in bot_status, not copied into every bot_metrics row; the view
// bot_metrics_features gives each sample its bot's features for the old ops queries. A database
// from before (the old monitor's, features_json filled in every sample) migrates in place: its
// rows are kept as they are, new rows carry no features of their own.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import {
  flush,
  killStarted,
  query,
  startBot,
  startMonitor,
  stopMonitor,
  TestDir,
  waitFor,
} from './helpers/monitor-process.js';

const SAMPLING = ['--sample-interval', '0.3'];

describe('features: once per bot', () => {
  const dirs: TestDir[] = [];
  const newDir = () => {
    const dir = new TestDir();
    dirs.push(dir);
    return dir;
  };
  after(async () => {
    await killStarted();
    for (const dir of dirs) dir.remove();
  });

  it('metric rows carry no features; the view joins the bot’s', async () => {
    const dir = newDir();
    const monitor = await startMonitor(dir, SAMPLING);
    try {
      startBot(monitor.socket, 'feat_bot', 200); // registers with features {"test":true}
      await waitFor(
        'two samples of feat_bot',
        async () => {
          await flush(monitor);
          return query(dir.db, "SELECT 1 FROM bot_metrics WHERE channel = 'feat_bot'").length >= 2;
        },
        15_000,
        200,
      );
      assert.deepEqual(query(dir.db, "SELECT DISTINCT features_json FROM bot_metrics WHERE channel = 'feat_bot'"), [
        { features_json: null },
      ]);
      assert.deepEqual(query(dir.db, "SELECT features_json FROM bot_status WHERE channel = 'feat_bot'"), [
        { features_json: '{"test":true}' },
      ]);
      const viewed = query<{ features_json: string }>(
        dir.db,
        "SELECT features_json FROM bot_metrics_features WHERE channel = 'feat_bot'",
      );
      assert.ok(viewed.length >= 2);
      for (const row of viewed) assert.equal(row.features_json, '{"test":true}');
    } finally {
      await stopMonitor(monitor);
    }
  });

  it('an old database with features in every bot_metrics row migrates: old rows kept, new ones without', async () => {
    const dir = newDir();
    // The old monitor's file: its three tables, features_json copied into each sample.
    const old = new Database(dir.db);
    old.exec(`CREATE TABLE bot_status (channel TEXT PRIMARY KEY, pid INTEGER, status TEXT, features_json TEXT, registered_at TEXT, last_seen TEXT, last_heartbeat TEXT);
      CREATE TABLE bot_metrics (ts TEXT, channel TEXT, pid INTEGER, rss_mb REAL, cpu_pct REAL, features_json TEXT);
      CREATE TABLE llm_usage (ts TEXT, channel TEXT, model TEXT, feature TEXT, tokens_in INTEGER, tokens_out INTEGER, latency_ms REAL, cost_usd REAL);`);
    const now = new Date().toISOString();
    // A bot the old monitor had online, this test process standing in for it (pid alive).
    old
      .prepare("INSERT INTO bot_status VALUES ('old_bot', ?, 'online', '{\"tts\":true}', ?, ?, ?)")
      .run(process.pid, now, now, now);
    const sample = old.prepare("INSERT INTO bot_metrics VALUES (?, 'old_bot', ?, 50, 1, '{\"tts\":false}')");
    for (let i = 0; i < 3; i++) sample.run(new Date(Date.now() - (3 - i) * 60_000).toISOString(), process.pid);
    old.close();

    const monitor = await startMonitor(dir, SAMPLING);
    try {
      const migrations = query<{ name: string }>(dir.db, 'SELECT name FROM kysely_migration ORDER BY name').map(
        (m) => m.name,
      );
      assert.ok(migrations.includes('0002_bot_identity'), migrations.join(', '));
      // Its row had no start time: adopted from the running process, and the bot sampled on.
      await waitFor(
        'new samples of old_bot',
        async () => {
          await flush(monitor);
          return query(dir.db, "SELECT 1 FROM bot_metrics WHERE channel = 'old_bot' AND ts > ?", now).length >= 2;
        },
        15_000,
        200,
      );
      assert.deepEqual(
        query(dir.db, "SELECT features_json FROM bot_metrics WHERE channel = 'old_bot' AND ts < ? ORDER BY ts", now),
        Array(3).fill({ features_json: '{"tts":false}' }),
        'old rows untouched',
      );
      assert.deepEqual(
        query(dir.db, "SELECT DISTINCT features_json FROM bot_metrics WHERE channel = 'old_bot' AND ts > ?", now),
        [{ features_json: null }],
      );
      // The view: old rows their own features, new ones the bot's.
      assert.deepEqual(
        query(
          dir.db,
          "SELECT DISTINCT features_json FROM bot_metrics_features WHERE channel = 'old_bot' AND ts < ?",
          now,
        ),
        [{ features_json: '{"tts":false}' }],
      );
      assert.deepEqual(
        query(
          dir.db,
          "SELECT DISTINCT features_json FROM bot_metrics_features WHERE channel = 'old_bot' AND ts > ?",
          now,
        ),
        [{ features_json: '{"tts":true}' }],
      );
    } finally {
      await stopMonitor(monitor);
    }
    const [row] = query<{ start_time: number | null }>(
      dir.db,
      "SELECT start_time FROM bot_status WHERE channel = 'old_bot'",
    );
    assert.equal(typeof row.start_time, 'number', 'the adopted start time is persisted');
  });
});
