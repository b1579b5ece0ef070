// A large spool is replayed in chunks without the writer ever being declared hung (hungAfterMs 3 s
// here; reading and inserting the whole file in one turn takes longer on this box), rows appended to the
// spool during the replay survive, a monitor killed mid-replay loses and doubles nothing, and the
// registry starts only once the spool is in the database (it rebuilds from bot_status).
// "Mid-replay" is a state, not a race: a trigger makes the database fail on one row half-way in, so
// the first run's replay commits the rows before it and then retries that chunk until killed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { isoTime } from '../src/db/schema.js';
import { Spool, type SpoolBatch } from '../src/db/spool.js';
import type { WriteItem } from '../src/actors/db-writer-messages.js';
import {
  actorDetail,
  actorHealth,
  botStatus,
  killStarted,
  query,
  startMonitor,
  stopMonitor,
  TestDir,
  waitFor,
  type MonitorProcess,
} from './helpers/monitor-process.js';

const ROWS = 300_000;
const LATE_ROWS = 100;
const BATCH_ROWS = 500;
/** The first row the database refuses during the first run: the replay stops at its chunk. */
const REFUSED_ROW = ROWS / 2;

const usage = (i: number, feature = 'replay'): WriteItem => ({
  type: 'llm_usage',
  at: Date.now(),
  channel: `bot_${i % 10}`,
  model: 'gpt-4o',
  feature,
  tokens_in: i,
  tokens_out: 1,
  latency_ms: null,
  id: `${feature}-${i}`,
});

/** Writes `rows` llm_usage rows as batches of sender `from`, as the writer or a sender would at shutdown. */
function spoolRows(spool: Spool<WriteItem>, from: string, rows: number, feature: string, firstSeq = 1): number {
  let seq = firstSeq;
  for (let i = 0; i < rows;) {
    const batches: SpoolBatch<WriteItem>[] = [];
    for (let k = 0; k < 20 && i < rows; k++) {
      const n = Math.min(BATCH_ROWS, rows - i);
      batches.push({ from, seq: seq++, items: Array.from({ length: n }, (_, j) => usage(i + j, feature)) });
      i += n;
    }
    assert.equal(spool.append(batches), true);
  }
  return seq;
}

const counts = (db: string, feature: string) =>
  query<{ n: number; ids: number }>(
    db,
    'SELECT count(*) n, count(DISTINCT id) ids FROM llm_usage WHERE feature = ?',
    feature,
  )[0];

