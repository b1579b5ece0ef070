// Delivery of notifications: one FIFO queue per receiver, so a slow or dead receiver only delays
// its own notifications.
//
//   enqueue ─▶ queue (bounded; the oldest is dropped and counted past maxQueuedPerReceiver)
//   head due ─▶ one attempt (HTTP POST or exec, cut off after its timeout)
//        ├─ ok (2xx, exit 0) ─▶ removed
//        ├─ refused for good (HTTP 4xx but 408/425/429) ─▶ removed, counted as rejected, logged
//        └─ failed ─▶ retried after retryInitialMs · 2^(attempts-1), capped at retryMaxMs
//   given up ─▶ removed, counted as abandoned, logged: the receiver answered with a failure
//        (5xx, exit ≠ 0) maxDeliveryAttempts times, or the notification is older than maxDeliveryAgeMs.
//        A receiver that does not answer (refused, timed out) only meets the age bound, so one
//        that comes back gets what is queued; one bad notification cannot block its queue for good.
//
// The queue is mirrored into SQLite by the alerter (`dirty`), so a restarted monitor resumes it:
// a notification waits for a receiver that is down for as long as the bound allows.
import { spawn } from 'node:child_process';
import { basename } from 'node:path';
import type { ReceiverTestResult } from '../actors/alerter-messages.js';
import type { MonitorConfig } from '../config.js';
import type { Logger } from '../log.js';
import { payloadFor, type Format } from './formats.js';
import type { Notification } from './model.js';

/** stderr kept from an exec receiver for its error message. */
const EXEC_STDERR_BYTES = 2_048;

type ReceiverConfig = MonitorConfig['alerts']['receivers'][number];

export interface QueuedDelivery {
  id: string;
  receiver: string;
  notification: Notification;
  attempts: number;
  nextAttemptAt: number;
  lastError: string | null;
  /** Attempts the receiver answered with a failure; counted in memory only (a restart starts it over). */
  failedAnswers?: number;
}

export interface AttemptResult {
  ok: boolean;
  status: number | null;
  error?: string;
  /** Retrying cannot help (HTTP 4xx): the notification is dropped. */
  permanent?: boolean;
  /** The format has nothing to send for it (a digest to an Alertmanager receiver). */
  skipped?: true;
  /** The receiver did not answer (refused, timed out) or asked to come back later: not its fault. */
  unreachable?: true;
}

interface Receiver {
  name: string;
  format: Format;
  timeoutMs: number;
  attempt(notification: Notification): Promise<AttemptResult>;
}

interface Queue {
  receiver: Receiver;
  items: QueuedDelivery[];
  busy: boolean;
  timer: NodeJS.Timeout | null;
  stats: { delivered: number; failed: number; rejected: number; dropped: number; skipped: number; abandoned: number };
}

export interface DeliveryHooks {
  /** A delivery settled an attempt (for lastDelivery of the alerts it lists). */
  attempted(delivery: QueuedDelivery, result: AttemptResult, at: number): void;
  /** A queued delivery changed (attempts) or is gone (null): the store mirrors it. */
  changed(id: string, delivery: QueuedDelivery | null): void;
}

/** Every receiver the settings name: alerts.receivers, then the --alert-webhook URLs. Names are unique. */
export function receiverSpecs(config: MonitorConfig): ReceiverConfig[] {
  const specs: ReceiverConfig[] = [...config.alerts.receivers, ...config.alerts.webhooks.map((url) => ({ url }))];
  const used = new Set(specs.map((s) => s.name).filter((n): n is string => n !== undefined));
  return specs.map((spec) => {
    if (spec.name !== undefined) return spec;
    // Never the URL itself: Slack and Discord webhook URLs carry their secret in the path.
    const base =
      'command' in spec
        ? `exec:${basename(spec.command[0])}`
        : `${spec.format ?? 'alertmanager'}:${new URL(spec.url).host}`;
    let name = base;
    for (let n = 2; used.has(name); n++) name = `${base}#${n}`;
    used.add(name);
    return { ...spec, name };
  });
}

function httpReceiver(spec: Extract<ReceiverConfig, { url: string }>, timeoutMs: number): Receiver {
  const format = spec.format ?? 'alertmanager';
  const name = spec.name!;
  return {
    name,
    format,
    timeoutMs,
    async attempt(notification) {
      const body = payloadFor(format, notification, name);
      if (body === null) return { ok: true, status: null, skipped: true };
      try {
        const res = await fetch(spec.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': 'kissmon-alerter', ...spec.headers },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(timeoutMs),
        });
        await res.arrayBuffer().catch(() => undefined); // release the connection
        if (res.ok) return { ok: true, status: res.status };
        const later = [408, 425, 429].includes(res.status);
        const permanent = res.status >= 400 && res.status < 500 && !later;
        return {
          ok: false,
          status: res.status,
          error: `HTTP ${res.status}`,
          permanent,
          ...(later ? { unreachable: true } : {}),
        };
      } catch (err) {
        const e = err as Error & { cause?: { code?: string } };
        const why = e.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (e.cause?.code ?? e.message);
        return { ok: false, status: null, error: why, unreachable: true };
      }
    },
  };
}

