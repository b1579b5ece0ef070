// What the alerter keeps and sends: alerts (identified by the hash of their labels, like
// Alertmanager's fingerprint), silences, and notifications (one per group flush).
import { createHash } from 'node:crypto';
import { globMatcher } from '../glob.js';
import type {
  AlertName,
  AlertState,
  DeliveryResult,
  Severity,
  SilenceMatcher,
  SilenceView,
} from '../actors/alerter-messages.js';

export interface Alert {
  fingerprint: string;
  alertname: AlertName;
  severity: Severity;
  labels: Record<string, string>;
  annotations: { summary: string; description?: string };
  state: AlertState;
  startsAt: number;
  endsAt: number | null;
  /** When a notification last listed it firing; null: never notified (a restart must not send it as new). */
  notifiedAt: number | null;
  /** Its resolution was notified (or needs none: it was never notified firing). */
  resolvedNotified: boolean;
  lastDelivery: DeliveryResult | null;
}

/** One alert inside a notification, as it was when the group was flushed. */
export interface NotifiedAlert {
  fingerprint: string;
  status: 'firing' | 'resolved';
  labels: Record<string, string>;
  annotations: { summary: string; description?: string };
  startsAt: number;
  endsAt: number | null;
}

export type Notification =
  | {
      type: 'alerts';
      id: string;
      createdAt: number;
      groupKey: string;
      groupLabels: Record<string, string>;
      status: 'firing' | 'resolved';
      alerts: NotifiedAlert[];
      /** `kissmon alerts test`: delivered once, never queued or retried. */
      test?: true;
    }
  | { type: 'digest'; id: string; createdAt: number; title: string; text: string; data: unknown };

export interface Silence {
  id: string;
  matcher: SilenceMatcher;
  startsAt: number;
  endsAt: number;
  comment: string;
  createdBy: string;
}

/** Alertmanager-style: a stable hash of the sorted label set. */
export function fingerprintOf(labels: Record<string, string>): string {
  const hash = createHash('sha256');
  for (const key of Object.keys(labels).sort()) hash.update(`${key}\u0000${labels[key]}\u0001`);
  return hash.digest('hex').slice(0, 16);
}

/** `{}:{alertname="BotDead"}`, the shape Alertmanager gives groupKey. */
export function groupKeyOf(groupLabels: Record<string, string>): string {
  const inner = Object.keys(groupLabels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(groupLabels[k])}`)
    .join(', ');
  return `{}:{${inner}}`;
}

/** Exactly one of channel, match, host, all; a bad matcher is a TypeError naming what is wrong. */
export function checkMatcher(matcher: SilenceMatcher): SilenceMatcher {
  const given = [
    matcher.channel !== undefined,
    matcher.match !== undefined,
    matcher.host !== undefined,
    matcher.all === true,
  ].filter(Boolean).length;
  if (given !== 1) throw new TypeError('a silence needs exactly one of channel, match, host or all');
  if (matcher.host !== undefined && !/^[A-Za-z0-9_.-]{1,64}$/.test(matcher.host))
    throw new TypeError('host must be 1-64 chars of [A-Za-z0-9_.-]');
  if (matcher.host !== undefined) return { host: matcher.host };
  if (matcher.channel !== undefined && !/^[A-Za-z0-9_]{1,64}$/.test(matcher.channel))
    throw new TypeError('channel must be 1-64 chars of [A-Za-z0-9_]');
  if (matcher.match !== undefined && (matcher.match.length === 0 || matcher.match.length > 128))
    throw new TypeError('match must be a glob of 1-128 characters');
  if (matcher.channel !== undefined) return { channel: matcher.channel };
  if (matcher.match !== undefined) return { match: matcher.match };
  return { all: true };
}

/** A compiled silence matcher: does it cover these labels? */
export function silenceMatches(matcher: SilenceMatcher): (labels: Record<string, string>) => boolean {
  if (matcher.all) return () => true;
  if (matcher.host !== undefined) {
    const host = matcher.host;
    return (labels) => labels.host === host;
  }
  if (matcher.channel !== undefined) {
    const channel = matcher.channel;
    return (labels) => labels.channel === channel;
  }
  const glob = globMatcher(matcher.match ?? '');
  return (labels) => labels.channel !== undefined && glob(labels.channel);
}

export function silenceView(s: Silence, now: number): SilenceView {
  return {
    id: s.id,
    matcher: s.matcher,
    startsAt: new Date(s.startsAt).toISOString(),
    endsAt: new Date(s.endsAt).toISOString(),
    comment: s.comment,
    createdBy: s.createdBy,
    active: s.startsAt <= now && now < s.endsAt,
  };
}