describe('replaying a large spool', () => {
  const dirs: TestDir[] = [];
  after(async () => {
    await killStarted();
    for (const dir of dirs) dir.remove();
  });

  it(
    'answers pings throughout, keeps rows appended meanwhile, survives a kill, and runs before the registry',
    { timeout: 240_000 },
    async () => {
      const dir = new TestDir();
      dirs.push(dir);
      // A database with a bot the registry would think online (its process is gone: it would turn it dead).
      const first = await startMonitor(dir);
      assert.equal(await stopMonitor(first), 0);
      const gonePid = spawnSync('true').pid;
      const now = Date.now();
      const db = new Database(dir.db);
      db.prepare(
        'INSERT INTO bot_status (channel, pid, status, features_json, registered_at, last_seen, last_heartbeat, start_time) VALUES (?, ?, ?, NULL, ?, ?, NULL, NULL)',
      ).run('gone_bot', gonePid, 'online', isoTime(now - 60_000), isoTime(now - 1_000));
      // A plain SQLITE_ERROR (malformed JSON), as an I/O error would be: the writer retries the chunk.
      // (RAISE(ABORT) would be a constraint error: a bad row, which the writer drops and goes on.)
      db.exec(`CREATE TRIGGER refuse_replay BEFORE INSERT ON llm_usage WHEN NEW.id = 'replay-${REFUSED_ROW}'
      BEGIN SELECT json('refused until the test drops this trigger'); END`);
      db.close();

      // The spool a stop with a locked database leaves: many rows, and at its end the bot's clean unregister.
      const spool = new Spool<WriteItem>(`${dir.db}.spool`, 1 << 30);
      const nextSeq = spoolRows(spool, 'registry:test', ROWS, 'replay');
      spool.append([
        {
          from: 'registry:test',
          seq: nextSeq,
          items: [
            {
              type: 'status',
              channel: 'gone_bot',
              pid: gonePid,
              status: 'offline',
              features_json: null,
              registered_at: now - 60_000,
              last_seen: now,
              last_heartbeat: null,
              start_time: null,
            },
            {
              type: 'event',
              at: now,
              channel: 'gone_bot',
              pid: gonePid,
              from: 'online',
              to: 'offline',
              reason: 'unregistered',
            },
          ],
        },
      ]);

      // Pings every 200 ms, hung after 3 s of silence. The first run gives the replay only 1 s
      // (startTimeoutMs / 2) before it starts the registry anyway; the refused row keeps it replaying.
      // maxHeldMs: the registry's rows, held behind the replay, stay held (not spooled) until the kill.
      // The second run's bound is generous: a loaded box only makes its replay slower, never early.
      const hurried = join(dir.path, 'hurried.json');
      writeFileSync(
        hurried,
        JSON.stringify({
          supervisor: { pingIntervalMs: 200, hungAfterMs: 3_000, startTimeoutMs: 2_000 },
          writer: { maxRowsPerTransaction: 1_000, maxHeldMs: 600_000 },
        }),
      );
      const patient = join(dir.path, 'patient.json');
      writeFileSync(
        patient,
        JSON.stringify({
          supervisor: { pingIntervalMs: 200, hungAfterMs: 3_000, startTimeoutMs: 240_000 },
          writer: { maxRowsPerTransaction: 1_000 },
        }),
      );

      let monitor: MonitorProcess = await startMonitor(dir, ['--config', hurried], { readyTimeoutMs: 120_000 });
      await waitFor(
        'the replay retrying the refused row',
        async () => (await actorDetail(monitor, 'db', 'other_errors')) > 0,
        60_000,
      );
      // A sender spooling at this moment (its writer did not acknowledge in time) must not lose its rows.
      spoolRows(spool, 'ingest:late', LATE_ROWS, 'late');
      await waitFor('the registry started at the bound, mid-replay', () =>
        /spool not replayed in time/.test(monitor.output()),
      );
      const midway = await actorHealth(monitor, 'db');
      assert.equal(midway.detail.spool_pending, 1, 'still replaying when the late rows were spooled');
      assert.equal(midway.restarts, 0, 'the writer answered its pings while replaying');
      const landed = counts(dir.db, 'replay').n;
      assert.ok(landed > 0 && landed <= REFUSED_ROW, `killed mid-replay (${landed} of ${ROWS} rows in)`);
      // A crash mid-replay: the next start must neither lose nor double a row.
      process.kill(monitor.pid, 'SIGKILL');
      await monitor.exited;
      assert.doesNotMatch(monitor.output(), /hung/);
      const unblock = new Database(dir.db);
      unblock.exec('DROP TRIGGER refuse_replay');
      unblock.close();

      monitor = await startMonitor(dir, ['--config', patient], { readyTimeoutMs: 120_000 }); // serves once replayed
      // The registry started after the replay: it rebuilt the bot as the spool left it, not as before.
      assert.equal((await botStatus(monitor, 'gone_bot'))?.status, 'offline');
      assert.doesNotMatch(monitor.output(), /spool not replayed in time/);
      await waitFor(
        'both spool files replayed and removed',
        () => !existsSync(`${dir.db}.spool`) && !existsSync(`${dir.db}.spool.replaying`),
        30_000,
      );
      assert.deepEqual(counts(dir.db, 'replay'), { n: ROWS, ids: ROWS });
      assert.deepEqual(counts(dir.db, 'late'), { n: LATE_ROWS, ids: LATE_ROWS });
      const events = query<{ n: number }>(
        dir.db,
        "SELECT count(*) n FROM bot_events WHERE channel = 'gone_bot' AND to_status = 'dead'",
      )[0].n;
      assert.equal(events, 0, 'the registry never saw the bot online');
      const writer = await actorHealth(monitor, 'db');
      assert.equal(writer.restarts, 0);
      assert.doesNotMatch(monitor.output(), /hung/);
      assert.equal(await stopMonitor(monitor), 0);
    },
  );
});
