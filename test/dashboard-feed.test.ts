// The live feed (/api/events) as a plain HTTP client sees it: one snapshot, then diffs — a new
// bot is an upsert, a heartbeat a short numbers row, an unregister keeps the row as offline; after
// the registry crashes and restarts, every stream gets a fresh snapshot and diffs go on.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';
import { BOT_COLUMNS, decodeBot, NUMBER_COLUMNS, type FeedBot } from '../src/http/feed-format.js';
import { requestControl } from '../src/http/control-client.js';
import { dashboardUrl } from './helpers/browser.js';
import {
  killStarted,
  startBot,
  startMonitor,
  stopMonitor,
  TestDir,
  waitFor,
  type MonitorProcess,
} from './helpers/monitor-process.js';

const dir = new TestDir();
let monitor: MonitorProcess;
const streams: http.ClientRequest[] = [];

before(async () => {
  monitor = await startMonitor(dir, ['--http-port', '0', '--enable-faults']);
});

after(async () => {
  for (const s of streams) s.destroy();
  await killStarted();
  await stopMonitor(monitor);
  dir.remove();
});

interface Seen {
  name: string;
  data: Record<string, unknown>;
}

function listen(url: string): Seen[] {
  const seen: Seen[] = [];
  let buffer = '';
  const req = http.get(`${url}api/events`, (res) => {
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      buffer += chunk;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) !== -1) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const name = /^event: (.+)$/m.exec(block)?.[1];
        const data = /^data: (.+)$/m.exec(block)?.[1];
        if (name && data) seen.push({ name, data: JSON.parse(data) as Record<string, unknown> });
      }
    });
  });
  req.on('error', () => {});
  streams.push(req);
  return seen;
}

const snapshots = (seen: Seen[]) =>
  seen.filter((e) => e.name === 'snapshot').map((e) => (e.data.bots as unknown[][]).map(decodeBot));
const upserts = (seen: Seen[]) =>
  seen.filter((e) => e.name === 'bots').flatMap((e) => (e.data.upsert as unknown[][]).map(decodeBot));
const numbers = (seen: Seen[]) => seen.filter((e) => e.name === 'bots').flatMap((e) => e.data.numbers as unknown[][]);
const has = (bots: FeedBot[], channel: string, status: string) =>
  bots.some((b) => b.channel === channel && b.status === status);

test('snapshot, then upserts and numbers; a fresh snapshot after a registry restart', async () => {
  startBot(monitor.socket, 'first_bot', 200);
  await waitFor(
    'first_bot registered',
    async () => (await requestControl<FeedBot[]>(monitor.control, 'GET', '/status')).length === 1,
  );
  const url = await dashboardUrl(monitor.output);
  const a = listen(url);
  const b = listen(url);
  await waitFor('both snapshots with first_bot', () =>
    [a, b].every((s) => snapshots(s).some((bots) => has(bots, 'first_bot', 'online'))),
  );
  const snapshot = a.find((e) => e.name === 'snapshot')!.data;
  assert.deepEqual(snapshot.columns, [...BOT_COLUMNS]);
  assert.deepEqual(snapshot.number_columns, [...NUMBER_COLUMNS]);

  const second = startBot(monitor.socket, 'second_bot', 200);
  await waitFor('second_bot as an upsert on both streams', () =>
    [a, b].every((s) => has(upserts(s), 'second_bot', 'online')),
  );
  await waitFor(
    'heartbeats as numbers rows',
    () => numbers(a).some((row) => row[0] === 'first_bot' && typeof row[1] === 'number'),
    20_000,
  );
  assert.ok(numbers(a).every((row) => row.length === NUMBER_COLUMNS.length));
  await waitFor('health on the stream', () => a.some((e) => e.name === 'health'));

  second.child.kill('SIGTERM'); // unregisters: offline
  await waitFor('second_bot offline', () => has(upserts(a), 'second_bot', 'offline'));

  const before = snapshots(a).length;
  const crash = await requestControl<{ crashed: string }>(monitor.admin, 'POST', '/fault/crash?actor=registry');
  assert.deepEqual(crash, { crashed: 'registry' });
  await waitFor(
    'a fresh snapshot after the restart',
    () => snapshots(a).length > before && has(snapshots(a).at(-1)!, 'first_bot', 'online'),
    30_000,
  );
  startBot(monitor.socket, 'third_bot', 200);
  await waitFor(
    'diffs go on after the restart',
    () => has(upserts(a), 'third_bot', 'online') && has(upserts(b), 'third_bot', 'online'),
    30_000,
  );
});
