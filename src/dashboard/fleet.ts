// The fleet table: one <tr> per visible bot, windowed — only the rows in view (plus a margin) are
// in the DOM, between two spacer rows of the right height, so 10,000 bots scroll like 30.
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import type { FeedBot } from '../http/feed-format.js';
import { STATUS_SEVERITY } from '../protocol/states.js';

export type SortKey = 'channel' | 'status' | 'pid' | 'heartbeat' | 'cpu' | 'rss' | 'host';
export interface Sort {
  key: SortKey;
  dir: 1 | -1;
}

/** Row height in px (CSS `tr.bot` has the same): the window maths depends on it. */
const ROW_HEIGHT = 30;
/** The scroll box's height in px (CSS `.fleet-scroll`). */
const VIEW_HEIGHT = 480;
const MARGIN_ROWS = 10;

export const STATUS_SYMBOL: Record<string, string> = { online: '●', stale: '▲', dead: '✖', offline: '○', unknown: '?' };

/** A bot of another host (GET /fleet): `unknown` while that host's monitor is down. */
export type HostBot = Omit<FeedBot, 'status'> & {
  host: string;
  status: FeedBot['status'] | 'unknown';
  reason?: string;
};

export const hostOf = (b: FeedBot) => (b as FeedBot & { host?: string }).host ?? '';
/** Rows are keyed by host and channel: a channel is unique per host, not across hosts. */
export const botKey = (b: FeedBot) => `${hostOf(b)}/${b.channel}`;

const compare: Record<SortKey, (a: FeedBot, b: FeedBot) => number> = {
  channel: (a, b) => (a.channel < b.channel ? -1 : a.channel > b.channel ? 1 : 0),
  status: (a, b) =>
    (STATUS_SEVERITY[a.status] ?? 9) - (STATUS_SEVERITY[b.status] ?? 9) ||
    (a.last_heartbeat ?? 0) - (b.last_heartbeat ?? 0),
  pid: (a, b) => a.pid - b.pid,
  // Oldest heartbeat first when ascending = largest age first.
  heartbeat: (a, b) => (a.last_heartbeat ?? 0) - (b.last_heartbeat ?? 0),
  cpu: (a, b) => (a.cpu_pct ?? -1) - (b.cpu_pct ?? -1),
  rss: (a, b) => (a.rss_mb ?? -1) - (b.rss_mb ?? -1),
  host: (a, b) => hostOf(a).localeCompare(hostOf(b)),
};

export function sortAndFilter(
  bots: Iterable<FeedBot>,
  search: string,
  status: string,
  sort: Sort,
  host = '',
): FeedBot[] {
  const needle = search.trim().toLowerCase();
  const rows: FeedBot[] = [];
  for (const b of bots) {
    if (status && b.status !== status) continue;
    if (host && hostOf(b) !== host) continue;
    if (needle && !b.channel.toLowerCase().includes(needle)) continue;
    rows.push(b);
  }
  const cmp = compare[sort.key];
  return rows.sort((a, b) => sort.dir * cmp(a, b) || compare.channel(a, b));
}

const fmt = (n: number | null, digits = 1) => (n === null ? '–' : n.toFixed(digits));

function age(bot: FeedBot, now: number): string {
  if (bot.last_heartbeat === null) return '–';
  const s = Math.max(0, (now - bot.last_heartbeat) / 1000);
  return s < 90 ? `${s.toFixed(0)} s` : s < 5400 ? `${(s / 60).toFixed(0)} min` : `${(s / 3600).toFixed(1)} h`;
}

export function StatusBadge({ status }: { status: string }) {
  return html`<span class=${`status status-${status}`}><span aria-hidden="true">${STATUS_SYMBOL[status] ?? '?'} </span>${status}</span>`;
}

interface TableProps {
  rows: FeedBot[];
  total: number;
  showHost: boolean;
  sort: Sort;
  onSort: (key: SortKey) => void;
  onSelect: (bot: FeedBot) => void;
  /** Server time now (ms), for heartbeat ages. */
  now: number;
}

export function FleetTable({ rows, total, showHost, sort, onSort, onSelect, now }: TableProps) {
  const [scrollTop, setScrollTop] = useState(0);
  const first = Math.max(0, Math.floor(scrollTop / ROW_HEIGHT) - MARGIN_ROWS);
  const visible = rows.slice(first, first + Math.ceil(VIEW_HEIGHT / ROW_HEIGHT) + 2 * MARGIN_ROWS);
  const after = rows.length - first - visible.length;
  const columns: [SortKey | null, string][] = [
    ['channel', 'channel'],
    ['status', 'status'],
    ['pid', 'pid'],
    ['heartbeat', 'heartbeat age'],
    ['cpu', 'CPU % (core)'],
    ['rss', 'RSS MB'],
    [null, 'features'],
    ...(showHost ? [['host', 'host'] as [SortKey, string]] : []),
  ];
  const header = ([key, label]: [SortKey | null, string]) => {
    if (!key) return html`<th scope="col">${label}</th>`;
    const active = sort.key === key;
    return html`<th scope="col" aria-sort=${active ? (sort.dir === 1 ? 'ascending' : 'descending') : 'none'}>
      <button type="button" class="sort" onClick=${() => onSort(key)}>${label}<span aria-hidden="true">${active ? (sort.dir === 1 ? ' ▲' : ' ▼') : ''}</span></button>
    </th>`;
  };
  return html`<div class="fleet-scroll" tabindex="-1" onScroll=${(e: Event) => setScrollTop((e.currentTarget as HTMLElement).scrollTop)}>
    <table class="fleet" aria-rowcount=${rows.length + 1} aria-label=${`Bots: ${rows.length} shown of ${total}`}>
      <thead><tr aria-rowindex="1">${columns.map(header)}</tr></thead>
      <tbody>
        ${first > 0 && html`<tr class="spacer" aria-hidden="true" style=${{ height: `${first * ROW_HEIGHT}px` }}><td colspan=${columns.length}></td></tr>`}
        ${visible.map(
          (
            b,
            i,
          ) => html`<tr class="bot" key=${botKey(b)} data-channel=${b.channel} data-status=${b.status} aria-rowindex=${first + i + 2}>
          <td><button type="button" class="link" onClick=${() => onSelect(b)}>${b.channel}</button></td>
          <td><${StatusBadge} status=${b.status} /></td>
          <td class="num">${b.pid}</td>
          <td class="num">${age(b, now)}</td>
          <td class="num">${fmt(b.cpu_pct)}</td>
          <td class="num">${fmt(b.rss_mb)}</td>
          <td>${
            b.features
              ? Object.keys(b.features)
                  .filter((k) => b.features![k])
                  .join(', ')
              : ''
          }</td>
          ${showHost && html`<td data-host=${hostOf(b)}>${hostOf(b)}${(b as HostBot).reason === 'host_down' ? ' (down)' : ''}</td>`}
        </tr>`,
        )}
        ${after > 0 && html`<tr class="spacer" aria-hidden="true" style=${{ height: `${after * ROW_HEIGHT}px` }}><td colspan=${columns.length}></td></tr>`}
      </tbody>
    </table>
    ${rows.length === 0 && html`<p class="empty">${total === 0 ? 'No bots have registered yet.' : 'No bot matches the search and filter.'}</p>`}
  </div>`;
}