function execReceiver(spec: Extract<ReceiverConfig, { command: string[] }>, timeoutMs: number): Receiver {
  const [program, ...args] = spec.command;
  return {
    name: spec.name!,
    format: 'json',
    timeoutMs,
    attempt(notification) {
      const body = JSON.stringify(payloadFor('json', notification, spec.name!));
      // Not the monitor's own environment (it may hold secrets): what a script needs to run, and ours.
      const env: NodeJS.ProcessEnv = { KISSMON_NOTIFICATION: notification.type };
      for (const key of ['PATH', 'HOME', 'LANG']) if (process.env[key] !== undefined) env[key] = process.env[key];
      if (notification.type === 'alerts') {
        env.KISSMON_ALERT_STATUS = notification.status;
        env.KISSMON_ALERTNAME = notification.groupLabels.alertname ?? '';
        // The channels a remediation script acts on: those firing in this notification.
        env.KISSMON_CHANNELS = notification.alerts
          .filter((a) => a.status === 'firing' && a.labels.channel)
          .map((a) => a.labels.channel)
          .join(' ');
      }
      return new Promise<AttemptResult>((resolve) => {
        let stderr = '';
        let settled = false;
        const done = (result: AttemptResult) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          resolve(result);
        };
        // Its own process group, so a timeout also ends what the script started (`sleep 60 &`).
        const child = spawn(program, args, { stdio: ['pipe', 'ignore', 'pipe'], env, detached: true });
        const timer = setTimeout(() => {
          try {
            process.kill(-child.pid!, 'SIGKILL');
          } catch {
            child.kill('SIGKILL'); // the group is gone already
          }
          done({ ok: false, status: null, error: `killed: still running after ${timeoutMs} ms` });
        }, timeoutMs);
        child.stderr.on('data', (c: Buffer) => {
          if (stderr.length < EXEC_STDERR_BYTES) stderr += c.toString('utf8');
        });
        child.stdin.on('error', () => {}); // a script that does not read its stdin is not a failure by itself
        child.on('error', (err) => done({ ok: false, status: null, error: err.message }));
        child.on('close', (code, signal) => {
          if (code === 0) done({ ok: true, status: 0 });
          else
            done({
              ok: false,
              status: code,
              error: `exit ${code ?? signal}${stderr ? `: ${stderr.trim().slice(0, 300)}` : ''}`,
            });
        });
        child.stdin.end(body);
      });
    },
  };
}

export class Deliveries {
  readonly #queues = new Map<string, Queue>();
  readonly #settings: MonitorConfig['alerts'];
  readonly #hooks: DeliveryHooks;
  readonly #log: Logger;
  #stopped = false;
  #idleWaiters: (() => void)[] = [];

