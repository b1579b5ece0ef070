// A restarted monitor's alerter knows the channels the registry knows (bot_status, this host's
// rows) on both backends: an expected bot that was registered before the restart and is still
// running is not BotMissing after the grace, while an expected one never seen is. On PostgreSQL the
// alerter's own tables are in a local SQLite file, so those channels come from the store.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { alertConfig, TestReceiver } from './helpers/alerts.js';
import { BACKENDS, createPgDatabase, postgresMissing } from './helpers/backends.js';
import {
  botStatus,
  flush,
  killStarted,
  line,
  sendLines,
  sleep,
  startMonitor,
  startProcess,
  stopMonitor,
  TestDirs,
  waitFor,
} from './helpers/monitor-process.js';
import { requireResource } from './helpers/resources.js';

const GRACE_MS = 2_000;

describe('BotMissing after a restart knows the registered channels', () => {
  const dirs = new TestDirs();
  const receiver = new TestReceiver();
  before(() => receiver.listen());
  after(async () => {
    await killStarted();
    await receiver.close();
    dirs.removeAll();
  });

  for (const kind of BACKENDS) {
    it(`${kind}: a known running bot is not missing, a never-seen one is`, async (t) => {
      if (kind === 'postgres' && !requireResource(t, 'PostgreSQL', await postgresMissing())) return;
      t.after(() => killStarted()); // before the database is dropped (hooks run in order)
      const dir = dirs.create();
      const path = `/am_${kind}`;
      const store = kind === 'postgres' ? (await createPgDatabase(t)).url : dir.db;
      const expected = join(dir.path, 'expected.txt');
      writeFileSync(expected, 'known_bot\nghost_bot\n');
      const configWith = (extra: Record<string, unknown>) => {
        const config = alertConfig(
          dir,
          { receivers: [{ url: receiver.url(path) }], missingGraceMs: GRACE_MS },
          { staleAfterMs: 120_000, spool: { path: join(dir.path, 'm.spool') }, ...extra },
        );
        return config;
      };
      const start = (config: string) =>
        startMonitor(dir, ['--socket', dir.socket, '--db', store, '--host-name', 'h1', '--config', config], {
          pathFlags: false,
        });
      // First run: no expected fleet (no BotMissing at all); the bot registers once, no heartbeats.
      const sleeper = startProcess(['-e', 'setInterval(() => {}, 1000)']);
      const first = await start(configWith({}));
      await sendLines(dir.socket, [line({ type: 'register', channel: 'known_bot', pid: sleeper.pid })]);
      await waitFor('known_bot online', async () => (await botStatus(first, 'known_bot'))?.status === 'online');
      await flush(first);
      first.child.kill('SIGKILL');
      await first.exited;

      // Second run expects known_bot and ghost_bot; known_bot says nothing new.
      const second = await start(configWith({ expected }));
      await waitFor('BotMissing for ghost_bot', () => receiver.seen(path).length >= 1, 30_000);
      await sleep(GRACE_MS);
      const missing = receiver
        .seen(path)
        .flatMap((n) => n.alerts)
        .filter((a) => a.alertname === 'BotMissing')
        .map((a) => a.channel);
      assert.deepEqual([...new Set(missing)], ['ghost_bot']);
      assert.equal((await botStatus(second, 'known_bot'))?.status, 'online');
      assert.equal(await stopMonitor(second), 0);
    });
  }
});
