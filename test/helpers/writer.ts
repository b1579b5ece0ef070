// The db-writer actor on a real worker thread and a real SQLite file, started as the supervisor
// would (the init/ready handshake by hand), its 'ingest' peer a main-side Link, and optionally an
// 'alerter' port that receives what the writer sends the alerter.
import assert from 'node:assert/strict';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import * as Comlink from 'comlink';
import { nodeEndpoint } from '../../src/actors/comlink-endpoint.js';
import type { ActorControl, ActorToSupervisor, SupervisorToActor } from '../../src/actors/actor-host.js';
import type { Link } from '../../src/actors/link.js';
import { resolveConfig, type ConfigOverrides } from '../../src/config.js';
import { openLogChannel } from '../../src/log.js';
import type { DbWriterControlExtra, WriteItem } from '../../src/actors/db-writer-messages.js';

const WRITER = new URL('../../workers/db-writer.js', import.meta.url);
/** The host name every test writer writes (config hostName). */
export const TEST_HOST = 'test-host';
const writers = new Set<RunningWriter>();

/** Stops every writer still running (call in `after`). */
export async function stopWriters(): Promise<void> {
  for (const writer of writers) await writer.stop();
}

export interface RunningWriter {
  worker: Worker;
  control: Comlink.Remote<ActorControl & DbWriterControlExtra>;
  stop(): Promise<void>;
}

/** Starts the writer as the supervisor would and wires `link` to it as the 'ingest' peer. */
export async function startWriter(
  dbPath: string,
  link: Link<WriteItem>,
  overrides: ConfigOverrides = {},
  incarnation = 1,
  alerter?: MessagePort,
): Promise<RunningWriter> {
  const config = resolveConfig({ dbPath, logLevel: 'error', hostName: TEST_HOST }, overrides);
  const worker = new Worker(WRITER);
  const control = new MessageChannel();
  const data = new MessageChannel();
  const log = openLogChannel();
  const init: SupervisorToActor = {
    type: 'init',
    name: 'db',
    config,
    incarnation,
    control: control.port2,
    log,
    links: { ingest: data.port2, ...(alerter && { alerter }) },
  };
  worker.postMessage(init, [control.port2, log.port, data.port2, ...(alerter ? [alerter] : [])]);
  const reply = await new Promise<ActorToSupervisor>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  assert.equal(reply.type, 'ready', JSON.stringify(reply));
  link.attach(data.port1);
  const writer: RunningWriter = {
    worker,
    control: Comlink.wrap(nodeEndpoint(control.port1)),
    async stop() {
      writers.delete(writer);
      control.port1.close();
      await worker.terminate();
    },
  };
  writers.add(writer);
  return writer;
}
