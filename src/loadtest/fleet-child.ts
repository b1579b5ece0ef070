// One loadtest bot process: many simulated bots, each registering with a real pid (this process's,
// or one given per bot), heartbeating with jitter and `ts`, and sending llm_usage when told to.
// Started by src/loadtest/fleet.ts; protocol and lifecycle in fleet-messages.ts.
//
// Persistent bots keep one connection (reconnect and re-register if it drops). One-shot bots open a
// connection per message, as the old Python bots do; those connections go through a bounded queue
// with at most `oneshotConcurrency` in flight, so the generator cannot exhaust its own fds.
//
// Counting is what makes the loadtest's verdict mean something: a line counts as written only when
// its write callback fired without error (the bytes are in the kernel's socket buffer, which the
// monitor reads even after the client closed). Lines that never got that far are counted as failed
// and are not expected in the database.
import net from 'node:net';
import { encodeLine, stampedLine } from '../protocol/encode.js';
import { openFilesLimit } from '../proc.js';
import {
  emptyCounters,
  type ChildConfig,
  type ChildCounters,
  type ChildReport,
  type ParentCommand,
} from './fleet-messages.js';

/**
 * Persistent connects started per second by one process. A Unix-socket connect completes as soon as
 * it is queued in the listen backlog, so limiting connects in flight limits nothing: a fleet
 * connecting at once overflows the monitor's backlog (EAGAIN; the bots retry, counted). Pacing keeps
 * the start of a run clean: 4 processes connect 10,000 bots in about 2.5 s.
 */
const CONNECTS_PER_SECOND = 1_000;
/** Lines written in one write() in burst mode: one syscall per 64 lines keeps the generator off the monitor's CPU. */
const BURST_LINES_PER_WRITE = 64;
/** Queued one-shot messages beyond this are failed at once rather than held (bounded memory). */
const MAX_ONESHOT_QUEUE = 200_000;
const PROGRESS_MS = 500;
const LLM_TICK_MS = 10;
const END_TIMEOUT_MS = 5_000;
/** Heartbeat intervals vary by ±10 % so bots that started together drift apart, as real ones do. */
const JITTER = 0.1;

interface Bot {
  index: number;
  pid: number;
  persistent: boolean;
  /** Persistent only: the open connection, null while (re)connecting. */
  socket: net.Socket | null;
  registered: boolean;
  /** A register or heartbeat of this bot was not written: it was not reliably heartbeating. */
  failed: boolean;
  heartbeatTimer: NodeJS.Timeout | null;
  /** Its lines, encoded once (register, heartbeat and unregister get `ts` stamped per send). */
  lines: Record<Exclude<OneShotKind, 'llm'>, (ts: number) => string>;
  llmLine: string;
}

type OneShotKind = 'register' | 'heartbeat' | 'llm' | 'unregister';
interface OneShotJob {
  kind: OneShotKind;
  bot: Bot;
}

const counters: ChildCounters = emptyCounters();

let config: ChildConfig;
let bots: Bot[] = [];
let ending = false;
/** llm_usage lines handed to a socket or the one-shot queue whose outcome is not known yet. */
let llmOutstanding = 0;
let onLlmSettled: (() => void) | null = null;

function report(msg: ChildReport): void {
  if (msg.type !== 'ready') {
    const cpu = process.cpuUsage();
    counters.cpu_ms = Math.round((cpu.user + cpu.system) / 1000);
  }
  process.stdout.write(`${JSON.stringify(msg)}\n`);
}

// ---- lines -------------------------------------------------------------------------------------

function makeBot(index: number, persistent: boolean): Bot {
  const channel = `${config.prefix}_${index}`;
  const pid = config.pids?.[index - config.firstIndex] ?? process.pid;
  const auth = config.token !== undefined ? { token: config.token } : {};
  const lines = {
    register: stampedLine({ type: 'register', channel, pid, features: { loadtest: true }, ...auth }),
    heartbeat: stampedLine({ type: 'heartbeat', channel, pid, ...auth }),
    unregister: stampedLine({ type: 'unregister', channel, pid, ...auth }),
  };
  const llmLine = encodeLine({
    type: 'llm_usage',
    channel,
    model: 'gpt-4o-mini',
    feature: 'loadtest',
    tokens_in: 120,
    tokens_out: 40,
    latency_ms: 350,
    ...auth,
  });
  return {
    index,
    pid,
    persistent,
    socket: null,
    registered: false,
    failed: false,
    heartbeatTimer: null,
    lines,
    llmLine,
  };
}

