// The spool file on its own: whole batches only, each (sender, seq) once and in seq order per
// sender, a line torn by a crash skipped without costing the next append, and a hard size bound.
import assert from 'node:assert/strict';
import { appendFileSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Spool } from '../src/db/spool.js';
import { TestDir } from './helpers/monitor-process.js';

interface Row {
  t: string;
  i: number;
}
const batch = (from: string, seq: number, n: number) => ({ from, seq, items: Array.from({ length: n }, (_, i) => ({ t: 'llm_usage', i: seq * 100 + i })) });

const dir = new TestDir();
after(() => dir.remove());

test('batches come back whole, once, per sender in seq order, whoever spooled them', () => {
  const spool = new Spool<Row>(join(dir.path, 'a.spool'), 1 << 20);
  assert.equal(spool.append([batch('writer', 3, 2), batch('writer', 4, 1)]), true);
  // The sender spooling what the writer also spooled, plus an older batch the writer did not have.
  assert.equal(spool.append([batch('writer', 1, 3), batch('writer', 3, 2), batch('registry', 7, 2)]), true);
  const { batches, skippedLines } = spool.read();
  assert.equal(skippedLines, 0);
  assert.deepEqual(batches.map((b) => `${b.from}:${b.seq}:${b.items.length}`), ['writer:1:3', 'writer:3:2', 'writer:4:1', 'registry:7:2']);
  assert.deepEqual(batches[0].items.map((r) => r.i), [100, 101, 102]);
  spool.remove();
  assert.equal(spool.exists(), false);
  assert.deepEqual(spool.read(), { batches: [], skippedLines: 0 });
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
  const { batches, skippedLines } = spool.read();
  assert.deepEqual(batches.map((b) => b.seq), [1, 3]);
  assert.equal(skippedLines, 2, 'the torn batch: one whole line, one cut line');
  assert.ok(readFileSync(path, 'utf8').startsWith(whole));
});

test('the file never grows past maxBytes: an append that would is refused whole', () => {
  const path = join(dir.path, 'c.spool');
  const spool = new Spool<Row>(path, 400);
  assert.equal(spool.append([batch('s', 1, 4)]), true);
  const size = statSync(path).size;
  assert.equal(spool.append([batch('s', 2, 4)]), false);
  assert.equal(statSync(path).size, size);
  assert.deepEqual(spool.read().batches.map((b) => b.seq), [1]);
});
