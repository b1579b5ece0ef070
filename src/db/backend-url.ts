// Which store a --db value names, without the drivers: light enough for the CLI's option parsers
// (backend.ts re-exports these and opens the stores).
import { resolve } from 'node:path';
import { isOtherUrl, isPostgresUrl } from '../config-defaults.js';

export type Backend = { kind: 'sqlite'; path: string } | { kind: 'postgres'; url: string };

/** A file path (relative to the working directory) or a postgres:// URL, as `--db` takes it. */
export function parseBackend(value: string): Backend {
  if (typeof value !== 'string' || value.length === 0)
    throw new TypeError('the database must be a file path or a postgres:// URL');
  // A mistyped scheme (postgress://, pg://) would otherwise become an SQLite file of that name.
  if (isOtherUrl(value))
    throw new TypeError(
      `the database ${redactUrl(value)} has a scheme other than postgres:// or postgresql://; a file path has none`,
    );
  if (!isPostgresUrl(value)) return { kind: 'sqlite', path: value };
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TypeError(`the database URL ${redactUrl(value)} is not a valid URL`);
  }
  if (url.pathname.length <= 1)
    throw new TypeError(`the database URL ${redactUrl(value)} must name a database (postgres://host/db)`);
  return { kind: 'postgres', url: value };
}

/** The URL without its password, for logs and health. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@]*:)[^@]*@/i, '$1***@');
}

/** How `backend` is shown to operators: the absolute file path, or the URL without its password. */
export function describeBackend(backend: Backend): string {
  return backend.kind === 'sqlite' ? resolve(backend.path) : redactUrl(backend.url);
}
