// The alerter's cost at fleet scale: the AlertEngine and Deliveries classes the actor runs, in this
// process (like bench/sampler.ts runs the sampler class), posting to a real HTTP receiver that is a
// separate process on 127.0.0.1 (so its parsing is not counted here).
//
//   churn   10,000 bots registered, then 1 % of them change state every second (half turn stale,
//           half recover) for DURATION_S: this process's CPU %, and latency from a transition to the
//           receiver holding the POST that lists it (p50/p99), with groupWait/groupInterval 1 ms
//           (the machinery alone; a real notification waits groupWaitMs on top)
//   fleet   10,000 bots stale at once, default grouping (groupWait 10 s): POSTs, payload size, time
//           from the transitions to the last POST received; and the same with groupWait 1 ms
//
// Run: npx tsc -p . && node dist/bench/alerts.js
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import type { AlerterInput } from '../src/actors/alerter-messages.js';
import { Deliveries } from '../src/alerts/delivery.js';
import { AlertEngine, type EngineSettings } from '../src/alerts/engine.js';
import { defaultConfig, resolveConfig } from '../src/config.js';
import { createLogger } from '../src/log.js';
import { sleep } from '../test/helpers/wait.js';

const BOTS = 10_000;
const DURATION_S = 20;
const TICK_MS = 100;

/**
 * Prints one line per POST: receive time, bytes, alerts listed, and the age (ms since its start or
 * end) of each alert listed for the first time with that status (a group's notification lists
 * every alert still firing; those were measured when they first came).
 */
const RECEIVER = `
const http = require('node:http');
const seen = new Set();
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const now = Date.now();
    const buf = Buffer.concat(chunks);
    const body = JSON.parse(buf.toString('utf8'));
    const fresh = body.alerts.filter((a) => !seen.has(a.fingerprint + a.status + a.startsAt));
    for (const a of fresh) seen.add(a.fingerprint + a.status + a.startsAt);
    const ages = fresh.map((a) => now - Date.parse(a.status === 'firing' ? a.startsAt : a.endsAt));
    process.stdout.write(JSON.stringify({ at: now, bytes: buf.length, alerts: body.alerts.length, ages }) + '\\n');
    res.end('ok');
  });
});
server.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: server.address().port }) + '\\n'));
`;

interface Post {
  at: number;
  bytes: number;
  alerts: number;
  ages: number[];
}

export interface AlertBenchResult {
  churn: {
    bots: number;
    seconds: number;
    transitions: number;
    notifications: number;
    posts: number;
    cpu_pct: number;
    latency_p50_ms: number;
    latency_p99_ms: number;
    heap_mb: number;
  };
  fleet: {
    label: string;
    groupWaitMs: number;
    bots: number;
    posts: number;
    bytes: number;
    alerts_listed: number;
    seconds_to_last_post: number;
    engine_ms: number;
  }[];
}

const round1 = (n: number) => Math.round(n * 10) / 10;
const pct = (xs: number[], p: number) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
};

