// The dashboard's live updates (GET /api/events, Server-Sent Events). One feed is shared by every
// open dashboard: it reads the registry only while at least one is connected, diffs each read
// against the last, and sends every client the same pre-serialised diff — so 5 dashboards cost
// about what one does, and 10,000 quiet bots cost a snapshot read per interval and no bytes.
//
//   client connects ─▶ `snapshot` (every bot, once) ─▶ `bots` diffs ─▶ …   (`health`, `alerts` beside)
//
// What changes how often with 10,000 bots: status is rare (sent within one interval); a heartbeat
// (every 30 s per bot: ~330/s) and a resource sample (every 15 s per bot) only move numbers, so
// rows whose status, pid and features did not change are held and sent together every
// SLOW_EVERY intervals. A client that cannot keep up (its socket buffer beyond MAX_BUFFERED) is
// dropped and counted; its browser reconnects and starts again from a snapshot.
import type { ServerResponse } from 'node:http';
import type { BotSnapshot } from '../actors/registry-messages.js';
import type { Logger } from '../log.js';

/** Every how many intervals rows whose only change is numbers (heartbeat, cpu, rss) go out. */
const SLOW_EVERY = 5;
/** A client this many bytes behind is dropped (it reconnects and gets a fresh snapshot). */
const MAX_BUFFERED = 4 * 1024 * 1024;
/** An SSE comment this often keeps proxies and the browser from timing the stream out. */
const KEEPALIVE_MS = 15_000;
/** Health and alerts are read every this many intervals. */
const SIDE_EVERY = 5;

/** A bot row as the page gets it: the registry's snapshot without the age (the page ages it itself). */
export type FeedBot = Omit<BotSnapshot, 'heartbeat_age_s'>;

export interface LiveFeedSources {
  bots: () => Promise<BotSnapshot[] | null>;
  health: () => Promise<unknown>;
  /** null when no alerts route exists (yet). */
  alerts: (() => Promise<unknown>) | null;
}

export interface LiveFeedStats {
  clients: number;
  reads: number;
  events_sent: number;
  bytes_sent: number;
  clients_dropped: number;
  read_failures: number;
}

export class LiveFeed {
  readonly #sources: LiveFeedSources;
  readonly #intervalMs: number;
  readonly #log: Logger;
  readonly #clients = new Set<ServerResponse>();
  /** The last state sent, by channel. */
  #bots = new Map<string, FeedBot>();
  /** Rows changed in numbers only, held until the next slow round. */
  readonly #held = new Map<string, FeedBot>();
  /** A first read has been made since the feed started: #bots is the registry's picture. */
  #primed = false;
  #timer: NodeJS.Timeout | null = null;
  #keepalive: NodeJS.Timeout | null = null;
  #round = 0;
  #health: string | null = null;
  #alerts: string | null = null;
  #reading = false;
  readonly #stats: Omit<LiveFeedStats, 'clients'> = { reads: 0, events_sent: 0, bytes_sent: 0, clients_dropped: 0, read_failures: 0 };

  constructor(sources: LiveFeedSources, options: { intervalMs: number; log: Logger }) {
    this.#sources = sources;
    this.#intervalMs = options.intervalMs;
    this.#log = options.log;
  }

