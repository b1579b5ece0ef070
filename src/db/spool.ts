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
import { closeSync, existsSync, fstatSync, fsyncSync, openSync, readFileSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Link } from '../actors/link.js';
import type { MonitorConfig } from '../config.js';
import type { Logger } from '../log.js';

export interface SpoolBatch<Row> {
  from: string;
  seq: number;
  items: Row[];
}

export interface SpoolContents<Row> {
  /** Complete batches, each once: senders in order of first appearance, each sender's by seq. */
  batches: SpoolBatch<Row>[];
  /** Lines of batches missing some of their lines (torn by a crash) or not JSON; not replayed. */
  skippedLines: number;
}

interface SpoolLine<Row> {
  from: string;
  seq: number;
  n: number;
  row: Row;
}

/** The configured spool file, by default beside the database. */
export function spoolPathFor(config: Pick<MonitorConfig, 'dbPath' | 'spool'>): string {
  return config.spool.path ?? `${config.dbPath}.spool`;
}

export class Spool<Row> {
  readonly path: string;
  readonly #maxBytes: number;

  constructor(path: string, maxBytes: number) {
    this.path = path;
    this.#maxBytes = maxBytes;
  }

  exists(): boolean {
    return existsSync(this.path);
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
      for (const row of items) text += `${JSON.stringify({ from, seq, n: items.length, row } satisfies SpoolLine<Row>)}\n`;
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

  /** Reads every complete batch (see SpoolContents); an absent file is empty. */
  read(): SpoolContents<Row> {
    if (!this.exists()) return { batches: [], skippedLines: 0 };
    const lines = readFileSync(this.path, 'utf8').split('\n');
    let skippedLines = 0;
    const bySender = new Map<string, Map<number, SpoolBatch<Row>>>();
    let group: { line: SpoolLine<Row>; rows: Row[] } | null = null;
    const close = () => {
      if (!group) return;
      const { line, rows } = group;
      group = null;
      if (rows.length !== line.n) {
        skippedLines += rows.length;
        return;
      }
      let batches = bySender.get(line.from);
      if (!batches) bySender.set(line.from, (batches = new Map()));
      if (!batches.has(line.seq)) batches.set(line.seq, { from: line.from, seq: line.seq, items: rows });
    };
    for (const text of lines) {
      if (text.length === 0) continue;
      const line = parseLine<Row>(text);
      if (!line) {
        skippedLines++;
        continue;
      }
      if (!group || group.line.from !== line.from || group.line.seq !== line.seq || group.rows.length === group.line.n) {
        close();
        group = { line, rows: [] };
      }
      group.rows.push(line.row);
    }
    close();
    const batches: SpoolBatch<Row>[] = [];
    for (const perSender of bySender.values()) batches.push(...[...perSender.values()].sort((a, b) => a.seq - b.seq));
    return { batches, skippedLines };
  }

  remove(): void {
    try {
      unlinkSync(this.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}

/**
 * Shutdown, when the writer did not acknowledge in time: this thread spools what `link` still
 * holds. Harmless if the writer spooled or committed the same batches after all: replay keeps
 * each (sender, seq) once and skips what delivery_cursor says is committed.
 */
export function spoolUnacknowledged<Row>(link: Link<Row>, config: Pick<MonitorConfig, 'dbPath' | 'spool'>, log: Logger): { spooled: number; lost: number } {
  const batches = link.unacknowledged();
  const rows = batches.reduce((sum, b) => sum + b.items.length, 0);
  if (rows === 0) return { spooled: 0, lost: 0 };
  const path = spoolPathFor(config);
  try {
    if (new Spool<Row>(path, config.spool.maxBytes).append(batches)) {
      log.warn({ link: link.name, rows_spooled: rows, spool: path }, 'the writer did not acknowledge these rows in time: spooled by this thread');
      return { spooled: rows, lost: 0 };
    }
    log.error({ link: link.name, rows_lost: rows, spool: path, max_bytes: config.spool.maxBytes }, 'spool full: rows lost');
  } catch (err) {
    log.error({ link: link.name, rows_lost: rows, spool: path, err }, 'spool cannot be written: rows lost');
  }
  return { spooled: 0, lost: rows };
}

function parseLine<Row>(text: string): SpoolLine<Row> | null {
  try {
    const line = JSON.parse(text) as SpoolLine<Row>;
    const ok = typeof line?.from === 'string' && Number.isInteger(line.seq) && Number.isInteger(line.n) && line.n > 0 && typeof line.row === 'object' && line.row !== null;
    return ok ? line : null;
  } catch {
    return null;
  }
}

function fsyncDirectory(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
