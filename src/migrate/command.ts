// `kissmon migrate`: the CLI face of migrate.ts. Registered in src/cli.ts with program.addCommand().
// Progress goes to stderr: a bar per table on a terminal (cli-progress), plain lines every 2 s
// otherwise (journald, CI logs, a pipe); the summary goes to stdout (a table, or --json).
//
// Exit codes: 0 done (a re-run that finds nothing new is done too) · 1 failed (PostgreSQL not
// reachable, a batch refused; whatever committed stays, a re-run resumes) · 2 bad usage.
import { createRequire } from 'node:module';
import type cliProgress from 'cli-progress';
import { Command, InvalidArgumentError } from 'commander';
import { integerOption, plainTable, UsageError } from '../cli-options.js';
import { parseBackend } from '../db/backend-url.js';
import type { MigrateResult, TableProgress } from './migrate.js';

/** Rows per transaction: ~1 MB of parameters for llm_usage, one round trip per 5,000 rows. */
const DEFAULT_BATCH_SIZE = 5_000;

const PLAIN_PROGRESS_EVERY_MS = 2_000;

const postgresUrl = (value: string) => {
  let backend;
  try {
    backend = parseBackend(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
  if (backend.kind !== 'postgres') throw new InvalidArgumentError('--to must be a postgres:// or postgresql:// URL');
  return backend.url;
};

export function migrateCommand(): Command {
  return new Command('migrate')
    .description(
      "copy a host's SQLite history into PostgreSQL (idempotent: a second run copies nothing; resumable: a killed run goes on where it stopped)",
    )
    .requiredOption('--from <file>', 'the SQLite database file (opened read-only)')
    .requiredOption(
      '--to <url>',
      'the PostgreSQL database (postgres://user@host:port/db); migrated to the latest schema first',
      postgresUrl,
    )
    .option(
      '--host-name <name>',
      "host name the rows get (default: the one the file records, else the machine's hostname)",
    )
    .option(
      '--batch-size <n>',
      `rows per transaction (default ${DEFAULT_BATCH_SIZE})`,
      integerOption('--batch-size', 1, 100_000),
    )
    .option('--json', 'print the summary as JSON')
    .showHelpAfterError()
    .exitOverride()
    .action(async (opts: { from: string; to: string; hostName?: string; batchSize?: number; json?: boolean }) => {
      // Loaded here: the other commands need neither pg nor the copy engine.
      const { migrate, MigrateSourceError } = await import('./migrate.js');
      const progress = progressReporter();
      let result: MigrateResult;
      try {
        result = await migrate({
          from: opts.from,
          to: opts.to,
          hostName: opts.hostName,
          batchSize: opts.batchSize ?? DEFAULT_BATCH_SIZE,
          onProgress: progress.update,
        });
      } catch (err) {
        if (err instanceof MigrateSourceError || err instanceof TypeError) throw new UsageError(err.message);
        throw err;
      } finally {
        progress.stop();
      }
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
        return;
      }
      process.stdout.write(summary(result));
    });
}

function summary(r: MigrateResult): string {
  const table = plainTable([
    'table',
    'source rows',
    'copied now',
    'skipped (already in PostgreSQL)',
    'by earlier runs',
  ]);
  for (const t of r.tables) table.push([t.table, t.source_rows, t.copied, t.skipped, t.earlier]);
  const copied = r.tables.reduce((n, t) => n + t.copied, 0);
  const lines = [
    `${r.from} → ${r.to} as host ${r.host} (${r.host_from === 'flag' ? '--host-name' : r.host_from === 'source' ? 'recorded in the file' : "this machine's hostname"})`,
    table.toString(),
    `${copied} rows copied in ${r.seconds} s${copied === 0 ? ' (nothing new: everything was copied before)' : ''}`,
  ];
  if (r.renamed_hosts.length)
    lines.push(`rows the file recorded as host ${r.renamed_hosts.join(', ')} were copied as host ${r.host}`);
  if (r.not_copied.length) {
    const byReason = new Map<string, string[]>();
    for (const n of r.not_copied) byReason.set(n.reason, [...(byReason.get(n.reason) ?? []), n.table]);
    lines.push(`not copied: ${[...byReason].map(([reason, tables]) => `${tables.join(', ')} (${reason})`).join('; ')}`);
  }
  return `${lines.join('\n')}\n`;
}

/** A bar per table on a terminal, plain lines otherwise. */
function progressReporter(): { update: (p: TableProgress) => void; stop: () => void } {
  if (process.stderr.isTTY) {
    // Required here, not imported at the top: every other kissmon command would pay for its ~17 modules.
    const bars = createRequire(import.meta.url)('cli-progress') as typeof cliProgress;
    let bar: cliProgress.SingleBar | null = null;
    let table = '';
    return {
      update(p) {
        if (p.table !== table) {
          bar?.stop();
          table = p.table;
          bar = new bars.SingleBar(
            {
              format: '{table} [{bar}] {percentage}% | {value}/{total} rows | ETA {eta_formatted}',
              stream: process.stderr,
              hideCursor: true,
            },
            bars.Presets.shades_classic,
          );
          bar.start(p.total, p.done, { table: p.table.padEnd(16) });
        } else bar?.update(p.done);
      },
      stop() {
        bar?.stop();
      },
    };
  }
  let table = '';
  let lastAt = 0;
  let last: TableProgress | null = null;
  const line = (p: TableProgress) =>
    process.stderr.write(
      `migrate: ${p.table} ${p.done}/${p.total} rows${p.total ? ` (${Math.floor((p.done / p.total) * 100)} %)` : ''}\n`,
    );
  return {
    update(p) {
      const now = Date.now();
      if (p.table !== table) {
        if (last && last.done !== 0) line(last);
        table = p.table;
        lastAt = now;
      } else if (now - lastAt >= PLAIN_PROGRESS_EVERY_MS) {
        lastAt = now;
        line(p);
      }
      last = p;
    },
    stop() {
      if (last && last.done !== 0) line(last);
    },
  };
}
