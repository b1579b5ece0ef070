// Message types of the alerter actor (workers/alerter.ts): what the other actors send it, and the
// JSON its control calls (GET /alerts, GET /silences, ...) return. Times in inputs are ms since the
// epoch; times in views are ISO-8601 UTC text.
import type { BotStatus, TransitionReason } from '../protocol/states.js';

/**
 * Everything the alerter is told. Senders:
 *   'transition'  registry → alerter (Link 'registry-to-alerter'), every bot state change
 *   'budget'      db-writer → alerter (Link 'db-to-alerter'), only when a budget's level changes
 *   'digest'      db-writer → alerter (Link 'db-to-alerter'), the daily LLM digest
 *   'monitor'     main thread → alerter (Link 'ingest-to-alerter'), the monitor's own trouble, and
 *                 MonitorHostDown for another host (the leader only: src/hosts/presence.ts)
 */
export type AlerterInput =
  | {
      type: 'transition';
      at: number;
      channel: string;
      pid: number | null;
      from: BotStatus | null;
      to: BotStatus;
      // eslint-disable-next-line @typescript-eslint/no-redundant-type-constituents -- the contract names the known reasons; an unregister's own reason is any string
      reason: TransitionReason | string;
      /** An unregister that named its reason (e.g. "deploy"): raises nothing. */
      planned: boolean;
    }
  | {
      type: 'budget';
      at: number;
      budget: string;
      period: 'day' | 'week' | 'month';
      /** Start of the period this level belongs to: a new period resolves the old one's alert. */
      periodStart: number;
      /** Where the period ends (the budget's time zone decides): its alert resolves then if no word came. */
      periodEnd: number;
      level: 'ok' | 'warning' | 'critical';
      spentUsd: number;
      limitUsd: number;
      pct: number;
    }
  | { type: 'digest'; at: number; title: string; text: string; data: unknown }
  | {
      type: 'monitor';
      at: number;
      alertname: MonitorAlertName;
      firing: boolean;
      labels: Record<string, string>;
      summary: string;
    };

export type MonitorAlertName = 'MonitorActorDown' | 'MonitorIngestPaused' | 'MonitorHostDown';

/** Every alert name the alerter raises (part of the contract: receivers route on them). */
export const ALERT_NAMES = [
  'BotStale',
  'BotDead',
  'BotFlapping',
  'BotMissing',
  'MonitorActorDown',
  'MonitorIngestPaused',
  'MonitorHostDown',
  'LlmBudgetExceeded',
] as const;
export type AlertName = (typeof ALERT_NAMES)[number];

export type Severity = 'info' | 'warning' | 'critical';

/**
 * pending: the condition holds but notifications are held back (a flapping bot's stale alert);
 * firing: notified (or about to be, within groupWaitMs); resolved: over, kept a while to be seen.
 */
export type AlertState = 'pending' | 'firing' | 'resolved';

export interface DeliveryResult {
  at: string;
  receiver: string;
  ok: boolean;
  error?: string;
}

/** One alert as GET /alerts and `kissmon alerts --json` show it. */
export interface AlertView {
  fingerprint: string;
  alertname: AlertName;
  severity: Severity;
  labels: Record<string, string>;
  annotations: { summary: string; description?: string };
  state: AlertState;
  startsAt: string;
  endsAt: string | null;
  silenced: boolean;
  silencedBy: string[];
  lastDelivery: DeliveryResult | null;
}

/** What an alert is about, for people: its labels but alertname and severity ("bot7 reason=exited", "actor=db"). */
export function alertSubject(labels: Record<string, string>): string {
  const { alertname: _n, severity: _s, ...rest } = labels;
  return Object.entries(rest)
    .map(([k, v]) => (k === 'channel' ? v : `${k}=${v}`))
    .join(' ');
}

/** Exactly one of the four. `match` is a glob over the channel (`*`, `?`); `host` matches the alert's host label. */
export interface SilenceMatcher {
  channel?: string;
  match?: string;
  /** Every alert about this host: its monitor's own, and MonitorHostDown for it (a planned host stop). */
  host?: string;
  all?: true;
}

export interface SilenceView {
  id: string;
  matcher: SilenceMatcher;
  startsAt: string;
  endsAt: string;
  comment: string;
  createdBy: string;
  active: boolean;
}

export interface NewSilence {
  matcher: SilenceMatcher;
  forMs: number;
  comment: string;
  createdBy: string;
}

/** `kissmon alerts test`: one line per receiver. */
export interface ReceiverTestResult {
  receiver: string;
  ok: boolean;
  status: number | null;
  error?: string;
  ms: number;
}

/** What GET /metrics exports about alerts (kissmon_alerts, kissmon_alert_notifications_total, ...). */
export interface AlerterMetrics {
  alerts: { alertname: string; state: string; count: number }[];
  receivers: {
    receiver: string;
    queued: number;
    delivered: number;
    failed: number;
    rejected: number;
    dropped: number;
    skipped: number;
    abandoned: number;
  }[];
}

/** Actor-specific control calls of the alerter (beyond ActorControl). */
export interface AlerterControlExtra {
  alerts(): AlertView[];
  silences(): SilenceView[];
  addSilence(silence: NewSilence): SilenceView;
  /** False when no silence has that id. */
  removeSilence(id: string): boolean;
  /** Sends a test notification to every receiver now (bypassing grouping and the queue). */
  test(): Promise<ReceiverTestResult[]>;
  /** The expected fleet changed (SIGHUP re-read `expected`). */
  setExpected(channels: string[]): void;
  /** Deliver what is queued now, within `timeoutMs` (a monitor about to exit). */
  deliverNow(timeoutMs: number): Promise<void>;
  metrics(): AlerterMetrics;
}
