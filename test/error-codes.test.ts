// One error base class: every error class in src/ and workers/ extends MonitorError (directly or
// through another of ours) with a stable `code`, and docs/OPERATIONS.md ("Error codes") lists
// exactly the codes the code has. The instances below are real: their code, name and message.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../src/cli-options.js';
import { OpenDatabaseError } from '../src/db/schema.js';
import { AuthFileError, HttpTokenFileError, MonitorError, SocketInUseError } from '../src/errors.js';
import { ControlUnavailableError } from '../src/http/control-client.js';
import { ApiError } from '../src/dashboard/api.js';
import { HttpError } from '../src/http/control-server.js';
import { LoadtestInterrupted, LoadtestLimitError } from '../src/loadtest/run.js';
import { SupervisorError } from '../src/supervisor/supervisor.js';
import { ExpectedFileError } from '../src/alerts/expected.js';
import { StoreUnavailableError } from '../src/alerts/store.js';
import { MigrateSourceError } from '../src/migrate/migrate.js';

const ROOT = path.resolve(fileURLToPath(new URL('../..', import.meta.url)));

function sources(): { file: string; text: string }[] {
  return ['src', 'workers'].flatMap((dir) =>
    readdirSync(path.join(ROOT, dir), { recursive: true, withFileTypes: true })
      .filter((d) => d.isFile() && d.name.endsWith('.ts'))
      .map((d) => {
        const file = path.join(d.parentPath, d.name);
        return { file: path.relative(ROOT, file), text: readFileSync(file, 'utf8') };
      }),
  );
}

test('every error class extends MonitorError, and OPERATIONS.md lists exactly the codes in the code', () => {
  const classes = sources().flatMap(({ file, text }) =>
    [...text.matchAll(/class (\w+) extends (\w*Error|\w+Interrupted)\b/g)].map((m) => ({
      file,
      name: m[1],
      base: m[2],
    })),
  );
  const ours = new Set(classes.map((c) => c.name));
  const strays = classes.filter((c) => c.name !== 'MonitorError' && !ours.has(c.base));
  assert.deepEqual(strays, [], 'error classes that do not extend MonitorError');
  assert.ok(classes.length >= 10, `found only ${classes.length} error classes`);

  const inCode = new Set(
    sources().flatMap(({ text }) => [...text.matchAll(/super\('(ERR_[A-Z_]+)'/g)].map((m) => m[1])),
  );
  const doc = readFileSync(path.join(ROOT, 'docs/OPERATIONS.md'), 'utf8');
  const section = doc.slice(doc.indexOf('## Error codes'), doc.indexOf('\n## ', doc.indexOf('## Error codes') + 1));
  const inDoc = new Set([...section.matchAll(/^\| `(ERR_[A-Z_]+)` +\|/gm)].map((m) => m[1]));
  assert.ok(inCode.size >= 9, `found only ${inCode.size} codes`);
  assert.deepEqual([...inDoc].sort(), [...inCode].sort());
});

test('each error carries its code, its class name and the message it was given', () => {
  const cases: [MonitorError, string][] = [
    [new SocketInUseError('m'), 'ERR_SOCKET_IN_USE'],
    [new AuthFileError('m'), 'ERR_AUTH_FILE'],
    [new HttpTokenFileError('m'), 'ERR_HTTP_TOKEN_FILE'],
    [new UsageError('m'), 'ERR_USAGE'],
    [new ControlUnavailableError('m'), 'ERR_CONTROL_UNAVAILABLE'],
    [new SupervisorError('m', 'db'), 'ERR_SUPERVISOR_INTENSITY'],
    [new OpenDatabaseError('locked', Object.assign(new Error('m'), { code: 'SQLITE_BUSY' })), 'ERR_OPEN_DATABASE'],
    [new HttpError(503, 'm'), 'ERR_HTTP'],
    [new LoadtestLimitError('m'), 'ERR_LOADTEST_LIMIT'],
    [new LoadtestInterrupted('m'), 'ERR_LOADTEST_INTERRUPTED'],
    [new ExpectedFileError('m'), 'ERR_EXPECTED_FILE'],
    [new StoreUnavailableError('m'), 'ERR_ALERT_STORE_UNAVAILABLE'],
    [new ApiError(401, 'm'), 'ERR_DASHBOARD_API'],
    [new MigrateSourceError('m'), 'ERR_MIGRATE_SOURCE'],
  ];
  for (const [err, code] of cases) {
    assert.ok(err instanceof MonitorError && err instanceof Error);
    assert.equal(err.code, code);
    assert.equal(err.name, err.constructor.name);
    assert.equal(err.message, 'm');
  }
  const open = cases.find(([err]) => err instanceof OpenDatabaseError)![0] as OpenDatabaseError;
  assert.equal(open.sqliteCode, 'SQLITE_BUSY', 'the SQLite code stays apart from the stable code');
  assert.equal((open.cause as Error).message, 'm');
  assert.equal((cases.find(([err]) => err instanceof HttpError)![0] as HttpError).status, 503);
});