/**
 * `ts` is stamped when the line is handed to the socket (for one-shot: when the connect starts), in
 * fractional ms on the same clock the registry reads (timeOrigin + now): Date.now()'s whole
 * milliseconds would add up to 1 ms of rounding to every latency measured.
 */
function line(bot: Bot, kind: Exclude<OneShotKind, 'llm'>): string {
  return bot.lines[kind](performance.timeOrigin + performance.now());
}

function written(kind: OneShotKind, bot: Bot, n = 1): void {
  counters.lines_written += n;
  switch (kind) {
    case 'register':
      if (!bot.registered) {
        bot.registered = true;
        counters.registered++;
        checkConnected();
      }
      return;
    case 'heartbeat':
      counters.heartbeats_written += n;
      return;
    case 'llm':
      counters.llm_written += n;
      settleLlm(n);
      return;
    case 'unregister':
      return;
  }
}

function failed(kind: OneShotKind, bot: Bot, n = 1): void {
  switch (kind) {
    case 'register':
      bot.failed = true;
      return;
    case 'heartbeat':
      counters.heartbeats_failed += n;
      bot.failed = true;
      return;
    case 'llm':
      counters.llm_failed += n;
      settleLlm(n);
      return;
    case 'unregister':
      return;
  }
}

function settleLlm(n: number): void {
  llmOutstanding -= n;
  if (llmOutstanding === 0 && onLlmSettled) onLlmSettled();
}

// ---- persistent bots ---------------------------------------------------------------------------

const connectQueue: Bot[] = [];
let connectHead = 0;
let connectTimer: NodeJS.Timeout | null = null;
let connectTokens = 0;
let connectRefilledAt = 0;

function queueConnect(bot: Bot): void {
  connectQueue.push(bot);
  connectTimer ??= setInterval(pumpConnects, 10);
}

function pumpConnects(): void {
  const now = performance.now();
  connectTokens = Math.min(
    CONNECTS_PER_SECOND / 50,
    connectTokens + ((now - connectRefilledAt) * CONNECTS_PER_SECOND) / 1000,
  );
  connectRefilledAt = now;
  while (connectTokens >= 1 && connectHead < connectQueue.length && !ending) {
    connectTokens--;
    connect(connectQueue[connectHead++]);
  }
  if (connectHead === connectQueue.length) {
    connectQueue.length = connectHead = 0;
    if (connectTimer) clearInterval(connectTimer);
    connectTimer = null;
  }
}

function connect(bot: Bot): void {
  const socket = net.connect(config.socket);
  let open = false;
  socket.once('connect', () => {
    open = true;
    if (ending) {
      socket.destroy();
      return;
    }
    bot.socket = socket;
    counters.connected++;
    const registerLine = line(bot, 'register');
    socket.write(registerLine, (err) => (err ? failed('register', bot) : written('register', bot)));
    if (!bot.heartbeatTimer) scheduleHeartbeat(bot, Math.random() * config.heartbeatMs);
  });
  socket.on('error', () => {
    if (!open) counters.connect_failures++;
  });
  socket.once('close', () => {
    if (!open) {
      if (!ending) setTimeout(() => queueConnect(bot), 50 + Math.random() * 200);
      return;
    }
    if (bot.socket === socket) {
      bot.socket = null;
      counters.connected--;
    }
    if (ending) return;
    counters.reconnects++;
    setTimeout(() => queueConnect(bot), 100 + Math.random() * 200);
  });
}

// ---- one-shot messages -------------------------------------------------------------------------

const oneshotQueue: OneShotJob[] = [];
let oneshotHead = 0;
let oneshotInFlight = 0;
/** Burst mode: one-shot llm lines still to send; a failed one is retried (the burst is a row count). */
let burstOneshotRemaining = 0;
let onOneshotIdle: (() => void) | null = null;

function enqueueOneShot(kind: OneShotKind, bot: Bot): void {
  if (oneshotQueue.length - oneshotHead >= MAX_ONESHOT_QUEUE) {
    failed(kind, bot);
    return;
  }
  oneshotQueue.push({ kind, bot });
  pumpOneShots();
}

