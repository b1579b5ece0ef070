// The dashboard's panels besides the fleet table. Shapes are the control API's (docs/DASHBOARD.md);
// a panel whose route the monitor does not have says "not available" instead of failing.
import { html } from 'htm/preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { alertSubject, type AlertView, type SilenceView } from '../actors/alerter-messages.js';
import type { FeedBot } from '../http/feed-format.js';
import type { BotDetail } from '../db/queries.js';
import { api, qs } from './api.js';
import { TimeChart } from './chart.js';
import { StatusBadge } from './fleet.js';

/** GET /alerts and GET /silences rows: the alerter's own types, so the page cannot drift from the routes. */
export type Alert = AlertView;
export type Silence = SilenceView;
export interface Budget {
  name: string;
  period: string;
  spent_usd: number;
  limit_usd: number;
  pct: number;
  projected_usd: number;
  level: string;
}
export interface UsageRow {
  key: string;
  calls: number;
  tokens_in: number;
  tokens_out: number;
  cost_usd: number;
}
export interface ActorHealth {
  actor: string;
  up: boolean;
  processed: number;
  queue_depth: number;
  dropped: number;
  loop_lag_p99_ms: number;
  restarts: number;
  last_restart_reason: string | null;
  heap_used_mb: number;
}

/** /usage answers an array today; the LLM room's extension answers { rows, totals }. */
export const usageRows = (body: unknown): UsageRow[] =>
  (Array.isArray(body) ? body : ((body as { rows?: UsageRow[] }).rows ?? [])) as UsageRow[];
const usd = (n: number | null | undefined) => (n === null || n === undefined ? '–' : `$${n.toFixed(n < 1 ? 4 : 2)}`);
const time = (ms: number | string) => new Date(ms).toISOString().replace('T', ' ').slice(0, 19);

function NotAvailable({ what }: { what: string }) {
  return html`<p class="muted not-available">${what}: not available on this monitor.</p>`;
}

export function Summary({
  counts,
  total,
  health,
  alerts,
  spend,
  live,
}: {
  counts: Record<string, number>;
  total: number;
  health: ActorHealth[] | null;
  alerts: Alert[] | null;
  spend: number | null;
  live: boolean;
}) {
  const down = health?.filter((h) => !h.up) ?? [];
  const firing = alerts?.filter((a) => a.state === 'firing' && !a.silenced).length ?? null;
  return html`<header class="summary" aria-label="Summary">
    <h1>kissbot-monitor</h1>
    <dl>
      <div><dt>bots</dt><dd id="summary-total">${total}</dd></div>
      ${['online', 'stale', 'dead', 'offline', ...(counts.unknown ? ['unknown'] : [])].map((s) => html`<div><dt><${StatusBadge} status=${s} /></dt><dd id=${`summary-${s}`}>${counts[s] ?? 0}</dd></div>`)}
      <div><dt>monitor</dt><dd id="summary-health" class=${down.length ? 'bad' : 'good'}>${health === null ? '…' : down.length ? `${down.map((h) => h.actor).join(', ')} down` : 'ok'}</dd></div>
      <div><dt>active alerts</dt><dd id="summary-alerts" class=${firing ? 'bad' : ''}>${firing === null ? 'n/a' : firing}</dd></div>
      <div><dt>LLM today</dt><dd id="summary-spend">${usd(spend)}</dd></div>
      <div><dt>live</dt><dd id="summary-live" class=${live ? 'good' : 'bad'}>${live ? 'connected' : 'reconnecting…'}</dd></div>
    </dl>
  </header>`;
}

