// Batches cross a real MessageChannel column-wise (src/actors/link.ts): what the receiver's onBatch
// gets must be exactly what was sent, item by item, keys in order, whatever the mix of shapes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MessageChannel } from 'node:worker_threads';
import { fromColumns, Link, toColumns } from '../src/actors/link.js';
import { waitFor } from './helpers/wait.js';

const items: unknown[] = [
  { type: 'llm_usage', at: 1, channel: 'a', model: 'm', tokens_in: 1, latency_ms: null },
  { type: 'llm_usage', at: 2, channel: 'b', model: 'm', tokens_in: 2, latency_ms: 3.5 },
  // same keys, other order: a new run, and the order must survive
  { at: 3, type: 'llm_usage', channel: 'c', model: 'm', tokens_in: 3, latency_ms: 1 },
  { type: 'register', channel: 'x', pid: 7, features: { a: true, b: false }, conn: 4 },
  { type: 'register', channel: 'x', pid: 7, sent_at: undefined },
  { type: 'caused', sender: 's', seq: 9, items: [{ type: 'status', channel: 'x' }] },
  {},
  { type: 'heartbeat', '2': 'integer-like key', channel: 'y' },
  'not an object',
  ['an', 'array'],
  null,
  Object.assign(Object.create(null) as object, { type: 'no prototype' }),
  { type: 'llm_usage', at: 4, channel: 'd', model: 'm', tokens_in: 4, latency_ms: 2 },
];

function keysOf(list: unknown[]): unknown[] {
  return list.map((i) => (i !== null && typeof i === 'object' ? Object.keys(i) : i));
}

test('toColumns/fromColumns give back every item, shape and key order included', () => {
  const back = fromColumns(structuredClone(toColumns(items)));
  assert.deepEqual(back, structuredClone(items));
  assert.deepEqual(keysOf(back), keysOf(structuredClone(items)));
  assert.ok(Object.hasOwn(back[4] as object, 'sent_at'), 'a key holding undefined stays a key');
  assert.ok(Array.isArray(back[9]), 'an array item stays an array');
  // runs: 2 llm_usage rows share one, the reordered one starts another
  assert.equal(toColumns(items.slice(0, 3)).length, 2);
  assert.equal(toColumns(items.slice(0, 2))[0].count, 2);
});

test('a Link delivers column-wise batches in order and re-sends unacknowledged ones on attach', async () => {
  const sender = new Link<unknown>('cols-test', { maxBatch: 5 });
  const received: unknown[][] = [];
  let ackLater: (() => void)[] = [];
  const receiver = new Link<never, unknown>('cols-peer', {
    onBatch: (batch, ack) => {
      received.push(batch);
      ackLater.push(ack);
    },
  });
  let channel = new MessageChannel();
  sender.attach(channel.port1);
  receiver.attach(channel.port2);
  try {
    for (const item of items) assert.equal(sender.send(item), true);
    sender.flush();
    await waitFor('every item delivered', () => received.flat().length >= items.length, 10_000, 5);
    assert.deepEqual(received.flat(), structuredClone(items));
    assert.equal(sender.pending, items.length, 'nothing acknowledged yet');

    // A restarted peer: the same items again, from the unacknowledged batches.
    received.length = 0;
    ackLater = [];
    receiver.detach();
    channel = new MessageChannel();
    sender.attach(channel.port1);
    receiver.attach(channel.port2);
    await waitFor('every item delivered', () => received.flat().length >= items.length, 10_000, 5);
    assert.deepEqual(received.flat(), structuredClone(items));
    for (const ack of ackLater) ack();
    assert.equal(await sender.drained(2_000), true);
    assert.equal(sender.pending, 0);
  } finally {
    sender.detach();
    receiver.detach();
  }
});