function pumpOneShots(): void {
  while (oneshotInFlight < config.oneshotConcurrency) {
    if (oneshotHead < oneshotQueue.length) {
      const job = oneshotQueue[oneshotHead++];
      if (oneshotHead > 4096 && oneshotHead * 2 > oneshotQueue.length) {
        oneshotQueue.splice(0, oneshotHead);
        oneshotHead = 0;
      }
      sendOneShot(job.kind, job.bot, false);
    } else if (burstOneshotRemaining > 0) {
      burstOneshotRemaining--;
      sendOneShot('llm', burstBot(), true);
    } else {
      break;
    }
  }
  if (oneshotInFlight === 0 && oneshotHead >= oneshotQueue.length && burstOneshotRemaining === 0 && onOneshotIdle)
    onOneshotIdle();
}

let burstCursor = 0;
function burstBot(): Bot {
  // One-shot bots come after the persistent ones (see start()).
  return bots[config.persistent + (burstCursor++ % config.oneshot)];
}

function sendOneShot(kind: OneShotKind, bot: Bot, retry: boolean): void {
  oneshotInFlight++;
  const text = kind === 'llm' ? bot.llmLine : line(bot, kind);
  const socket = net.connect(config.socket);
  let open = false;
  let done = false;
  socket.once('connect', () => {
    open = true;
    counters.oneshot_connections++;
    socket.end(text);
  });
  socket.once('finish', () => {
    done = true;
  });
  socket.on('error', () => {
    if (!open) counters.connect_failures++;
  });
  socket.once('close', () => {
    oneshotInFlight--;
    if (done) written(kind, bot);
    else if (retry) burstOneshotRemaining++;
    else failed(kind, bot);
    pumpOneShots();
  });
}

// ---- heartbeats --------------------------------------------------------------------------------

function scheduleHeartbeat(bot: Bot, delayMs: number): void {
  bot.heartbeatTimer = setTimeout(() => {
    if (ending) return;
    heartbeat(bot);
    scheduleHeartbeat(bot, config.heartbeatMs * (1 - JITTER + 2 * JITTER * Math.random()));
  }, delayMs);
}

function heartbeat(bot: Bot): void {
  if (!bot.persistent) {
    enqueueOneShot('heartbeat', bot);
    return;
  }
  const socket = bot.socket;
  if (!socket) {
    failed('heartbeat', bot); // connection down at beat time: this beat is missing
    return;
  }
  socket.write(line(bot, 'heartbeat'), (err) => (err ? failed('heartbeat', bot) : written('heartbeat', bot)));
}

// ---- llm_usage ---------------------------------------------------------------------------------

let llmTimer: NodeJS.Timeout | null = null;
let llmCursor = 0;

function startLlmRate(rate: number): void {
  const startedAt = performance.now();
  let issued = 0;
  const pending = new Map<Bot, number>();
  llmTimer = setInterval(() => {
    const due = Math.floor((rate * (performance.now() - startedAt)) / 1000) - issued;
    for (let i = 0; i < due; i++) {
      issued++;
      llmOutstanding++;
      const bot = nextLlmBot();
      if (!bot) failed('llm', bots[0]);
      else if (bot.persistent) pending.set(bot, (pending.get(bot) ?? 0) + 1);
      else enqueueOneShot('llm', bot);
    }
    // Lines due for the same bot in one tick go out in one write, as a busy bot's would.
    for (const [bot, n] of pending) writeLlm(bot, n);
    pending.clear();
  }, LLM_TICK_MS);
}

/** Round-robin over the fleet, skipping persistent bots whose connection is down. */
function nextLlmBot(): Bot | null {
  for (let tries = 0; tries < bots.length; tries++) {
    const bot = bots[llmCursor++ % bots.length];
    if (!bot.persistent || bot.socket) return bot;
  }
  return null;
}

/** Writes n llm lines; returns write()'s backpressure answer. */
function writeLlm(bot: Bot, n: number): boolean {
  const socket = bot.socket;
  if (!socket) {
    failed('llm', bot, n);
    return true;
  }
  return socket.write(n === 1 ? bot.llmLine : bot.llmLine.repeat(n), (err) =>
    err ? failed('llm', bot, n) : written('llm', bot, n),
  );
}

function stopLlm(): Promise<void> {
  if (llmTimer) clearInterval(llmTimer);
  llmTimer = null;
  return llmSettled();
}

function llmSettled(): Promise<void> {
  if (llmOutstanding === 0) return Promise.resolve();
  return new Promise((resolve) => {
    onLlmSettled = () => {
      onLlmSettled = null;
      resolve();
    };
  });
}

