// Prometheus metrics, computed at scrape time from counters the monitor keeps anyway. Named per
// the Prometheus conventions: kissmon_ prefix, base units (seconds, bytes), _total for counters.
// No per-bot labels unless --metrics-per-bot asks for them: with 10k bots that is 10k series per
// metric, and a scrape's cost grows with the series.
import { createRequire } from 'node:module';
import client from 'prom-client';
import type { AlerterMetrics } from '../actors/alerter-messages.js';
import type { SupervisedHealth } from '../actors/health.js';
import type { BotSnapshot } from '../actors/registry-messages.js';
import type { IngestCounters } from '../server/ingest-server.js';

export interface MetricsSources {
  ingest(): IngestCounters;
  links(): Record<string, { pending: number; dropped: number }>;
  /** The latest health report (refreshed every health interval, not on scrape). */
  health(): SupervisedHealth[];
  /** Control requests refused, by reason. */
  controlRejected(): Record<string, number>;
  /** Log lines dropped because stdout was wedged or gone (every thread). */
  logLinesDropped(): number;
  /** Alert counts and receiver queues; null while the alerter is down. */
  alerter(): Promise<AlerterMetrics | null>;
  /** --metrics-per-bot: the registry's bots (null while it restarts); null: not exported. */
  bots: (() => Promise<BotSnapshot[] | null>) | null;
}

const VERSION = (createRequire(import.meta.url)('../../../package.json') as { version: string }).version;

