// GET /settings: what a client tool on this machine needs to know about the running monitor that
// it cannot see from the socket alone — where its database is, whether bots must authenticate, the
// stale window and its connection/bot limits. `kissmon loadtest` reads it, so it needs no `--db`
// (which then only overrides) and refuses a run the monitor's own settings would fail.
//
// Control sockets only (socketOnly): file paths are nobody's business on the HTTP front. A database
// URL is given without its password.
import path from 'node:path';
import { Type } from '@sinclair/typebox';
import type { MonitorConfig } from '../config.js';
import { route, type ControlRoute } from './control-server.js';

export interface MonitorSettings {
  pid: number;
  /** The database as this monitor opened it: an absolute file path, or a URL without its password. */
  db: string;
  /** The ingest socket, absolute. */
  socket: string;
  /** Bots must send a token (the monitor runs with authTokensFile). */
  auth_required: boolean;
  stale_after_ms: number;
  sample_interval_ms: number;
  max_connections: number;
  max_bots: number;
}

export function settingsRoutes(config: MonitorConfig): ControlRoute[] {
  // Resolved now, against the directory the monitor started in (it never changes directory).
  const settings: MonitorSettings = {
    pid: process.pid,
    db: shownDb(config.dbPath),
    socket: path.resolve(config.socketPath),
    auth_required: config.authTokensFile !== null,
    stale_after_ms: config.staleAfterMs,
    sample_interval_ms: config.sampleIntervalMs,
    max_connections: config.limits.maxConnections,
    max_bots: config.limits.maxBots,
  };
  return [
    route({
      method: 'GET',
      path: '/settings',
      admin: false,
      socketOnly: true,
      query: Type.Object({}, { additionalProperties: false }),
      handler: () => Promise.resolve(settings),
    }),
  ];
}

function shownDb(db: string): string {
  if (!URL.canParse(db)) return path.resolve(db); // a file path has no scheme
  const url = new URL(db);
  if (url.password) url.password = '';
  return url.toString();
}