async function startReceiver(): Promise<{ child: ChildProcess; port: number; posts: Post[] }> {
  const child = spawn(process.execPath, ['-e', RECEIVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  const posts: Post[] = [];
  const lines = createInterface({ input: child.stdout });
  const port = await new Promise<number>((resolve) => {
    lines.on('line', (l) => {
      const msg = JSON.parse(l) as Post & { port?: number };
      if (msg.port !== undefined) resolve(msg.port);
      else posts.push(msg);
    });
  });
  return { child, port, posts };
}

function harness(port: number, settings: Partial<EngineSettings>) {
  const config = resolveConfig({ alerts: { webhooks: [`http://127.0.0.1:${port}/`] } });
  const base = defaultConfig().alerts;
  const log = createLogger('error');
  let notifications = 0;
  const deliveries = new Deliveries(config, { attempted: () => {}, changed: () => {} }, log);
  const engine = new AlertEngine(
    {
      groupWaitMs: base.groupWaitMs,
      groupIntervalMs: base.groupIntervalMs,
      repeatIntervalMs: base.repeatIntervalMs,
      flapWindowMs: base.flap.windowMs,
      flapMaxTransitions: base.flap.maxTransitions,
      missingGraceMs: 120_000,
      staleAfterMs: 120_000,
      host: config.hostName,
      ...settings,
    },
    (n) => {
      notifications++;
      deliveries.enqueue(n, Date.now());
    },
  );
  const timer = setInterval(() => engine.tick(Date.now()), TICK_MS);
  return {
    engine,
    deliveries,
    notifications: () => notifications,
    stop: () => {
      clearInterval(timer);
      deliveries.stop();
    },
  };
}

type Transition = Extract<AlerterInput, { type: 'transition' }>;
const transition = (
  channel: string,
  from: Transition['from'],
  to: 'online' | 'stale',
  at: number,
  reason = to === 'stale' ? 'no_heartbeat' : 'heartbeat_resumed',
): Transition => ({ type: 'transition', at, channel, pid: 1, from, to, reason, planned: false });

async function churn(port: number, posts: Post[]): Promise<AlertBenchResult['churn']> {
  const h = harness(port, { groupWaitMs: 1, groupIntervalMs: 1 });
  const channels = Array.from({ length: BOTS }, (_, i) => `bot_${i}`);
  for (const c of channels) h.engine.apply(transition(c, null, 'online', Date.now(), 'registered'), Date.now());
  const stale = new Set<string>();
  const first = posts.length;
  const perSecond = BOTS / 100;
  let transitions = 0;
  let next = 0;
  const cpu = process.cpuUsage();
  const started = performance.now();
  for (let s = 0; s < DURATION_S; s++) {
    const secondStart = performance.now();
    // Spread over the second in 10 slices, as transitions arrive in practice.
    for (let slice = 0; slice < 10; slice++) {
      for (let i = 0; i < perSecond / 10; i++) {
        const channel = channels[next++ % BOTS];
        const now = Date.now();
        const to = stale.has(channel) ? 'online' : 'stale';
        h.engine.apply(transition(channel, to === 'online' ? 'stale' : 'online', to, now), now);
        if (to === 'stale') stale.add(channel);
        else stale.delete(channel);
        transitions++;
      }
      await sleep(Math.max(0, secondStart + (slice + 1) * 100 - performance.now()));
    }
  }
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  await h.deliveries.idle(10_000);
  h.stop();
  const ages = posts.slice(first).flatMap((p) => p.ages);
  return {
    bots: BOTS,
    seconds: round1(seconds),
    transitions,
    notifications: h.notifications(),
    posts: posts.length - first,
    cpu_pct: round1(((used.user + used.system) / 1000 / (seconds * 1000)) * 100),
    latency_p50_ms: pct(ages, 50),
    latency_p99_ms: pct(ages, 99),
    heap_mb: round1(process.memoryUsage().heapUsed / 1048576),
  };
}

async function fleet(
  port: number,
  posts: Post[],
  label: string,
  groupWaitMs: number,
): Promise<AlertBenchResult['fleet'][number]> {
  const h = harness(port, { groupWaitMs });
  const channels = Array.from({ length: BOTS }, (_, i) => `fleet_bot_${i}`);
  for (const c of channels) h.engine.apply(transition(c, null, 'online', Date.now(), 'registered'), Date.now());
  const first = posts.length;
  const t0 = Date.now();
  const e0 = performance.now();
  for (const c of channels) h.engine.apply(transition(c, 'online', 'stale', t0), t0);
  const engineMs = performance.now() - e0;
  const listed = () => posts.slice(first).reduce((n, p) => n + p.ages.length, 0);
  while (listed() < BOTS && Date.now() - t0 < groupWaitMs + 60_000) await sleep(20);
  await sleep(200); // a further POST would have arrived by now
  h.stop();
  const mine = posts.slice(first);
  return {
    label,
    groupWaitMs,
    bots: BOTS,
    posts: mine.length,
    bytes: mine.reduce((n, p) => n + p.bytes, 0),
    alerts_listed: listed(),
    seconds_to_last_post: round1(((mine.at(-1)?.at ?? Date.now()) - t0) / 1000),
    engine_ms: round1(engineMs),
  };
}

export async function benchAlerts(): Promise<AlertBenchResult> {
  const receiver = await startReceiver();
  try {
    const churnResult = await churn(receiver.port, receiver.posts);
    const defaults = await fleet(receiver.port, receiver.posts, 'default grouping', defaultConfig().alerts.groupWaitMs);
    const immediate = await fleet(receiver.port, receiver.posts, 'groupWait 1 ms', 1);
    return { churn: churnResult, fleet: [defaults, immediate] };
  } finally {
    receiver.child.kill('SIGKILL');
  }
}

export function formatAlertBench(r: AlertBenchResult): string {
  const c = r.churn;
  return [
    `| bots | transitions | seconds | notifications | POSTs | alerter CPU % | transition → POST p50 ms | p99 ms | heap MB |`,
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    `| ${c.bots.toLocaleString('en')} | ${c.transitions.toLocaleString('en')} (1 %/s) | ${c.seconds} | ${c.notifications} | ${c.posts} | ${c.cpu_pct} | ${c.latency_p50_ms} | ${c.latency_p99_ms} | ${c.heap_mb} |`,
    '',
    '| 10,000 bots stale at once | POSTs | bytes | alerts listed | transitions → last POST s | engine ms for the 10,000 transitions |',
    '| --- | --- | --- | --- | --- | --- |',
    ...r.fleet.map(
      (f) =>
        `| ${f.label} (groupWaitMs ${f.groupWaitMs}) | ${f.posts} | ${f.bytes.toLocaleString('en')} | ${f.alerts_listed.toLocaleString('en')} | ${f.seconds_to_last_post} | ${f.engine_ms} |`,
    ),
  ].join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const result = await benchAlerts();
  process.stdout.write(`${formatAlertBench(result)}\n`);
}
