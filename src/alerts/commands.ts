// `kissmon alerts [--json]`, `kissmon alerts test`, `kissmon silence add|list|remove`: thin
// clients of the alerter's control routes (src/alerts/routes.ts). --json prints the route's JSON.
import { userInfo } from 'node:os';
import { Command } from 'commander';
import { alertSubject, type AlertView, type ReceiverTestResult, type SilenceView } from '../actors/alerter-messages.js';
import { clientSettings, configOption, plainTable, socketOption, UsageError } from '../cli-options.js';
import { DURATION_PATTERN } from '../duration.js';
import { requestControl } from '../http/control-client.js';

/** `alerts test` waits for the slowest receiver (each is cut off at its own timeout). */
const TEST_TIMEOUT_MS = 120_000;

const write = (text: string): void => void process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);

function since(iso: string): string {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 120 ? `${s}s ago` : s < 7200 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
}

export function alertCommand(): Command {
  const alerts = new Command('alerts')
    .description(
      'active and recently resolved alerts: state, since, silenced, last delivery (kissmon alerts test: a test notification to every receiver)',
    )
    .addOption(socketOption())
    .addOption(configOption())
    .option('--json', 'print the JSON of GET /alerts')
    .action(async (opts) => {
      const body = await requestControl<{ alerts: AlertView[] }>(
        clientSettings(opts).controlSocketPath,
        'GET',
        '/alerts',
      );
      if (opts.json) return write(JSON.stringify(body, null, 2));
      const table = plainTable([
        'alert',
        'subject',
        'severity',
        'state',
        'since',
        'silenced',
        'last delivery',
        'summary',
      ]);
      for (const a of body.alerts) {
        const delivery = a.lastDelivery
          ? `${a.lastDelivery.ok ? 'ok' : `FAILED (${a.lastDelivery.error ?? '?'})`} ${a.lastDelivery.receiver} ${since(a.lastDelivery.at)}`
          : '-';
        table.push([
          a.alertname,
          alertSubject(a.labels),
          a.severity,
          a.state,
          since(a.state === 'resolved' && a.endsAt ? a.endsAt : a.startsAt),
          a.silenced ? `yes (${a.silencedBy.length})` : 'no',
          delivery,
          a.annotations.summary.slice(0, 80),
        ]);
      }
      const firing = body.alerts.filter((a) => a.state === 'firing').length;
      write(`${table.toString()}\n${body.alerts.length} alerts (${firing} firing)`);
    });
  alerts
    .command('test')
    .description('send a test notification to every receiver now and report each result (exit 1 if one failed)')
    .addOption(socketOption())
    .addOption(configOption())
    .option('--json', 'print JSON')
    .action(async (_opts, cmd: Command) => {
      const opts = cmd.optsWithGlobals();
      const { results } = await requestControl<{ results: ReceiverTestResult[] }>(
        clientSettings(opts).adminSocketPath,
        'POST',
        '/alerts/test',
        TEST_TIMEOUT_MS,
      );
      if (results.some((r) => !r.ok) || results.length === 0) process.exitCode = 1;
      if (opts.json) return write(JSON.stringify({ results }, null, 2));
      if (results.length === 0)
        return write('no receivers configured (alerts.receivers in the config file, or --alert-webhook URL)');
      const table = plainTable(['receiver', 'result', 'status', 'ms', 'error']);
      for (const r of results) table.push([r.receiver, r.ok ? 'ok' : 'FAILED', r.status ?? '-', r.ms, r.error ?? '']);
      write(table.toString());
    });
  return alerts;
}

export function silenceCommand(): Command {
  const silence = new Command('silence').description(
    'silences: matching alerts are shown but not delivered (maintenance, deploys)',
  );
  silence
    .command('add')
    .description('silence alerts of one channel, of channels matching a glob, of one host, or all, for a while')
    .option('--channel <channel>', 'one channel')
    .option('--match <glob>', "channels matching a glob, e.g. 'eu_*'")
    .option('--host <name>', "every alert about one host (its monitor's, and MonitorHostDown for it)")
    .option('--all', 'every alert')
    .requiredOption('--for <duration>', 'how long, e.g. 30m, 2h, 1d')
    .option('--comment <text>', 'why (shown in silence list)', '')
    .option('--json', 'print the JSON answer')
    .addOption(socketOption())
    .addOption(configOption())
    .action(async (opts) => {
      const given = [opts.channel, opts.match, opts.host, opts.all].filter((v) => v !== undefined).length;
      if (given !== 1) throw new UsageError('give exactly one of --channel, --match, --host or --all');
      if (!new RegExp(DURATION_PATTERN).test(opts.for)) throw new UsageError('--for must look like 30m, 2h, 1d');
      const params = new URLSearchParams({ for: opts.for, comment: opts.comment, by: userInfo().username });
      if (opts.channel !== undefined) params.set('channel', opts.channel);
      if (opts.match !== undefined) params.set('match', opts.match);
      if (opts.host !== undefined) params.set('host', opts.host);
      if (opts.all) params.set('all', '1');
      const body = await requestControl<{ silence: SilenceView }>(
        clientSettings(opts).adminSocketPath,
        'POST',
        `/silences?${params}`,
      );
      if (opts.json) return write(JSON.stringify(body, null, 2));
      write(`silence ${body.silence.id} until ${body.silence.endsAt}`);
    });
  silence
    .command('list')
    .description('silences, active and recently expired')
    .option('--json', 'print the JSON of GET /silences')
    .addOption(socketOption())
    .addOption(configOption())
    .action(async (opts) => {
      const body = await requestControl<{ silences: SilenceView[] }>(
        clientSettings(opts).controlSocketPath,
        'GET',
        '/silences',
      );
      if (opts.json) return write(JSON.stringify(body, null, 2));
      const table = plainTable(['id', 'matches', 'active', 'ends', 'by', 'comment']);
      for (const s of body.silences) {
        const matches = s.matcher.all
          ? 'all'
          : s.matcher.channel !== undefined
            ? `channel ${s.matcher.channel}`
            : s.matcher.host !== undefined
              ? `host ${s.matcher.host}`
              : `match ${s.matcher.match}`;
        table.push([s.id, matches, s.active ? 'yes' : 'no', s.endsAt, s.createdBy, s.comment]);
      }
      write(`${table.toString()}\n${body.silences.filter((s) => s.active).length} active`);
    });
  silence
    .command('remove')
    .description('end a silence now')
    .argument('<id>', 'the silence id (kissmon silence list)')
    .addOption(socketOption())
    .addOption(configOption())
    .action(async (id: string, opts) => {
      await requestControl(
        clientSettings(opts).adminSocketPath,
        'POST',
        `/silences/remove?id=${encodeURIComponent(id)}`,
      );
      write(`silence ${id} removed`);
    });
  return silence;
}