export function BotDetailView({
  channel,
  host,
  bot,
  onClose,
}: {
  channel: string;
  /** The bot's host when it is not this monitor's (several hosts share the store). */
  host?: string;
  bot: FeedBot | undefined;
  onClose: () => void;
}) {
  const [detail, setDetail] = useState<BotDetail | null>(null);
  const [error, setError] = useState<string | null>(null);
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    let stop = false;
    const load = () =>
      api<BotDetail>(`/bot${qs({ channel, since: '1h', host })}`).then(
        (d) => !stop && setDetail(d),
        (e: Error) => !stop && setError(e.message),
      );
    setDetail(null);
    void load();
    heading.current?.focus();
    const timer = setInterval(() => void load(), 10_000);
    return () => {
      stop = true;
      clearInterval(timer);
    };
  }, [channel, host]);
  const metrics = detail?.metrics ?? [];
  const xs = metrics.map((m) => m.ts);
  return html`<section id="detail" class="panel" aria-labelledby="detail-title" onKeyDown=${(e: KeyboardEvent) => e.key === 'Escape' && onClose()}>
    <div class="panel-head">
      <h2 id="detail-title" tabindex="-1" ref=${heading}>${channel} ${bot && html`<${StatusBadge} status=${bot.status} />`}</h2>
      <button type="button" onClick=${onClose}>Close <span class="muted">(Esc)</span></button>
    </div>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    ${!detail && !error && html`<p class="muted">Loading history…</p>`}
    ${
      detail &&
      html`
      <div class="charts">
        <${TimeChart} id="cpu-chart" title="CPU, last hour" unit="% core" xs=${xs} ys=${metrics.map((m) => m.cpu_pct)} />
        <${TimeChart} id="rss-chart" title="RSS, last hour" unit="MB" xs=${xs} ys=${metrics.map((m) => m.rss_mb)} />
      </div>
      <h3>Events</h3>
      ${
        detail.events.length === 0
          ? html`<p class="muted">No events stored yet.</p>`
          : html`
        <table class="compact" id="detail-events"><thead><tr><th scope="col">time (UTC)</th><th scope="col">pid</th><th scope="col">from</th><th scope="col">to</th><th scope="col">reason</th></tr></thead>
        <tbody>${detail.events.map((e) => html`<tr><td>${time(e.ts)}</td><td class="num">${e.pid}</td><td>${e.from ?? '–'}</td><td><${StatusBadge} status=${e.to} /></td><td>${e.reason}</td></tr>`)}</tbody></table>`
      }
      <h3>LLM spend, last hour</h3>
      ${
        detail.usage.length === 0
          ? html`<p class="muted">No LLM calls in the last hour.</p>`
          : html`
        <table class="compact"><thead><tr><th scope="col">model</th><th scope="col">calls</th><th scope="col">tokens in</th><th scope="col">tokens out</th><th scope="col">cost</th></tr></thead>
        <tbody>${detail.usage.map((u) => html`<tr><td>${u.model}</td><td class="num">${u.calls}</td><td class="num">${u.tokens_in}</td><td class="num">${u.tokens_out}</td><td class="num">${usd(u.cost_usd)}</td></tr>`)}</tbody></table>`
      }
    `
    }
  </section>`;
}

function UsageTable({ id, caption, rows }: { id: string; caption: string; rows: UsageRow[] }) {
  return html`<table class="compact" id=${id}><caption>${caption}</caption>
    <thead><tr><th scope="col">${caption.split(' ').pop()}</th><th scope="col">calls</th><th scope="col">tokens in</th><th scope="col">tokens out</th><th scope="col">cost</th></tr></thead>
    <tbody>${rows.length === 0 ? html`<tr><td colspan="5" class="muted">no calls</td></tr>` : rows.map((r) => html`<tr><td>${r.key}</td><td class="num">${r.calls}</td><td class="num">${r.tokens_in}</td><td class="num">${r.tokens_out}</td><td class="num">${usd(r.cost_usd)}</td></tr>`)}</tbody>
  </table>`;
}

const DAY_MS = 86_400_000;
/** The last 30 UTC days, so one day of data is one bar, not a chart spanning years. */
function spendRange(): [number, number] {
  const today = Math.floor(Date.now() / DAY_MS) * DAY_MS;
  return [today - 30 * DAY_MS, today + DAY_MS];
}

