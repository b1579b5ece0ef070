// GET /hosts and GET /fleet: the cross-host views over the shared store (read pool), for
// `curl` on the control socket and the dashboard. `kissmon hosts` / `status --all-hosts` read the
// store themselves, so they work with no monitor running.
import { Type } from '@sinclair/typebox';
import { HOST_NAME_PATTERN, type MonitorConfig } from '../config.js';
import type { ReadPool } from '../db/read-pool.js';
import { route, type ControlRoute } from '../http/control-server.js';

export function hostRoutes(readPool: ReadPool, config: Pick<MonitorConfig, 'hostName'>): ControlRoute[] {
  // Each host is judged by its own monitor's window (stale_after_ms in its row), not this one's.
  return [
    route({
      method: 'GET',
      path: '/hosts',
      admin: false,
      query: Type.Object({}, { additionalProperties: false }),
      handler: async () => ({ host: config.hostName, hosts: await readPool.hosts() }),
    }),
    route({
      method: 'GET',
      path: '/fleet',
      admin: false,
      query: Type.Object(
        {
          host: Type.Optional(Type.String({ pattern: HOST_NAME_PATTERN, must: '1-64 characters of [A-Za-z0-9_.-]' })),
        },
        { additionalProperties: false },
      ),
      handler: async (q) => readPool.fleet(q.host !== undefined ? { host: q.host } : {}),
    }),
  ];
}
