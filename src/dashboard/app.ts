// The dashboard page (served at / by src/http/dashboard-server.ts). Preact + htm, no build step
// beyond esbuild; state lives here and flows down to the panels.
//
//   load ─▶ GET /api/session ─▶ token needed and missing? ─▶ ask once (sessionStorage) ─▶ app
//   app ─▶ /api/events stream (snapshot, then diffs) + panels poll their own routes
import 'uplot/dist/uPlot.min.css';
import './styles.css';
import { html } from 'htm/preact';
import { render } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { applyNumbers, decodeBot, type FeedBot } from '../http/feed-format.js';
import { api, qs, session, streamEvents, token, type Session } from './api.js';
import { botKey, FleetTable, hostOf, sortAndFilter, type HostBot, type Sort, type SortKey } from './fleet.js';
import {
  AlertsPanel,
  BotDetailView,
  HealthPanel,
  LlmPanel,
  Summary,
  usageRows,
  type ActorHealth,
  type Alert,
} from './panels.js';

function TokenForm({ wrong, onToken }: { wrong: boolean; onToken: (t: string) => void }) {
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => input.current?.focus(), []);
  return html`<main class="token-page">
    <form id="token-form" class="panel" onSubmit=${(e: Event) => {
      e.preventDefault();
      onToken(input.current!.value.trim());
    }}>
      <h1>kissbot-monitor</h1>
      <p>This monitor needs its bearer token (the content of its <code>--http-token-file</code>). It is kept for this tab only.</p>
      <label>Token <input ref=${input} type="password" name="token" autocomplete="current-password" required /></label>
      <button type="submit">Open the dashboard</button>
      ${wrong && html`<p class="error" role="alert">That token was refused.</p>`}
    </form>
  </main>`;
}

