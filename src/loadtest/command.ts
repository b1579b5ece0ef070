// `kissmon loadtest`: the CLI face of run.ts. Registered in src/cli.ts with program.addCommand().
//
// Exit codes: 0 every check passed · 1 the tool itself failed (no monitor answering, a bot process
// died) · 2 bad usage, or a fleet the OS limits cannot hold (the message says what to change) ·
// 3 the monitor failed a check (lost rows, false stale, bots that could not register) · 130 interrupted.
import { Command, InvalidArgumentError, Option } from 'commander';
import { clientSettings, configOption, integerOption, secondsOption, socketOption } from '../cli-options.js';
import { BOTS_PER_PROCESS, defaultProcesses } from './limits.js';
import type { LoadtestReport } from './run.js';

const EXIT_USAGE = 2;
const EXIT_CHECK_FAILED = 3;
const EXIT_INTERRUPTED = 130;

const rate = (value: string) => {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0)
    throw new InvalidArgumentError('--llm-rate must be a number of lines per second, 0 or more');
  return n;
};

export function loadtestCommand(): Command {
  return new Command('loadtest')
    .description(
      'simulate a fleet of bots against a running monitor, then check its database and registry: lost rows, false stale, latency, cpu/rss',
    )
    .addOption(socketOption())
    .option('--db <path>', 'the database to count rows in (default: the one the running monitor names)')
    .addOption(configOption())
    .requiredOption('--bots <n>', 'simulated bots', integerOption('--bots', 1, 1_000_000))
    .requiredOption('--duration <sec>', 'measured window, after every bot has connected', secondsOption('--duration'))
    .option(
      '--heartbeat-interval <sec>',
      'each bot heartbeats this often, ±10 % jitter',
      secondsOption('--heartbeat-interval'),
      30,
    )
    .option('--llm-rate <per_sec>', 'llm_usage lines per second, whole fleet', rate, 100)
    .addOption(
      new Option(
        '--mode <mode>',
        'persistent: one connection per bot; oneshot: one per message (old Python bots); mixed: half each',
      )
        .choices(['persistent', 'oneshot', 'mixed'])
        .default('persistent'),
    )
    .option(
      '--processes <k>',
      `bot processes (real pids); default one per ${BOTS_PER_PROCESS} bots, at least 2`,
      integerOption('--processes', 1, 1_000),
    )
    .option(
      '--pid-per-bot',
      'also start one idle process per bot and register each bot with its own pid, so the sampler watches N distinct processes',
    )
    .option('--token <token>', 'auth token for every message (monitor started with --auth-tokens)')
    .option(
      '--connect-timeout <sec>',
      'how long the fleet may take to connect and register',
      secondsOption('--connect-timeout'),
      60,
    )
    .option('--json', 'print one JSON object instead of the summary')
    .showHelpAfterError()
    .exitOverride()
    .action(async function (this: Command, opts) {
      // The monitor's sockets as `kissmon start` resolves them (config file < env < flags). Its
      // database comes from the monitor itself (GET /settings); --db overrides. Only read, to count
      // what landed.
      const monitor = clientSettings(opts);
      const processes: number = opts.processes ?? defaultProcesses(opts.bots);
      if (processes > opts.bots)
        this.error(`error: --processes (${processes}) cannot exceed --bots (${opts.bots})`, {
          exitCode: EXIT_USAGE,
          code: 'kissmon.usage',
        });

      const controller = new AbortController();
      const interrupt = () => controller.abort();
      process.on('SIGINT', interrupt);
      process.on('SIGTERM', interrupt);
      const tty = process.stderr.isTTY;
      const progress = tty
        ? (line: string) => process.stderr.write(`\r\x1b[2K${line.slice(0, (process.stderr.columns || 200) - 1)}`)
        : undefined;
      const note = (message: string) => process.stderr.write(`${tty ? '\r\x1b[2K' : ''}kissmon loadtest: ${message}\n`);
      // Loaded here, not at the top: every other kissmon command would pay for the loadtest's modules.
      const { runLoadtest, LoadtestInterrupted, LoadtestLimitError } = await import('./run.js');
      let report: LoadtestReport;
      try {
        report = await runLoadtest(
          {
            socket: monitor.socketPath,
            control: monitor.controlSocketPath,
            admin: monitor.adminSocketPath,
            db: opts.db as string | undefined,
            fallbackDb: monitor.dbPath,
            bots: opts.bots,
            durationS: opts.duration,
            heartbeatS: opts.heartbeatInterval,
            llmRate: opts.llmRate,
            mode: opts.mode,
            processes,
            pidPerBot: Boolean(opts.pidPerBot),
            token: opts.token,
            connectTimeoutS: opts.connectTimeout,
          },
          { progress, note, signal: controller.signal },
        );
      } catch (err) {
        if (err instanceof LoadtestInterrupted || err instanceof LoadtestLimitError) {
          note(err.message);
          process.exitCode = err instanceof LoadtestInterrupted ? EXIT_INTERRUPTED : EXIT_USAGE;
          return;
        }
        throw err;
      } finally {
        if (tty) process.stderr.write('\r\x1b[2K');
        process.off('SIGINT', interrupt);
        process.off('SIGTERM', interrupt);
      }
      process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
      if (!report.ok) process.exitCode = EXIT_CHECK_FAILED;
    });
}