  constructor(config: MonitorConfig, hooks: DeliveryHooks, log: Logger) {
    this.#settings = config.alerts;
    this.#hooks = hooks;
    this.#log = log;
    for (const spec of receiverSpecs(config)) {
      const timeoutMs = spec.timeoutMs ?? config.alerts.deliveryTimeoutMs;
      const receiver = 'command' in spec ? execReceiver(spec, timeoutMs) : httpReceiver(spec, timeoutMs);
      this.#queues.set(receiver.name, {
        receiver,
        items: [],
        busy: false,
        timer: null,
        stats: { delivered: 0, failed: 0, rejected: 0, dropped: 0, skipped: 0, abandoned: 0 },
      });
    }
  }

  get receivers(): string[] {
    return [...this.#queues.keys()];
  }

  /** Deliveries restored from the store; those for receivers no longer configured are dropped (and logged). */
  load(deliveries: QueuedDelivery[]): void {
    let orphaned = 0;
    for (const d of deliveries) {
      const queue = this.#queues.get(d.receiver);
      if (!queue) {
        orphaned++;
        this.#hooks.changed(d.id, null);
        continue;
      }
      queue.items.push(d);
    }
    if (orphaned > 0) this.#log.warn({ orphaned }, 'queued notifications for receivers no longer configured: dropped');
    for (const queue of this.#queues.values()) this.#pump(queue);
  }

  enqueue(notification: Notification, now: number): void {
    for (const queue of this.#queues.values()) {
      const delivery: QueuedDelivery = {
        id: `${notification.id}/${queue.receiver.name}`,
        receiver: queue.receiver.name,
        notification,
        attempts: 0,
        nextAttemptAt: now,
        lastError: null,
      };
      // The head may be in flight: drop the oldest one behind it.
      while (queue.items.length >= this.#settings.maxQueuedPerReceiver) {
        const at = queue.busy && queue.items.length > 1 ? 1 : 0;
        const [dropped] = queue.items.splice(at, 1);
        queue.stats.dropped++;
        this.#hooks.changed(dropped.id, null);
        this.#log.error(
          {
            receiver: queue.receiver.name,
            max_queued: this.#settings.maxQueuedPerReceiver,
            dropped: queue.stats.dropped,
          },
          'receiver queue full: oldest notification dropped',
        );
      }
      queue.items.push(delivery);
      this.#hooks.changed(delivery.id, delivery);
      this.#pump(queue);
    }
  }

  #pump(queue: Queue): void {
    if (this.#stopped || queue.busy) return;
    const head = queue.items[0];
    if (!head) {
      this.#wakeIfIdle();
      return;
    }
    const wait = head.nextAttemptAt - Date.now();
    if (wait > 0) {
      if (queue.timer) clearTimeout(queue.timer);
      queue.timer = setTimeout(() => {
        queue.timer = null;
        this.#pump(queue);
      }, wait);
      return;
    }
    if (Date.now() - head.notification.createdAt > this.#settings.maxDeliveryAgeMs) {
      this.#abandon(queue, `not delivered within maxDeliveryAgeMs (${this.#settings.maxDeliveryAgeMs} ms)`);
      this.#pump(queue);
      return;
    }
    queue.busy = true;
    void queue.receiver.attempt(head.notification).then((result) => {
      queue.busy = false;
      const now = Date.now();
      head.attempts++;
      this.#hooks.attempted(head, result, now);
      if (result.ok || result.permanent) {
        queue.items.shift();
        if (result.skipped) queue.stats.skipped++;
        else if (result.ok) queue.stats.delivered++;
        else {
          queue.stats.rejected++;
          this.#log.error(
            { receiver: queue.receiver.name, status: result.status, error: result.error },
            'receiver refused the notification: dropped (check its URL and format)',
          );
        }
        this.#hooks.changed(head.id, null);
      } else {
        queue.stats.failed++;
        head.lastError = result.error ?? 'failed';
        if (!result.unreachable) head.failedAnswers = (head.failedAnswers ?? 0) + 1;
        if ((head.failedAnswers ?? 0) >= this.#settings.maxDeliveryAttempts) {
          this.#abandon(
            queue,
            `the receiver answered with a failure ${head.failedAnswers} times (maxDeliveryAttempts)`,
          );
          this.#pump(queue);
          return;
        }
        const backoff = Math.min(
          this.#settings.retryMaxMs,
          this.#settings.retryInitialMs * 2 ** Math.min(30, head.attempts - 1),
        );
        head.nextAttemptAt = now + backoff;
        this.#hooks.changed(head.id, head);
        const level = head.attempts === 1 || head.attempts % 10 === 0 ? 'warn' : 'debug';
        this.#log[level](
          {
            receiver: queue.receiver.name,
            attempts: head.attempts,
            error: head.lastError,
            retry_in_ms: backoff,
            queued: queue.items.length,
          },
          'notification delivery failed: retrying',
        );
      }
      this.#pump(queue);
    });
  }

  /** Gives up on the head of the queue: removed, counted and logged. */
  #abandon(queue: Queue, why: string): void {
    const head = queue.items.shift()!;
    queue.stats.abandoned++;
    this.#hooks.changed(head.id, null);
    this.#log.error(
      {
        receiver: queue.receiver.name,
        notification: head.notification.id,
        attempts: head.attempts,
        error: head.lastError,
        abandoned: queue.stats.abandoned,
      },
      `notification dropped: ${why}`,
    );
  }

  /** One test notification to every receiver, now, outside the queues. */
  async test(now: number): Promise<ReceiverTestResult[]> {
    const notification: Notification = {
      type: 'alerts',
      id: `test-${now}`,
      createdAt: now,
      groupKey: '{}:{alertname="KissmonTest"}',
      groupLabels: { alertname: 'KissmonTest' },
      status: 'firing',
      test: true,
      alerts: [
        {
          fingerprint: '0000000000000000',
          status: 'firing',
          labels: { alertname: 'KissmonTest', severity: 'info' },
          annotations: { summary: 'kissmon alerts test: this receiver is reachable' },
          startsAt: now,
          endsAt: null,
        },
      ],
    };
    return Promise.all(
      [...this.#queues.values()].map(async ({ receiver }) => {
        const started = performance.now();
        const result = await receiver.attempt(notification);
        return {
          receiver: receiver.name,
          ok: result.ok,
          status: result.status,
          ...(result.error ? { error: result.error } : {}),
          ms: Math.round(performance.now() - started),
        };
      }),
    );
  }

  /** Resolves once every queue is empty or `timeoutMs` has passed; true when empty. */
  idle(timeoutMs: number): Promise<boolean> {
    if (this.#isIdle()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.#idleWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  #isIdle(): boolean {
    for (const q of this.#queues.values()) if (q.items.length > 0) return false;
    return true;
  }

  #wakeIfIdle(): void {
    if (!this.#isIdle()) return;
    for (const wake of this.#idleWaiters.splice(0)) wake();
  }

  /** No new attempts; what is queued stays (persisted) for the next start. */
  stop(): void {
    this.#stopped = true;
    for (const q of this.#queues.values()) if (q.timer) clearTimeout(q.timer);
  }

  stats(): {
    receiver: string;
    queued: number;
    delivered: number;
    failed: number;
    rejected: number;
    dropped: number;
    skipped: number;
    abandoned: number;
  }[] {
    return [...this.#queues.values()].map((q) => ({ receiver: q.receiver.name, queued: q.items.length, ...q.stats }));
  }
}
