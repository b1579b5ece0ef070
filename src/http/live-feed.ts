// The dashboard's live updates (GET /api/events, Server-Sent Events). One feed is shared by every
// open dashboard: while at least one is connected it asks the registry, every interval, for the
// bots that changed since its last ask (the registry compares in its own thread: reading the full
// 10,000-row snapshot every second cost ~6 % of a core in structured cloning alone), and sends
// every client the same pre-serialised diff — so 5 dashboards cost about what one does.
//
//   client connects ─▶ pending ─▶ (next tick, after the diff) `snapshot` ─▶ ready: `bots` diffs …
//   `health`, `alerts` beside, every SIDE_EVERY intervals
//
// Order is what keeps a client right: every registry call is made from the one tick loop, so a
// client's snapshot is taken after every diff it missed and before every diff it gets; each row
// in a diff carries its latest values, so applying it to an older picture is always correct.
//
// What changes how often with 10,000 bots: status is rare (sent within one interval); a heartbeat
// (every 30 s per bot: ~330/s) and a resource sample only move numbers, so those rows are held and
// sent together every SLOW_EVERY intervals as short `numbers` rows (src/http/feed-format.ts). A
// client that cannot keep up (its socket buffer beyond MAX_BUFFERED) is dropped and counted; its
// browser reconnects and starts again from a snapshot.
import type { ServerResponse } from 'node:http';
import type { FeedChanges } from '../actors/registry-messages.js';
import type { Logger } from '../log.js';
import { BOT_COLUMNS, encodeBot, encodeNumbers, NUMBER_COLUMNS } from './feed-format.js';

/** Every how many intervals rows whose only change is numbers (heartbeat, cpu, rss) go out. */
const SLOW_EVERY = 5;
/** A client this many bytes behind is dropped (it reconnects and gets a fresh snapshot). */
const MAX_BUFFERED = 4 * 1024 * 1024;
/** An SSE comment this often keeps proxies and the browser from timing the stream out. */
const KEEPALIVE_MS = 15_000;
/** Health and alerts are read every this many intervals. */
const SIDE_EVERY = 5;

export interface LiveFeedSources {
  /** The registry's feedChanges; null while it restarts. */
  changes: (reset: boolean) => Promise<FeedChanges | null>;
  /** The registry's feedSnapshot (a JSON array of rows); null while it restarts. */
  snapshot: () => Promise<string | null>;
  health: () => Promise<unknown>;
  /** null when no alerts route exists (yet). */
  alerts: (() => Promise<unknown>) | null;
}

export interface LiveFeedStats {
  clients: number;
  reads: number;
  snapshots: number;
  events_sent: number;
  bytes_sent: number;
  clients_dropped: number;
  read_failures: number;
}

export class LiveFeed {
  readonly #sources: LiveFeedSources;
  readonly #intervalMs: number;
  readonly #log: Logger;
  /** Clients that have had their snapshot and get every diff. */
  readonly #ready = new Set<ServerResponse>();
  /** Clients waiting for their snapshot (taken on the next tick, after its diff). */
  readonly #pending = new Set<ServerResponse>();
  /** Numbers-only rows held until the next slow round, by channel. */
  readonly #held = new Map<string, unknown[]>();
  /** The registry has our base: its next changes are relative to what every ready client has. */
  #based = false;
  #timer: NodeJS.Timeout | null = null;
  #keepalive: NodeJS.Timeout | null = null;
  #round = 0;
  #health: string | null = null;
  #alerts: string | null = null;
  #ticking = false;
  readonly #stats = { reads: 0, snapshots: 0, events_sent: 0, bytes_sent: 0, clients_dropped: 0, read_failures: 0 };

  constructor(sources: LiveFeedSources, options: { intervalMs: number; log: Logger }) {
    this.#sources = sources;
    this.#intervalMs = options.intervalMs;
    this.#log = options.log;
  }