const n = (x: number) => x.toLocaleString('en');

export function formatReport(r: LoadtestReport): string {
  const lat = r.latency_ms;
  const lines = [
    `kissmon loadtest: ${n(r.bots)} bots (${r.mode}${r.pid_per_bot ? ', one pid each' : ''}) in ${r.processes} processes, ${r.duration_s} s, heartbeat every ${r.heartbeat_interval_s} s, llm_usage ${n(r.llm_rate)}/s — channels ${r.prefix}_*`,
    `  registered         ${n(r.bots_registered)}/${n(r.bots)} in ${r.connect_s} s${r.connect_retries_at_start ? ` (${n(r.connect_retries_at_start)} connects retried)` : ''} · ${n(r.connect_failures)} connect failures during the run · ${n(r.reconnects)} reconnects${r.oneshot_connections ? ` · ${n(r.oneshot_connections)} one-shot connections` : ''}`,
    `  messages sent      ${n(r.messages_sent)} (${n(r.heartbeats_sent)} heartbeats, ${n(r.llm_rows_expected)} llm_usage at ${n(r.llm_rate_achieved)}/s)${r.heartbeats_failed || r.llm_rows_failed ? ` · not written: ${n(r.heartbeats_failed)} heartbeats, ${n(r.llm_rows_failed)} llm_usage` : ''}`,
    `  llm_usage rows     ${n(r.llm_rows_expected)} written · ${n(r.llm_rows_landed)} landed · lost ${n(r.lost)}`,
    `  false stale        ${n(r.false_stale)}${r.false_stale ? ` (${r.false_stale_detail.stale_events} stale, ${r.false_stale_detail.dead_events} dead, ${r.false_stale_detail.offline_events} offline events; ${r.false_stale_detail.not_online_at_end} not online at the end)` : ''}${r.false_stale_detail.excluded_bots ? ` · ${r.false_stale_detail.excluded_bots} bots not judged (a heartbeat of theirs could not be written)` : ''}`,
    `  heartbeat latency  p50 ${lat.p50} · p95 ${lat.p95} · p99 ${lat.p99} · max ${lat.max} ms (${n(lat.count)} messages, client ts → applied in the registry)`,
    `  monitor            pid ${r.monitor.pid} · cpu ${r.monitor.cpu_pct} % of one core · rss ${r.monitor.rss_mb} MB (peak ${r.monitor.rss_peak_mb} MB)${r.monitor.refused_connections ? ` · ${n(r.monitor.refused_connections)} connections refused` : ''}${r.monitor.dropped ? ` · ${n(r.monitor.dropped)} dropped` : ''}`,
    `  bot processes      cpu ${r.generator.cpu_pct} % of one core (shares the machine with the monitor)`,
    r.ok ? 'PASS' : `FAIL\n${r.problems.map((p) => `  - ${p}`).join('\n')}`,
  ];
  return `${lines.join('\n')}\n`;
}