export function createMetrics(sources: MetricsSources): client.Registry {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'kissmon_main_' });

  type Read = () => [Record<string, string>, number][] | Promise<[Record<string, string>, number][]>;
  /** A counter whose value is read from an existing monotonic count at scrape time. */
  const mirroredCounter = (name: string, help: string, labelNames: string[], read: Read) =>
    new client.Counter({
      name,
      help,
      labelNames,
      registers: [registry],
      async collect() {
        const values = await read();
        this.reset();
        for (const [labels, value] of values) this.inc(labels, value);
      },
    });
  const gauge = (name: string, help: string, labelNames: string[], read: Read) =>
    new client.Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      async collect() {
        const values = await read();
        this.reset();
        for (const [labels, value] of values) this.set(labels, value);
      },
    });

  gauge('kissmon_build_info', 'Always 1; the labels say which kissmon runs', ['version', 'node_version'], () => [
    [{ version: VERSION, node_version: process.version }, 1],
  ]);

  mirroredCounter('kissmon_lines_total', 'Lines read from bot connections', [], () => [[{}, sources.ingest().lines]]);
  mirroredCounter('kissmon_messages_accepted_total', 'Valid messages handed to the actors, by type', ['type'], () =>
    Object.entries(sources.ingest().accepted).map(([type, n]) => [{ type }, n]),
  );
  mirroredCounter('kissmon_lines_rejected_total', 'Lines skipped as invalid, by reason', ['reason'], () =>
    Object.entries(sources.ingest().rejected).map(([reason, n]) => [{ reason }, n]),
  );
  mirroredCounter('kissmon_limit_hits_total', 'Lines or connections stopped by a limit, by limit', ['limit'], () => {
    const c = sources.ingest();
    return [
      [{ limit: 'line_too_long' }, c.line_too_long],
      [{ limit: 'unterminated_closed' }, c.unterminated_closed],
      [{ limit: 'throttled' }, c.throttled],
      [{ limit: 'idle_timeout' }, c.idle_timeouts],
      [{ limit: 'max_connections' }, c.connections_refused],
      [{ limit: 'queue_full' }, c.dropped_overflow],
      [{ limit: 'auth_closed' }, c.auth_closed],
      [{ limit: 'backpressure' }, c.backpressure_pauses],
    ];
  });
  mirroredCounter('kissmon_auth_failed_total', 'Messages refused for a missing or wrong token', [], () => [
    [{}, sources.ingest().auth_failed],
  ]);
  mirroredCounter(
    'kissmon_control_rejected_total',
    'Control API requests refused (bad URL, bad query, timeout, admin route on the read socket, ...), by reason',
    ['reason'],
    () => Object.entries(sources.controlRejected()).map(([reason, n]) => [{ reason }, n]),
  );
  mirroredCounter(
    'kissmon_log_lines_dropped_total',
    'Log lines dropped because stdout did not take them (wedged or gone)',
    [],
    () => [[{}, sources.logLinesDropped()]],
  );
  mirroredCounter('kissmon_connections_total', 'Connections accepted', [], () => [
    [{}, sources.ingest().connections_total],
  ]);
  gauge('kissmon_connections_open', 'Open bot connections', [], () => [[{}, sources.ingest().connections_open]]);
  gauge('kissmon_link_pending', 'Items sent from the main thread to an actor and not yet acknowledged', ['link'], () =>
    Object.entries(sources.links()).map(([link, s]) => [{ link }, s.pending]),
  );
  mirroredCounter('kissmon_link_dropped_total', 'Items refused because a link was full', ['link'], () =>
    Object.entries(sources.links()).map(([link, s]) => [{ link }, s.dropped]),
  );
  mirroredCounter('kissmon_actor_restarts_total', 'Actor restarts by the supervisor', ['actor'], () =>
    sources.health().map((h) => [{ actor: h.actor }, h.restarts]),
  );
  gauge('kissmon_actor_up', '1 when the actor answered its last health check', ['actor'], () =>
    sources.health().map((h) => [{ actor: h.actor }, h.up ? 1 : 0]),
  );
  gauge('kissmon_actor_queue_depth', 'Items waiting inside the actor', ['actor'], () =>
    sources.health().map((h) => [{ actor: h.actor }, h.queue_depth]),
  );
  gauge(
    'kissmon_actor_loop_lag_p99_seconds',
    'Event-loop delay p99 of the actor thread over the last interval',
    ['actor'],
    () => sources.health().map((h) => [{ actor: h.actor }, h.loop_lag_p99_ms / 1000]),
  );
  gauge('kissmon_actor_heap_used_bytes', 'V8 heap used by the actor thread', ['actor'], () =>
    sources.health().map((h) => [{ actor: h.actor }, h.heap_used_mb * 1048576]),
  );
  gauge('kissmon_bots', 'Bots by status', ['status'], () => {
    const registry = sources.health().find((h) => h.actor === 'registry');
    return (['online', 'stale', 'dead', 'offline'] as const).map((status) => [
      { status },
      Number(registry?.detail[status] ?? 0),
    ]);
  });
  const writerDetail = (key: string) => Number(sources.health().find((h) => h.actor === 'db')?.detail[key] ?? 0);
  mirroredCounter(
    'kissmon_llm_usage_duplicates_total',
    'llm_usage rows not stored because their id was already stored',
    [],
    () => [[{}, writerDetail('duplicate')]],
  );
  mirroredCounter(
    'kissmon_rows_spooled_total',
    'Rows written to the spool file (database locked or missing too long, or at shutdown)',
    [],
    () => [[{}, writerDetail('rows_spooled')]],
  );
  mirroredCounter('kissmon_rows_replayed_total', 'Spooled rows replayed into the database', [], () => [
    [{}, writerDetail('rows_replayed')],
  ]);
  gauge(
    'kissmon_db_waiting',
    '1 while the writer cannot open the database (locked, cannot open, migration pending)',
    ['why'],
    () => {
      const why = sources.health().find((h) => h.actor === 'db')?.detail.waiting;
      return typeof why === 'string' ? [[{ why }, 1]] : [];
    },
  );
  // One scrape asks the alerter once, however many alert metrics read it.
  let alerterScrape: Promise<AlerterMetrics | null> | null = null;
  const alerter = () => {
    alerterScrape ??= sources.alerter().finally(() => setImmediate(() => (alerterScrape = null)));
    return alerterScrape;
  };
  gauge(
    'kissmon_alerts',
    'Alerts the alerter holds, by alertname and state (pending, firing, resolved)',
    ['alertname', 'state'],
    async () => ((await alerter())?.alerts ?? []).map((a) => [{ alertname: a.alertname, state: a.state }, a.count]),
  );
  mirroredCounter(
    'kissmon_alert_notifications_total',
    'Notification delivery attempts per receiver, by result (delivered, failed, rejected, dropped, skipped, abandoned)',
    ['receiver', 'result'],
    async () =>
      ((await alerter())?.receivers ?? []).flatMap((r) =>
        (['delivered', 'failed', 'rejected', 'dropped', 'skipped', 'abandoned'] as const).map(
          (result): [Record<string, string>, number] => [{ receiver: r.receiver, result }, r[result]],
        ),
      ),
  );
  gauge(
    'kissmon_alert_queue_length',
    'Notifications waiting for a receiver (it is down or slow)',
    ['receiver'],
    async () => ((await alerter())?.receivers ?? []).map((r) => [{ receiver: r.receiver }, r.queued]),
  );

  const bots = sources.bots;
  if (bots) {
    let botScrape: Promise<BotSnapshot[] | null> | null = null;
    const snapshot = () => {
      botScrape ??= bots().finally(() => setImmediate(() => (botScrape = null)));
      return botScrape;
    };
    gauge(
      'kissmon_bot_up',
      '1 while the bot is online (heartbeating), 0 when stale, dead or offline',
      ['channel'],
      async () => ((await snapshot()) ?? []).map((b) => [{ channel: b.channel }, b.status === 'online' ? 1 : 0]),
    );
    gauge('kissmon_bot_last_heartbeat_seconds', "Unix time of the bot's last heartbeat", ['channel'], async () =>
      ((await snapshot()) ?? [])
        .filter((b) => b.last_heartbeat !== null)
        .map((b) => [{ channel: b.channel }, b.last_heartbeat! / 1000]),
    );
  }
  return registry;
}