/** Benchmarks: `rows` lines as fast as the sockets take them, honouring backpressure ('drain'). */
async function burst(rows: number): Promise<void> {
  const persistent = bots.filter((b) => b.persistent && b.socket);
  const toOneshot =
    config.oneshot === 0 ? 0 : persistent.length === 0 ? rows : Math.round((rows * config.oneshot) / bots.length);
  const toPersistent = rows - toOneshot;
  llmOutstanding += rows;
  const settled = llmSettled();
  if (persistent.length === 0 && toPersistent > 0) failed('llm', bots[0], toPersistent);
  persistent.forEach((bot, i) => {
    let quota = Math.floor(toPersistent / persistent.length) + (i < toPersistent % persistent.length ? 1 : 0);
    // A connection that drops while waiting for 'drain' fails what it had left, so the burst ends.
    bot.socket!.once('close', () => {
      if (quota > 0) failed('llm', bot, quota);
      quota = 0;
    });
    const pump = () => {
      while (quota > 0) {
        const n = Math.min(BURST_LINES_PER_WRITE, quota);
        quota -= n;
        if (!writeLlm(bot, n)) {
          bot.socket?.once('drain', pump);
          return;
        }
      }
    };
    pump();
  });
  burstOneshotRemaining += toOneshot;
  pumpOneShots();
  await settled;
}

// ---- start and end -----------------------------------------------------------------------------

let connectedReported = false;
function checkConnected(): void {
  if (connectedReported || counters.registered < bots.length) return;
  connectedReported = true;
  report({ type: 'connected', counters });
}

async function end(): Promise<void> {
  if (ending) return;
  ending = true;
  if (llmTimer) clearInterval(llmTimer);
  for (const bot of bots) if (bot.heartbeatTimer) clearTimeout(bot.heartbeatTimer);
  burstOneshotRemaining = 0;
  const closed: Promise<unknown>[] = [];
  for (const bot of bots) {
    const socket = bot.socket;
    if (bot.persistent && socket) {
      closed.push(new Promise((resolve) => socket.once('close', resolve)));
      socket.end(line(bot, 'unregister'));
    } else if (!bot.persistent && bot.registered) {
      enqueueOneShot('unregister', bot);
    }
  }
  closed.push(
    new Promise<void>((resolve) => {
      onOneshotIdle = resolve;
      pumpOneShots();
    }),
  );
  await Promise.race([Promise.all(closed), new Promise((r) => setTimeout(r, END_TIMEOUT_MS))]);
  report({ type: 'ended', counters, failed_bots: bots.filter((b) => b.failed || !b.registered).map((b) => b.index) });
  process.exit(0);
}

function start(): void {
  bots = [];
  for (let i = 0; i < config.persistent; i++) bots.push(makeBot(config.firstIndex + i, true));
  for (let i = 0; i < config.oneshot; i++) bots.push(makeBot(config.firstIndex + config.persistent + i, false));
  report({ type: 'ready', pid: process.pid, open_files_limit: openFilesLimit()?.soft ?? null });
  for (const bot of bots) {
    if (bot.persistent) {
      queueConnect(bot);
    } else {
      enqueueOneShot('register', bot);
      scheduleHeartbeat(bot, Math.random() * config.heartbeatMs);
    }
  }
  checkConnected();
  setInterval(() => report({ type: 'progress', counters }), PROGRESS_MS).unref();
}

async function command(cmd: ParentCommand): Promise<void> {
  switch (cmd.cmd) {
    case 'llm':
      startLlmRate(cmd.rate);
      return;
    case 'burst':
      await burst(cmd.rows);
      report({ type: 'burst_done', counters });
      return;
    case 'stop_llm':
      await stopLlm();
      report({ type: 'llm_stopped', counters });
      return;
    case 'end':
      await end();
      return;
    default:
      process.stderr.write(`loadtest bot process: unknown command ${JSON.stringify(cmd)}\n`);
  }
}

// The parent coordinates shutdown: a terminal's Ctrl-C reaches the whole process group, and the
// parent answers it by telling us to unregister and end. If the parent itself is gone, stdin closes.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => void end());
process.stdout.on('error', () => {}); // parent gone: EPIPE is not our problem, stdin's end is

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk: string) => {
  input += chunk;
  let nl: number;
  while ((nl = input.indexOf('\n')) !== -1) {
    const text = input.slice(0, nl);
    input = input.slice(nl + 1);
    if (!config) {
      config = JSON.parse(text) as ChildConfig;
      start();
    } else {
      void command(JSON.parse(text) as ParentCommand);
    }
  }
});
process.stdin.on('end', () => void end());