function Dashboard({ s }: { s: Session }) {
  const has = (route: string) => s.routes.includes(route);
  const bots = useRef(new Map<string, FeedBot>());
  const [version, setVersion] = useState(0);
  const [live, setLive] = useState(false);
  const [skew, setSkew] = useState(0);
  const [now, setNow] = useState(Date.now());
  const [health, setHealth] = useState<ActorHealth[] | null>(null);
  const [alerts, setAlerts] = useState<Alert[] | null>(null);
  const [spend, setSpend] = useState<number | null>(null);
  const [search, setSearch] = useState('');
  const [status, setStatus] = useState('');
  const [sort, setSort] = useState<Sort>({ key: 'status', dir: 1 });
  const [selected, setSelected] = useState<FeedBot | null>(null);
  const [hostFilter, setHostFilter] = useState('');
  /** Hosts sharing the store (GET /hosts) and this monitor's name; null until known or with one store per monitor. */
  const [hosts, setHosts] = useState<{ own: string; names: string[] } | null>(null);
  /** The other hosts' bots (GET /fleet), polled while there are several hosts. */
  const [others, setOthers] = useState<HostBot[]>([]);

  useEffect(() => {
    const abort = new AbortController();
    void streamEvents(
      (name, data) => {
        const d = data as { at?: number };
        if (typeof d?.at === 'number') setSkew(d.at - Date.now());
        if (name === 'snapshot') {
          performance.mark('snapshot-received');
          bots.current = new Map(
            (data as { bots: unknown[][] }).bots.map((row) => {
              const b = decodeBot(row);
              return [b.channel, b];
            }),
          );
          setVersion((v) => v + 1);
        } else if (name === 'bots') {
          const { upsert, numbers, remove } = data as { upsert: unknown[][]; numbers: unknown[][]; remove: string[] };
          for (const row of upsert) {
            const b = decodeBot(row);
            bots.current.set(b.channel, b);
          }
          for (const row of numbers) applyNumbers(bots.current, row);
          for (const c of remove) bots.current.delete(c);
          setVersion((v) => v + 1);
        } else if (name === 'health') {
          setHealth((data as { actors: ActorHealth[] } | null)?.actors ?? null);
        } else if (name === 'alerts') {
          setAlerts((data as { alerts: Alert[] }).alerts);
        }
      },
      setLive,
      abort.signal,
    );
    const tick = setInterval(() => setNow(Date.now()), 1_000);
    return () => {
      abort.abort();
      clearInterval(tick);
    };
  }, []);

  const loadAlerts = () =>
    has('GET /alerts') &&
    void api<{ alerts: Alert[] }>('/alerts').then(
      (r) => setAlerts(r.alerts),
      () => {},
    );
  useEffect(() => {
    loadAlerts();
    const loadSpend = () =>
      has('GET /usage') &&
      void api<unknown>(`/usage${qs({ since: '1d', by: 'day' })}`).then(
        (r) => setSpend(usageRows(r).find((row) => row.key === new Date().toISOString().slice(0, 10))?.cost_usd ?? 0),
        () => {},
      );
    loadSpend();
    const timer = setInterval(loadSpend, 60_000);
    return () => clearInterval(timer);
  }, []);

  // Several monitors share the store: this one's bots come live from its registry, the others'
  // from the store (GET /fleet, as their monitors last wrote them; `unknown` while one is down).
  useEffect(() => {
    if (!has('GET /hosts') || !has('GET /fleet')) return;
    let stop = false;
    const load = async () => {
      const h = await api<{ host: string; hosts: { host: string }[] }>('/hosts').catch(() => null);
      if (stop || !h) return;
      const names = h.hosts.map((x) => x.host);
      setHosts({ own: h.host, names });
      if (names.filter((n) => n !== h.host).length === 0) return setOthers([]);
      const fleet = await api<HostBot[]>('/fleet').catch(() => null);
      if (!stop && fleet) setOthers(fleet.filter((b) => b.host !== h.host));
    };
    void load();
    const timer = setInterval(() => void load(), 5_000);
    return () => {
      stop = true;
      clearInterval(timer);
    };
  }, []);
  const several = hosts !== null && new Set([hosts.own, ...hosts.names]).size > 1;
  const all = useMemo(() => {
    if (!several) return bots.current;
    const merged = new Map<string, FeedBot>();
    for (const b of bots.current.values()) {
      const own = { ...b, host: hosts.own } as FeedBot;
      merged.set(botKey(own), own);
    }
    for (const b of others) merged.set(botKey(b as unknown as FeedBot), b as unknown as FeedBot);
    return merged;
  }, [version, others, several]);
  const counts = useMemo(() => {
    const c: Record<string, number> = {};
    for (const b of all.values()) c[b.status] = (c[b.status] ?? 0) + 1;
    return c;
  }, [all, version]);
  const showHost = several || new Set([...all.values()].map(hostOf).filter(Boolean)).size > 1;
  const rows = useMemo(
    () => sortAndFilter(all.values(), search, status, sort, hostFilter),
    [all, version, search, status, sort, hostFilter],
  );
  useEffect(() => {
    // The first render with the fleet in it: the scale test reads this mark (navigation → ready).
    if (version === 1) performance.mark('fleet-ready');
  }, [version]);
  const onSort = (key: SortKey) => setSort((s) => ({ key, dir: s.key === key ? (-s.dir as 1 | -1) : 1 }));

  return html`
    <${Summary} counts=${counts} total=${all.size} health=${health} alerts=${has('GET /alerts') ? alerts : null} spend=${spend} live=${live} />
    <main>
      <section class="panel" id="fleet" aria-labelledby="fleet-title">
        <div class="panel-head">
          <h2 id="fleet-title">Fleet</h2>
          <div class="filters" role="search">
            <input type="search" id="search" placeholder="Search channels" aria-label="Search channels" value=${search}
              onInput=${(e: Event) => setSearch((e.currentTarget as HTMLInputElement).value)} />
            <label>Status <select id="status-filter" value=${status} onChange=${(e: Event) => setStatus((e.currentTarget as HTMLSelectElement).value)}>
              <option value="">all</option>${['online', 'stale', 'dead', 'offline', ...(several ? ['unknown'] : [])].map((s) => html`<option value=${s}>${s} (${counts[s] ?? 0})</option>`)}
            </select></label>
            ${
              several &&
              html`<label>Host <select id="host-filter" value=${hostFilter} onChange=${(e: Event) => setHostFilter((e.currentTarget as HTMLSelectElement).value)}>
              <option value="">all</option>${hosts.names.map((h) => html`<option value=${h}>${h}${h === hosts.own ? ' (this monitor)' : ''}</option>`)}
            </select></label>`
            }
            <span class="muted" aria-live="polite" id="shown">${rows.length} of ${all.size} shown</span>
          </div>
        </div>
        <${FleetTable} rows=${rows} total=${all.size} showHost=${showHost} sort=${sort} onSort=${onSort} onSelect=${setSelected} now=${now + skew} />
      </section>
      ${selected && html`<${BotDetailView} key=${botKey(selected)} channel=${selected.channel} host=${hostOf(selected) || undefined} bot=${all.get(botKey(selected)) ?? all.get(selected.channel)} onClose=${() => setSelected(null)} />`}
      <${AlertsPanel} has=${has} alerts=${alerts} admin=${s.admin} onChanged=${loadAlerts} />
      <${LlmPanel} has=${has} />
      <${HealthPanel} health=${health} />
    </main>`;
}

function App() {
  const [s, setSession] = useState<Session | null>(null);
  const [wrong, setWrong] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const check = () =>
    session().then(
      (r) => {
        performance.mark('session');
        setWrong(r.token_required && !r.authorised && token.get() !== null);
        setSession(r);
      },
      (e: Error & { status?: number }) =>
        setError(e.status !== undefined ? e.message : `the monitor does not answer: ${e.message}`),
    );
  useEffect(() => void check(), []);
  if (error) return html`<p class="error" role="alert">${error}</p>`;
  if (!s) return html`<p class="loading">Connecting…</p>`;
  if (!s.authorised)
    return html`<${TokenForm} wrong=${wrong} onToken=${(t: string) => {
      token.set(t);
      void check();
    }} />`;
  return html`<${Dashboard} s=${s} />`;
}

render(html`<${App} />`, document.getElementById('app')!);
