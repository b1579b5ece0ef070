// Notification payloads per receiver format (docs/ALERTS.md "Receivers").
//
//   alertmanager  the Alertmanager webhook payload, version "4" (status, groupKey, groupLabels,
//                 commonLabels, commonAnnotations, alerts[] with status/labels/annotations/startsAt/
//                 endsAt/fingerprint): anything that takes Alertmanager webhooks takes this
//   slack         Slack incoming webhook: `text` (the notification fallback) + mrkdwn section blocks
//   discord       Discord execute-webhook: `content` (at most 2000 characters), no mentions parsed
//   json          kissmon's own shape, also what an exec receiver reads on stdin
import type { Notification, NotifiedAlert } from './model.js';

export type Format = 'alertmanager' | 'slack' | 'discord' | 'json';

/** Alertmanager writes this for an alert that has not ended (Go's zero time). */
const ZERO_TIME = '0001-01-01T00:00:00Z';
/** Slack: a section block's text is at most 3000 characters, a message at most 50 blocks. */
const SLACK_SECTION_CHARS = 3_000;
const SLACK_MAX_BLOCKS = 50;
/** Discord: `content` is at most 2000 characters. */
const DISCORD_CONTENT_CHARS = 2_000;

type AlertsNotification = Extract<Notification, { type: 'alerts' }>;

const iso = (ms: number) => new Date(ms).toISOString();

/** The body to send, or null when the format has nothing to say about it (a digest to Alertmanager). */
export function payloadFor(format: Format, notification: Notification, receiver: string): unknown {
  if (notification.type === 'digest') {
    switch (format) {
      case 'alertmanager':
        return null;
      case 'json':
        return {
          type: 'digest',
          title: notification.title,
          text: notification.text,
          data: notification.data,
          createdAt: iso(notification.createdAt),
        };
      case 'slack':
        return slack(`${notification.title}`, [`*${slackEscape(notification.title)}*`, slackEscape(notification.text)]);
      case 'discord':
        return discord([`**${discordEscape(notification.title)}**`, discordEscape(notification.text)]);
    }
  }
  switch (format) {
    case 'alertmanager':
      return alertmanager(notification, receiver);
    case 'json':
      return {
        type: 'alerts',
        status: notification.status,
        groupKey: notification.groupKey,
        groupLabels: notification.groupLabels,
        receiver,
        ...(notification.test ? { test: true } : {}),
        alerts: notification.alerts.map((a) => ({
          ...a,
          startsAt: iso(a.startsAt),
          endsAt: a.endsAt === null ? null : iso(a.endsAt),
        })),
      };
    case 'slack':
      return slack(title(notification), [
        `*${slackEscape(title(notification))}*`,
        ...notification.alerts.map((a) => slackEscape(line(a))),
      ]);
    case 'discord':
      return discord([
        `**${discordEscape(title(notification))}**`,
        ...notification.alerts.map((a) => discordEscape(line(a))),
      ]);
  }
}

function alertmanager(n: AlertsNotification, receiver: string): unknown {
  const common = <K extends 'labels' | 'annotations'>(key: K): Record<string, string> => {
    const [first, ...rest] = n.alerts;
    if (!first) return {};
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(first[key] as Record<string, string>)) {
      if (rest.every((a) => (a[key] as Record<string, string>)[k] === v)) out[k] = v;
    }
    return out;
  };
  return {
    version: '4',
    groupKey: n.groupKey,
    truncatedAlerts: 0,
    status: n.status,
    receiver,
    groupLabels: n.groupLabels,
    commonLabels: common('labels'),
    commonAnnotations: common('annotations'),
    externalURL: '',
    alerts: n.alerts.map((a) => ({
      status: a.status,
      labels: a.labels,
      annotations: a.annotations,
      startsAt: iso(a.startsAt),
      endsAt: a.endsAt === null ? ZERO_TIME : iso(a.endsAt),
      generatorURL: '',
      fingerprint: a.fingerprint,
    })),
  };
}

/** `[FIRING:30] BotDead`, `[RESOLVED] BotStale` (Alertmanager's default title). */
function title(n: AlertsNotification): string {
  const firing = n.alerts.filter((a) => a.status === 'firing').length;
  const name = n.groupLabels.alertname ?? 'alerts';
  const resolved = n.alerts.length - firing;
  const head = firing > 0 ? `[FIRING:${firing}] ${name}` : `[RESOLVED] ${name}`;
  return `${n.test ? '[TEST] ' : ''}${head}${firing > 0 && resolved > 0 ? ` (${resolved} resolved)` : ''}`;
}

function line(a: NotifiedAlert): string {
  const state = a.status === 'firing' ? (a.labels.severity ?? 'firing') : 'resolved';
  const when = a.status === 'firing' ? `since ${iso(a.startsAt)}` : `ended ${a.endsAt === null ? '' : iso(a.endsAt)}`;
  return `- ${state}: ${a.annotations.summary} (${when})`;
}

/** Lines packed into blocks of at most the section size; what does not fit is counted on the last line. */
function pack(lines: string[], maxChars: number, maxChunks: number): string[] {
  const chunks: string[] = [];
  let current = '';
  let left = lines.length;
  for (const l of lines) {
    const piece = l.length > maxChars ? `${l.slice(0, maxChars - 1)}…` : l;
    if (current.length + piece.length + 1 > maxChars) {
      if (chunks.length + 1 >= maxChunks) break;
      chunks.push(current);
      current = '';
    }
    current = current ? `${current}\n${piece}` : piece;
    left--;
  }
  if (left > 0) {
    const more = `…and ${left} more`;
    current =
      current.length + more.length + 1 > maxChars
        ? `${current.slice(0, maxChars - more.length - 2)}\n${more}`
        : `${current}\n${more}`;
  }
  if (current) chunks.push(current);
  return chunks;
}

function slack(fallback: string, lines: string[]): unknown {
  return {
    text: fallback,
    blocks: pack(lines, SLACK_SECTION_CHARS, SLACK_MAX_BLOCKS).map((text) => ({
      type: 'section',
      text: { type: 'mrkdwn', text },
    })),
  };
}

function discord(lines: string[]): unknown {
  return { username: 'kissmon', content: pack(lines, DISCORD_CONTENT_CHARS, 1)[0], allowed_mentions: { parse: [] } };
}

/** Slack treats &, < and > as markup (`<!channel>` would ping everyone). */
function slackEscape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Discord markdown: channel names are full of underscores, which would turn into italics. */
function discordEscape(text: string): string {
  return text.replace(/([\\_*~`|>])/g, '\\$1');
}