  stats(): LiveFeedStats {
    return { clients: this.#clients.size, ...this.#stats };
  }

  /** Takes over an HTTP response as an event stream until the client goes away. */
  attach(res: ServerResponse): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no', // nginx: do not buffer the stream
    });
    res.socket?.setNoDelay(true);
    this.#clients.add(res);
    res.on('close', () => this.#detach(res));
    this.#start();
    // Not primed yet: the first read broadcasts the snapshot to everyone attached by then.
    if (!this.#primed) return;
    this.#write(res, this.#snapshot());
    if (this.#health) this.#write(res, this.#health);
    if (this.#alerts) this.#write(res, this.#alerts);
  }

  /** Ends every stream (shutdown). */
  close(): void {
    for (const res of this.#clients) res.end();
    this.#clients.clear();
    this.#stop();
  }

  #start(): void {
    if (this.#timer) return;
    void this.#tick();
    this.#timer = setInterval(() => void this.#tick(), this.#intervalMs);
    this.#keepalive = setInterval(() => this.#broadcast(': keepalive\n\n'), KEEPALIVE_MS);
  }

  #stop(): void {
    clearInterval(this.#timer ?? undefined);
    clearInterval(this.#keepalive ?? undefined);
    this.#timer = this.#keepalive = null;
    // Nobody is watching: forget, so the next dashboard starts from a fresh read.
    this.#bots = new Map();
    this.#held.clear();
    this.#health = this.#alerts = null;
    this.#round = 0;
    this.#primed = false;
  }

  #detach(res: ServerResponse): void {
    if (!this.#clients.delete(res)) return;
    if (this.#clients.size === 0) this.#stop();
  }

  async #tick(): Promise<void> {
    if (this.#reading) return; // a slow read (registry restarting) is not stacked
    this.#reading = true;
    try {
      const round = this.#round++;
      await this.#readBots(round % SLOW_EVERY === 0);
      if (round % SIDE_EVERY === 0) await this.#readSide();
    } catch (err) {
      this.#stats.read_failures++;
      this.#log.warn({ err }, 'live feed: read failed; trying again next interval');
    } finally {
      this.#reading = false;
    }
  }

  async #readBots(slowRound: boolean): Promise<void> {
    const snapshot = await this.#sources.bots();
    this.#stats.reads++;
    if (snapshot === null) return; // registry restarting: keep the last picture
    const first = !this.#primed;
    const next = new Map<string, FeedBot>();
    const upsert: FeedBot[] = [];
    for (const { heartbeat_age_s: _age, ...bot } of snapshot) {
      next.set(bot.channel, bot);
      if (first) continue;
      const before = this.#bots.get(bot.channel);
      if (!before || before.status !== bot.status || before.pid !== bot.pid || !sameFeatures(before.features, bot.features)) {
        upsert.push(bot);
        this.#held.delete(bot.channel);
      } else if (before.last_heartbeat !== bot.last_heartbeat || before.sampled_at !== bot.sampled_at || before.last_seen !== bot.last_seen) {
        this.#held.set(bot.channel, bot);
        next.set(bot.channel, before); // sent state stays `before` until the held row goes out
      }
    }
    const remove = first ? [] : [...this.#bots.keys()].filter((channel) => !next.has(channel));
    for (const channel of remove) this.#held.delete(channel);
    if (slowRound) {
      for (const [channel, bot] of this.#held) {
        upsert.push(bot);
        next.set(channel, bot);
      }
      this.#held.clear();
    }
    this.#bots = next;
    if (first) {
      this.#primed = true;
      this.#broadcast(this.#snapshot());
      return;
    }
    if (upsert.length > 0 || remove.length > 0) this.#broadcast(event('bots', { at: Date.now(), upsert, remove }));
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

  /** Every bot as last read; held rows are the newer truth for a client's first picture. */
  #snapshot(): string {
    const bots = [...this.#bots.values()].map((b) => this.#held.get(b.channel) ?? b);
    return event('snapshot', { at: Date.now(), interval_ms: this.#intervalMs, bots });
  }

  #broadcast(text: string): void {
    for (const res of this.#clients) this.#write(res, text);
  }

  #write(res: ServerResponse, text: string): void {
    if (res.destroyed || res.writableEnded) return;
    if (res.writableLength > MAX_BUFFERED) {
      this.#stats.clients_dropped++;
      this.#log.warn({ buffered: res.writableLength }, 'live feed: a dashboard is not reading its events; dropping it (it reconnects)');
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

function sameFeatures(a: FeedBot['features'], b: FeedBot['features']): boolean {
  if (a === b) return true;
  if (!a || !b) return false;
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}
