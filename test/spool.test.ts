// The spool file on its own: whole batches only, in file order, read from a renamed file so that
// appends meanwhile are kept, a line torn by a crash skipped without costing the next append, and
// a hard size bound.
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Spool } from '../src/db/spool.js';
import { TestDir } from './helpers/monitor-process.js';

interface Row {
  type: string;
  i: number;
}
const batch = (from: string, seq: number, n: number) => ({
  from,
  seq,
  items: Array.from({ length: n }, (_, i) => ({ type: 'llm_usage', i: seq * 100 + i })),
});

const dir = new TestDir();
after(() => dir.remove());

/** Everything a replay of `spool` reads (renaming the file first), a few rows per call. */
function replayAll(spool: Spool<Row>) {
  const reader = spool.openReplay();
  if (!reader) return null;
  const batches = [];
  for (let chunk = reader.next(3); chunk.length > 0; chunk = reader.next(3)) batches.push(...chunk);
  reader.close();
  return { batches, skippedLines: reader.skippedLines };
}

test('batches come back whole and in file order, whoever spooled them; repeats are left to the cursor', () => {
  const spool = new Spool<Row>(join(dir.path, 'a.spool'), 1 << 20);
  assert.equal(spool.append([batch('writer', 3, 2), batch('writer', 4, 1)]), true);
  // The sender spooling what it has not seen acknowledged, which the writer had spooled too.
  assert.equal(
    spool.append([batch('writer', 3, 2), batch('writer', 4, 1), batch('writer', 5, 4), batch('registry', 7, 2)]),
    true,
  );
  const replay = replayAll(spool)!;
  assert.equal(replay.skippedLines, 0);
  assert.deepEqual(
    replay.batches.map((b) => `${b.from}:${b.seq}:${b.items.length}`),
    ['writer:3:2', 'writer:4:1', 'writer:3:2', 'writer:4:1', 'writer:5:4', 'registry:7:2'],
  );
  assert.deepEqual(
    replay.batches[0].items.map((r) => r.i),
    [300, 301],
  );
  spool.removeReplayed();
  assert.equal(spool.pending(), false);
  assert.equal(replayAll(spool), null);
});

test('a replay reads a renamed file: appends meanwhile start a new spool, and an unfinished replay goes first', () => {
  const path = join(dir.path, 'r.spool');
  const spool = new Spool<Row>(path, 1 << 20);
  spool.append([batch('s', 1, 2)]);
  const reader = spool.openReplay()!;
  assert.equal(existsSync(path), false);
  assert.equal(spool.append([batch('s', 2, 1)]), true, 'a sender at shutdown, mid-replay');
  assert.deepEqual(
    reader.next(10).map((b) => b.seq),
    [1],
  );
  assert.deepEqual(reader.next(10), []);
  reader.close();
  // Not removed (a crash): the next replay reads it again before the new spool.
  assert.deepEqual(
    replayAll(spool)!.batches.map((b) => b.seq),
    [1],
  );
  spool.removeReplayed();
  assert.equal(spool.pending(), true);
  assert.deepEqual(
    replayAll(spool)!.batches.map((b) => b.seq),
    [2],
  );
  spool.removeReplayed();
  assert.equal(spool.pending(), false);
});

test('a batch torn by a crash is skipped, and the next append still parses', () => {
  const path = join(dir.path, 'b.spool');
  const spool = new Spool<Row>(path, 1 << 20);
  spool.append([batch('s', 1, 2)]);
  const whole = readFileSync(path, 'utf8');
  // A second batch of three rows, cut inside its second line.
  const torn = new Spool<Row>(join(dir.path, 'scratch.spool'), 1 << 20);
  torn.append([batch('s', 2, 3)]);
  const tornText = readFileSync(join(dir.path, 'scratch.spool'), 'utf8');
  appendFileSync(path, tornText.slice(0, tornText.indexOf('\n') + 20));
  assert.equal(spool.append([batch('s', 3, 1)]), true);
  const { batches, skippedLines } = replayAll(spool)!;
  assert.deepEqual(
    batches.map((b) => b.seq),
    [1, 3],
  );
  assert.equal(skippedLines, 2, 'the torn batch: one whole line, one cut line');
  assert.ok(readFileSync(spool.replayingPath, 'utf8').startsWith(whole));
});

test('the file never grows past maxBytes: an append that would is refused whole', () => {
  const path = join(dir.path, 'c.spool');
  const spool = new Spool<Row>(path, 400);
  assert.equal(spool.append([batch('s', 1, 4)]), true);
  const size = statSync(path).size;
  assert.equal(spool.append([batch('s', 2, 4)]), false);
  assert.equal(statSync(path).size, size);
  assert.deepEqual(
    replayAll(spool)!.batches.map((b) => b.seq),
    [1],
  );
});
