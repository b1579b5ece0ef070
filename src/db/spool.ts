// The spool: rows the database could not take in time (locked at shutdown, locked or missing for
// longer than the writer may hold rows), kept in an append-only file beside it and replayed into
// the database before anything else once it is writable. Format (docs/OPERATIONS.md):
//
//   one JSON object per line   {"from": "<sender>", "seq": <batch>, "n": <rows in batch>, "row": {…}}
//
// Rows travel in the batches a Link sent them in; (from, seq) is the batch's identity, the same one
// delivery_cursor records for committed batches. That makes replay exactly-once without marking
// the file: a batch is inserted only if its seq is above the sender's cursor, and the cursor is
// committed in the same transaction, so a crash between replay and unlink replays nothing twice.
// A batch spooled twice (the writer and, when the writer did not answer, its sender) is the same
// identity and is kept once. A batch counts only with all `n` lines: a write torn by a crash
// belongs to a batch that was never acknowledged.
//
// Replay reads the file in file order, a bounded buffer at a time (a spool may hold 256 MiB). That
// is seq order per sender apart from repeats: links commit in seq order, the writer spools its held
// batches oldest first, and a sender spools everything it has not seen acknowledged (a suffix).
// Replay first renames the file to `<spool>.replaying` and removes only that name, so rows spooled
// while it runs (a sender at shutdown, the writer while the database is blocked) go to a new file.
import {
  closeSync,
  existsSync,
  fstatSync,
  fsyncSync,
  openSync,
  readSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import type { Link } from '../actors/link.js';
import { isPostgresUrl, type MonitorConfig } from '../config.js';
import type { Logger } from '../log.js';

export interface SpoolBatch<Row> {
  from: string;
  seq: number;
  items: Row[];
}

interface SpoolLine<Row> {
  from: string;
  seq: number;
  n: number;
  row: Row;
}

/**
 * The configured spool file: by default beside the SQLite database, or, when the store is
 * PostgreSQL, `kissbot_monitor.<hostName>.spool` in the working directory (a local file per
 * monitor: it is what keeps rows while the shared store is away).
 */
export function spoolPathFor(config: Pick<MonitorConfig, 'dbPath' | 'spool' | 'hostName'>): string {
  if (config.spool.path !== null) return config.spool.path;
  return isPostgresUrl(config.dbPath) ? `./kissbot_monitor.${config.hostName}.spool` : `${config.dbPath}.spool`;
}

/**
 * Where the alerter keeps its state (src/alerts/store.ts): in the SQLite database itself, or,
 * when the store is PostgreSQL, in a local SQLite file beside the spool (`<spool without
 * .spool>.alerts.db`): the alerter must be able to say the store is down, so it never depends on it.
 */
export function alertStorePathFor(config: Pick<MonitorConfig, 'dbPath' | 'spool' | 'hostName'>): string {
  if (!isPostgresUrl(config.dbPath)) return config.dbPath;
  return `${spoolPathFor(config).replace(/\.spool$/, '')}.alerts.db`;
}

export class Spool<Row> {
  readonly path: string;
  readonly #maxBytes: number;

  constructor(path: string, maxBytes: number) {
    this.path = path;
    this.#maxBytes = maxBytes;
  }

  /**
   * Appends the batches with one write and fsyncs (the file, and its directory when the file is
   * new) before returning: once it returns true the rows survive a crash and may be acknowledged.
   * False, with nothing written, when the file would grow past its bound. Throws on I/O errors.
   * One write per call keeps appends from different threads whole (O_APPEND).
   */
  append(batches: SpoolBatch<Row>[]): boolean {
    let text = '';
    for (const { from, seq, items } of batches) {
      for (const row of items)
        text += `${JSON.stringify({ from, seq, n: items.length, row } satisfies SpoolLine<Row>)}\n`;
    }
    if (text.length === 0) return true;
    const isNew = !existsSync(this.path);
    const fd = openSync(this.path, 'a+', 0o600);
    try {
      const size = fstatSync(fd).size;
      // A previous run torn mid-line: start on a fresh line so this write's first line parses.
      if (size > 0) {
        const last = Buffer.alloc(1);
        readSync(fd, last, 0, 1, size - 1);
        if (last[0] !== 0x0a) text = `\n${text}`;
      }
      const bytes = Buffer.from(text);
      if (size + bytes.length > this.#maxBytes) return false;
      let written = 0;
      while (written < bytes.length) written += writeSync(fd, bytes, written);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    if (isNew) fsyncDirectory(dirname(this.path));
    return true;
  }

  /** The file a replay reads: the spool renamed, so appends meanwhile start a new spool. */
  get replayingPath(): string {
    return `${this.path}.replaying`;
  }

  /** Rows may be waiting for replay: in the spool, or in a replay that did not finish. */
  pending(): boolean {
    return existsSync(this.replayingPath) || existsSync(this.path);
  }

  /**
   * Starts a replay: of a replay left unfinished (a crash, a shutdown) if there is one, else of
   * the spool, renamed first. Null when there is nothing to replay.
   */
  openReplay(): SpoolReader<Row> | null {
    if (!existsSync(this.replayingPath)) {
      try {
        renameSync(this.path, this.replayingPath);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw err;
      }
      fsyncDirectory(dirname(this.path));
    }
    return new SpoolReader<Row>(this.replayingPath);
  }

  /** A replay is done (every batch in the database): removes its file. */
  removeReplayed(): void {
    try {
      unlinkSync(this.replayingPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}

const READ_CHUNK_BYTES = 1 << 20;

/**
 * Reads a spool file front to back, a READ_CHUNK_BYTES buffer at a time, as complete batches in
 * file order (see the top of this file). Lines of torn batches and lines that are not spool lines
 * are counted in `skippedLines`, not returned.
 */
export class SpoolReader<Row> {
  readonly path: string;
  skippedLines = 0;
  #fd: number | null;
  #position = 0;
  /** Bytes read but not yet split into lines (the start of a line). */
  #rest = Buffer.alloc(0);
  #group: { line: SpoolLine<Row>; rows: Row[] } | null = null;

  constructor(path: string) {
    this.path = path;
    this.#fd = openSync(path, 'r');
  }

  /** The next complete batches in file order, whole, about `maxRows` rows (at least one batch); empty at the end. */
  next(maxRows: number): SpoolBatch<Row>[] {
    const batches: SpoolBatch<Row>[] = [];
    let rows = 0;
    while (rows < maxRows) {
      const text = this.#nextLine();
      if (text === null) {
        this.#dropGroup();
        break;
      }
      if (text.length === 0) continue;
      const line = parseLine<Row>(text);
      if (!line) {
        this.skippedLines++;
        continue;
      }
      const group = this.#group;
      if (!group || group.line.from !== line.from || group.line.seq !== line.seq) {
        this.#dropGroup();
        this.#group = { line, rows: [] };
      }
      const current = this.#group!;
      current.rows.push(line.row);
      if (current.rows.length === current.line.n) {
        batches.push({ from: current.line.from, seq: current.line.seq, items: current.rows });
        rows += current.rows.length;
        this.#group = null;
      }
    }
    return batches;
  }

  close(): void {
    if (this.#fd !== null) closeSync(this.#fd);
    this.#fd = null;
  }

  /** An open group that did not get all its lines before another batch (or the end) was torn. */
  #dropGroup(): void {
    if (this.#group) this.skippedLines += this.#group.rows.length;
    this.#group = null;
  }

  /** The next line without its newline; the last line even without one; null at the end. */
  #nextLine(): string | null {
    let newline = this.#rest.indexOf(0x0a);
    while (newline < 0) {
      const chunk = Buffer.allocUnsafe(READ_CHUNK_BYTES);
      const n = this.#fd === null ? 0 : readSync(this.#fd, chunk, 0, READ_CHUNK_BYTES, this.#position);
      if (n === 0) {
        if (this.#rest.length === 0) return null;
        const last = this.#rest.toString('utf8');
        this.#rest = Buffer.alloc(0);
        return last;
      }
      this.#position += n;
      const searchFrom = this.#rest.length;
      this.#rest = Buffer.concat([this.#rest, chunk.subarray(0, n)]);
      newline = this.#rest.indexOf(0x0a, searchFrom);
    }
    const text = this.#rest.toString('utf8', 0, newline);
    this.#rest = this.#rest.subarray(newline + 1);
    return text;
  }
}

/**
 * Shutdown, when the writer did not acknowledge in time: this thread spools what `link` still
 * holds. Harmless if the writer spooled or committed the same batches after all: replay keeps
 * each (sender, seq) once and skips what delivery_cursor says is committed.
 */
export function spoolUnacknowledged<Row>(
  link: Link<Row>,
  config: Pick<MonitorConfig, 'dbPath' | 'spool' | 'hostName'>,
  log: Logger,
): { spooled: number; lost: number } {
  const batches = link.unacknowledged();
  const rows = batches.reduce((sum, b) => sum + b.items.length, 0);
  if (rows === 0) return { spooled: 0, lost: 0 };
  const path = spoolPathFor(config);
  try {
    if (new Spool<Row>(path, config.spool.maxBytes).append(batches)) {
      log.warn(
        { link: link.name, rows_spooled: rows, spool: path },
        'the writer did not acknowledge these rows in time: spooled by this thread',
      );
      return { spooled: rows, lost: 0 };
    }
    log.error(
      { link: link.name, rows_lost: rows, spool: path, max_bytes: config.spool.maxBytes },
      'spool full: rows lost',
    );
  } catch (err) {
    log.error({ link: link.name, rows_lost: rows, spool: path, err }, 'spool cannot be written: rows lost');
  }
  return { spooled: 0, lost: rows };
}

function parseLine<Row>(text: string): SpoolLine<Row> | null {
  try {
    const line = JSON.parse(text) as SpoolLine<Row>;
    const ok =
      typeof line?.from === 'string' &&
      Number.isInteger(line.seq) &&
      Number.isInteger(line.n) &&
      line.n > 0 &&
      typeof line.row === 'object' &&
      line.row !== null;
    if (!ok) return null;
    upgradeLegacyRow(line.row as Record<string, unknown>);
    return line;
  } catch {
    return null;
  }
}

/** Spools written by 0.1.0 spell the row discriminant `t` (nested rows of `caused` too); today it is `type`. */
function upgradeLegacyRow(row: Record<string, unknown>): void {
  if (!('t' in row) || 'type' in row) return;
  row.type = row.t;
  delete row.t;
  if (Array.isArray(row.items))
    for (const item of row.items)
      if (typeof item === 'object' && item !== null) upgradeLegacyRow(item as Record<string, unknown>);
}

function fsyncDirectory(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
