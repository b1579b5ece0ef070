// Link batching: what one incoming batch causes leaves in one outgoing batch (Link.together), so
// the writer commits it in one transaction — a registry crash can never leave half of it stored.
import assert from 'node:assert/strict';
import { MessageChannel } from 'node:worker_threads';
import { after, describe, it } from 'node:test';
import { Link } from '../src/actors/link.js';
import { waitFor } from './helpers/wait.js';

describe('Link batches', () => {
  const { port1, port2 } = new MessageChannel();
  const received: number[][] = [];
  const sender = new Link<number>('sender', { maxBatch: 4 });
  const receiver = new Link<never, number>('receiver', {
    onBatch: (items, ack) => {
      received.push(items);
      ack();
    },
  });
  sender.attach(port1);
  receiver.attach(port2);
  after(() => {
    sender.detach();
    receiver.detach();
  });

  it('splits at maxBatch, except inside together(), whose items form one batch', async () => {
    for (let i = 0; i < 10; i++) sender.send(i);
    await waitFor('the plain sends delivered', () => received.flat().length === 10);
    assert.ok(received.every((b) => b.length <= 4), `plain sends are split at maxBatch 4: ${JSON.stringify(received)}`);
    received.length = 0;
    sender.together(() => {
      for (let i = 0; i < 10; i++) sender.send(100 + i);
    });
    await waitFor('the grouped sends delivered', () => received.flat().length === 10);
    assert.deepEqual(received, [Array.from({ length: 10 }, (_, i) => 100 + i)], 'one batch of all ten, in order');
    assert.ok(await sender.drained(5_000), 'every batch acknowledged');
  });
});