export function LlmPanel({ has }: { has: (route: string) => boolean }) {
  const [data, setData] = useState<{ day: UsageRow[]; model: UsageRow[]; channel: UsageRow[] } | null>(null);
  const [budgets, setBudgets] = useState<Budget[] | null>(null);
  useEffect(() => {
    const load = async () => {
      if (has('GET /usage')) {
        const [day, model, channel] = await Promise.all(
          ['day', 'model', 'channel'].map((by) => api<unknown>(`/usage${qs({ since: '30d', by })}`).then(usageRows)),
        );
        setData({ day, model, channel: channel.slice(0, 20) });
      }
      if (has('GET /budgets')) setBudgets((await api<{ budgets: Budget[] }>('/budgets')).budgets);
    };
    void load().catch(() => {});
    const timer = setInterval(() => void load().catch(() => {}), 60_000);
    return () => clearInterval(timer);
  }, []);
  return html`<section class="panel" id="llm" aria-labelledby="llm-title">
    <h2 id="llm-title">LLM spend, last 30 days</h2>
    ${
      !has('GET /usage')
        ? html`<${NotAvailable} what="LLM usage" />`
        : !data
          ? html`<p class="muted">Loading…</p>`
          : html`
      <${TimeChart} id="spend-chart" title="Spend per day" unit="USD" bars=${true} range=${spendRange()} xs=${data.day.map((r) => Date.parse(`${r.key}T00:00:00Z`))} ys=${data.day.map((r) => Math.round(r.cost_usd * 1e4) / 1e4)} />
      <div class="tables">
        <${UsageTable} id="usage-model" caption="By model" rows=${data.model} />
        <${UsageTable} id="usage-channel" caption="Top 20 by channel" rows=${data.channel} />
      </div>`
    }
    <h3>Budgets</h3>
    ${
      !has('GET /budgets')
        ? html`<${NotAvailable} what="Budgets" />`
        : !budgets
          ? html`<p class="muted">Loading…</p>`
          : budgets.length === 0
            ? html`<p class="muted">No budgets configured.</p>`
            : html`
      <table class="compact" id="budgets"><thead><tr><th scope="col">budget</th><th scope="col">period</th><th scope="col">spent</th><th scope="col">limit</th><th scope="col">used</th><th scope="col">projected</th><th scope="col">level</th></tr></thead>
      <tbody>${budgets.map(
        (
          b,
        ) => html`<tr><td>${b.name}</td><td>${b.period}</td><td class="num">${usd(b.spent_usd)}</td><td class="num">${usd(b.limit_usd)}</td>
        <td><meter min="0" max="100" value=${b.pct} aria-label=${`${b.name}: ${b.pct}% used`}></meter> ${b.pct.toFixed(0)} %</td><td class="num">${usd(b.projected_usd)}</td>
        <td><span class=${`level level-${b.level}`}>${b.level}</span></td></tr>`,
      )}</tbody></table>`
    }
  </section>`;
}

const matcherText = (m: Silence['matcher']) =>
  m.all ? 'all alerts' : m.channel ? `channel ${m.channel}` : m.host ? `host ${m.host}` : `match ${m.match}`;

