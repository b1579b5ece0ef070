// comlink's adapter from a worker_threads MessagePort to the Endpoint interface comlink speaks,
// loaded in one place for the supervisor, the actors and the tests. comlink 4.4 ships it outside
// its main entry and has no `exports` map: the ESM copy (`dist/esm/node-adapter.mjs`) has no
// `.d.mts` types for NodeNext resolution, so the UMD file is required (the format `comlink` itself
// resolves to in Node) and typed here.
import { createRequire } from 'node:module';
import type { MessagePort } from 'node:worker_threads';
import type { Endpoint } from 'comlink';

export const nodeEndpoint = createRequire(import.meta.url)('comlink/dist/umd/node-adapter.js') as (
  port: MessagePort,
) => Endpoint;