  stats(): LiveFeedStats {
    return { clients: this.#ready.size + this.#pending.size, ...this.#stats };
  }

  /** Takes over an HTTP response as an event stream until the client goes away. */
  attach(res: ServerResponse): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no', // nginx: do not buffer the stream
    });
    res.flushHeaders();
    res.socket?.setNoDelay(true);
    this.#pending.add(res);
    res.on('close', () => this.#detach(res));
    if (!this.#timer) {
      this.#timer = setInterval(() => void this.#tick(), this.#intervalMs);
      this.#keepalive = setInterval(() => this.#broadcast(': keepalive\n\n'), KEEPALIVE_MS);
    }
    void this.#tick(); // a new page gets its snapshot now, not an interval later (a tick under way takes it)
  }

  /** Ends every stream (shutdown). */
  close(): void {
    for (const res of [...this.#ready, ...this.#pending]) res.end();
    this.#ready.clear();
    this.#pending.clear();
    this.#stop();
  }

  #stop(): void {
    clearInterval(this.#timer ?? undefined);
    clearInterval(this.#keepalive ?? undefined);
    this.#timer = this.#keepalive = null;
    // Nobody is watching: the next dashboard starts from a fresh base.
    this.#based = false;
    this.#held.clear();
    this.#health = this.#alerts = null;
    this.#round = 0;
  }

  #detach(res: ServerResponse): void {
    if (!this.#ready.delete(res) && !this.#pending.delete(res)) return;
    if (this.#ready.size + this.#pending.size === 0) this.#stop();
  }

  async #tick(): Promise<void> {
    if (this.#ticking) return; // one registry call at a time, in order (see the top of the file)
    this.#ticking = true;
    try {
      for (;;) {
        const round = this.#round++;
        await this.#readChanges(round % SLOW_EVERY === 0);
        const served = this.#pending.size > 0 && (await this.#sendSnapshots());
        if (round % SIDE_EVERY === 0) await this.#readSide();
        // Clients that came while the snapshot was read: serve them now, not an interval later.
        if (!served || this.#pending.size === 0 || !this.#timer) break;
      }
    } catch (err) {
      this.#stats.read_failures++;
      this.#log.warn({ err }, 'live feed: read failed; trying again next interval');
    } finally {
      this.#ticking = false;
    }
  }

  async #readChanges(slowRound: boolean): Promise<void> {
    if (this.#ready.size === 0 && !this.#based) {
      // Nobody has a picture yet: make the current state the base; the snapshot follows.
      this.#based = (await this.#sources.changes(true)) !== null;
      this.#stats.reads++;
      return;
    }
    const changes = await this.#sources.changes(false);
    this.#stats.reads++;
    if (changes === null) return; // registry restarting: keep the last picture
    if (changes.lost) {
      // A restarted registry: it has a new base now; every client needs a fresh snapshot.
      this.#held.clear();
      for (const res of this.#ready) this.#pending.add(res);
      this.#ready.clear();
      return;
    }
    const upsert = changes.status.map((bot) => {
      this.#held.delete(bot.channel);
      return encodeBot(bot);
    });
    for (const bot of changes.numbers) this.#held.set(bot.channel, encodeNumbers(bot));
    for (const channel of changes.removed) this.#held.delete(channel);
    // Before a snapshot too: what is held is then older than the snapshot, and would turn a new client's numbers back.
    const flush = slowRound || this.#pending.size > 0;
    const numbers = flush ? [...this.#held.values()] : [];
    if (flush) this.#held.clear();
    if (upsert.length > 0 || changes.removed.length > 0 || numbers.length > 0) {
      this.#broadcast(event('bots', { at: Date.now(), upsert, numbers, remove: changes.removed }));
    }
  }

  /** false when the registry could not answer (the clients wait for the next tick). */
  async #sendSnapshots(): Promise<boolean> {
    const targets = [...this.#pending];
    const json = await this.#sources.snapshot();
    if (json === null) return false;
    this.#stats.snapshots++;
    const meta = JSON.stringify({
      at: Date.now(),
      interval_ms: this.#intervalMs,
      columns: BOT_COLUMNS,
      number_columns: NUMBER_COLUMNS,
    });
    // The rows are already JSON (made in the registry's thread): spliced in, not parsed and re-serialised.
    const text = `event: snapshot\ndata: ${meta.slice(0, -1)},"bots":${json}}\n\n`;
    for (const res of targets) {
      if (!this.#pending.delete(res)) continue; // gone meanwhile
      this.#write(res, text);
      if (this.#health) this.#write(res, this.#health);
      if (this.#alerts) this.#write(res, this.#alerts);
      this.#ready.add(res);
    }
    return true;
  }

  async #readSide(): Promise<void> {
    const health = event('health', await this.#sources.health());
    this.#health = health;
    this.#broadcast(health);
    if (!this.#sources.alerts) return;
    const alerts = event('alerts', await this.#sources.alerts());
    if (alerts === this.#alerts) return; // alerts change rarely: send only when they did
    this.#alerts = alerts;
    this.#broadcast(alerts);
  }

  #broadcast(text: string): void {
    for (const res of this.#ready) this.#write(res, text);
  }

  #write(res: ServerResponse, text: string): void {
    if (res.destroyed || res.writableEnded) return;
    if (res.writableLength > MAX_BUFFERED) {
      this.#stats.clients_dropped++;
      const msg = 'live feed: a dashboard is not reading its events; dropping it (it reconnects)';
      this.#log.warn({ buffered: res.writableLength }, msg);
      res.destroy();
      return;
    }
    res.write(text);
    this.#stats.events_sent++;
    this.#stats.bytes_sent += text.length;
  }
}

function event(name: string, data: unknown): string {
  return `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
}