export function AlertsPanel({
  has,
  alerts,
  admin,
  onChanged,
}: {
  has: (route: string) => boolean;
  alerts: Alert[] | null;
  admin: boolean;
  onChanged: () => void;
}) {
  const [silences, setSilences] = useState<Silence[] | null>(null);
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);
  const canSilence = admin && has('POST /silences');
  const loadSilences = () =>
    has('GET /silences') &&
    void api<{ silences: Silence[] }>('/silences').then(
      (r) => setSilences(r.silences),
      () => {},
    );
  useEffect(() => {
    loadSilences();
    const timer = setInterval(loadSilences, 15_000);
    return () => clearInterval(timer);
  }, []);
  const act = async (path: string, done: string) => {
    try {
      await api(path, 'POST');
      setMessage({ ok: true, text: done });
      loadSilences();
      onChanged();
    } catch (err) {
      setMessage({ ok: false, text: (err as Error).message });
    }
  };
  const submit = (e: Event) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget as HTMLFormElement);
    const field = (name: string) => {
      const v = form.get(name);
      return typeof v === 'string' ? v : ''; // these inputs are text; a File would be a bug, not a value
    };
    const target = field('target');
    const value = field('value').trim();
    const params = {
      [target]: target === 'all' ? '1' : value,
      for: field('for'),
      comment: field('comment'),
      by: 'dashboard',
    };
    void act(
      `/silences${qs(params)}`,
      `silenced ${target === 'all' ? 'all alerts' : `${target} ${value}`} for ${params.for}`,
    );
  };
  return html`<section class="panel" id="alerts" aria-labelledby="alerts-title">
    <h2 id="alerts-title">Alerts</h2>
    ${
      !has('GET /alerts')
        ? html`<${NotAvailable} what="Alerts" />`
        : !alerts
          ? html`<p class="muted">Loading…</p>`
          : alerts.length === 0
            ? html`<p class="muted">No alerts.</p>`
            : html`
      <table class="compact" id="alerts-table"><thead><tr><th scope="col">alert</th><th scope="col">severity</th><th scope="col">subject</th><th scope="col">state</th><th scope="col">since (UTC)</th><th scope="col">summary</th><th scope="col">silenced</th>${canSilence && html`<th scope="col"><span class="sr-only">actions</span></th>`}</tr></thead>
      <tbody>${alerts.map(
        (
          a,
        ) => html`<tr data-fingerprint=${a.fingerprint}><td>${a.alertname}</td><td><span class=${`level level-${a.severity}`}>${a.severity}</span></td><td>${alertSubject(a.labels) || '–'}</td>
        <td>${a.state}</td><td>${time(a.startsAt)}</td><td>${a.annotations.summary}</td><td>${a.silenced ? `yes (${a.silencedBy.join(', ')})` : 'no'}</td>
        ${canSilence && html`<td>${a.labels.channel && !a.silenced && html`<button type="button" onClick=${() => void act(`/silences${qs({ channel: a.labels.channel, for: '1h', comment: `from the dashboard: ${a.alertname}`, by: 'dashboard' })}`, `silenced channel ${a.labels.channel} for 1h`)}>Silence 1h</button>`}</td>`}</tr>`,
      )}</tbody></table>`
    }
    <h3>Silences</h3>
    ${
      !has('GET /silences')
        ? html`<${NotAvailable} what="Silences" />`
        : !silences
          ? html`<p class="muted">Loading…</p>`
          : silences.length === 0
            ? html`<p class="muted">No silences.</p>`
            : html`
      <table class="compact" id="silences-table"><thead><tr><th scope="col">id</th><th scope="col">matches</th><th scope="col">until (UTC)</th><th scope="col">comment</th><th scope="col">by</th><th scope="col">active</th>${canSilence && html`<th scope="col"><span class="sr-only">actions</span></th>`}</tr></thead>
      <tbody>${silences.map(
        (
          s,
        ) => html`<tr data-silence=${s.id}><td>${s.id}</td><td>${matcherText(s.matcher)}</td><td>${time(s.endsAt)}</td><td>${s.comment}</td><td>${s.createdBy}</td><td>${s.active ? 'yes' : 'no'}</td>
        ${canSilence && html`<td>${s.active && html`<button type="button" onClick=${() => void act(`/silences/remove${qs({ id: s.id })}`, `removed silence ${s.id}`)}>Unsilence</button>`}</td>`}</tr>`,
      )}</tbody></table>`
    }
    ${has('POST /silences') && !admin && html`<p class="muted">Silencing needs the bearer token: this monitor serves HTTP read-only (start it with --http-token-file).</p>`}
    ${
      canSilence &&
      html`<form id="silence-form" class="inline-form" onSubmit=${submit} aria-label="New silence">
      <label>Silence <select name="target"><option value="channel">channel</option><option value="match">channels matching</option><option value="all">all alerts</option></select></label>
      <label>name or glob <input name="value" autocomplete="off" /></label>
      <label>for <input name="for" value="30m" size="5" required pattern="[0-9]+[smhd]" /></label>
      <label>comment <input name="comment" autocomplete="off" /></label>
      <button type="submit">Silence</button>
    </form>`
    }
    ${message && html`<p class=${message.ok ? 'ok' : 'error'} role="status">${message.text}</p>`}
  </section>`;
}

export function HealthPanel({ health }: { health: ActorHealth[] | null }) {
  return html`<section class="panel" id="workers" aria-labelledby="workers-title">
    <h2 id="workers-title">Worker health</h2>
    ${
      !health
        ? html`<p class="muted">Waiting for the first health report…</p>`
        : html`
      <table class="compact" id="workers-table"><thead><tr><th scope="col">actor</th><th scope="col">up</th><th scope="col">lag p99 ms</th><th scope="col">queue</th><th scope="col">dropped</th><th scope="col">processed</th><th scope="col">heap MB</th><th scope="col">restarts</th><th scope="col">last restart</th></tr></thead>
      <tbody>${health.map(
        (
          h,
        ) => html`<tr><td>${h.actor}</td><td><span class=${h.up ? 'good' : 'bad'}>${h.up ? 'yes' : 'DOWN'}</span></td><td class="num">${h.loop_lag_p99_ms}</td><td class="num">${h.queue_depth}</td>
        <td class="num">${h.dropped}</td><td class="num">${h.processed}</td><td class="num">${h.heap_used_mb}</td><td class="num">${h.restarts}</td><td>${h.last_restart_reason ?? '–'}</td></tr>`,
      )}</tbody></table>`
    }
  </section>`;
}
