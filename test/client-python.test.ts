// Runs the Python client's own unittest suite (clients/python/test_monitor_client.py) under
// `npm test`, then checks every line its listeners received against the protocol schemas the
// monitor validates with — so the Python client cannot drift from src/protocol/messages.ts.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { decodeLine } from '../src/protocol/decode.js';
import { commandMissing, requireResource } from './helpers/resources.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const clientDir = join(root, 'clients', 'python');
const dir = mkdtempSync(join(tmpdir(), 'kbm-client-py-'));
let childPid: number | undefined;

after(() => {
  if (childPid !== undefined) {
    try {
      process.kill(childPid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

const python = 'python3';

test('python client: unittest suite passes and every line it sent is valid protocol v1', async (t) => {
  if (!requireResource(t, 'python3', commandMissing(python))) return;
  const version = spawnSync(python, ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])'])
    .stdout.toString()
    .trim();
  const [major, minor] = version.split('.').map(Number);
  assert.ok(major === 3 && minor >= 9, `the client needs Python >= 3.9, found ${version}`);

  const dump = join(dir, 'lines.jsonl');
  const child = spawn(python, ['-m', 'unittest', '-v', 'test_monitor_client'], {
    cwd: clientDir,
    // No bytecode files in the source tree; lines dumped for the schema check below.
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1', KISSBOT_PROTOCOL_DUMP: dump },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  childPid = child.pid;
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  childPid = undefined;

  for (const line of output.split('\n')) {
    const at = line.indexOf('MEASURE: '); // unittest -v may have written "name ... " before it
    if (at >= 0) t.diagnostic(line.slice(at + 9));
  }
  assert.equal(code, 0, `python3 -m unittest failed (Python ${version}):\n${output}`);
  const ran = /^Ran (\d+) tests? in/m.exec(output);
  assert.ok(ran, `no "Ran N tests" line in:\n${output}`);
  assert.ok(Number(ran[1]) > 0, 'the suite ran no test');
  assert.match(output, /^OK/m);
  t.diagnostic(`Python ${version}: ${ran[1]} tests`);

  const lines = readFileSync(dump)
    .toString('utf8')
    .split('\n')
    .filter((l) => l.length > 0);
  assert.ok(lines.length >= 20, `only ${lines.length} lines were dumped`);
  t.diagnostic(`${lines.length} lines from the Python client validated with decodeLine`);
  const types = new Set<string>();
  for (const line of lines) {
    const decoded = decodeLine(Buffer.from(line), 32);
    assert.ok(
      decoded.ok,
      `the monitor would reject a line the Python client sent: ${line} (${decoded.ok ? '' : decoded.detail})`,
    );
    types.add(decoded.message.type);
  }
  assert.deepEqual([...types].sort(), ['heartbeat', 'llm_usage', 'register', 'unregister']);
});

test('python client: every file compiles (py_compile) and the type hints pass mypy --strict', async (t) => {
  if (!requireResource(t, 'python3', commandMissing(python))) return;
  const packages = ['kissbot_monitor_client', 'monitor_client'];
  const files = [...packages.map((p) => `${p}/__init__.py`), 'kissbot_monitor_client/client.py'];
  files.push('test_monitor_client.py');
  // Bytecode goes to the temp dir, not next to the sources.
  const env = { ...process.env, PYTHONPYCACHEPREFIX: join(dir, 'pycache') };
  const compiled = spawnSync(python, ['-m', 'py_compile', ...files], { cwd: clientDir, env, encoding: 'utf8' });
  assert.equal(compiled.status, 0, `py_compile failed:\n${compiled.stderr}`);
  // mypy: Debian's package (`apt-get install mypy`; .ci/run installs it when missing).
  if (!requireResource(t, 'mypy', commandMissing('mypy'))) return;
  const mypyArgs = ['--strict', '--cache-dir', join(dir, 'mypy-cache'), ...packages];
  const checked = spawnSync('mypy', mypyArgs, { cwd: clientDir, encoding: 'utf8' });
  assert.equal(checked.status, 0, `mypy --strict found problems:\n${checked.stdout}${checked.stderr}`);
  assert.match(checked.stdout, /^Success: no issues found in 3 source files/m);
  t.diagnostic(checked.stdout.trim());
});
