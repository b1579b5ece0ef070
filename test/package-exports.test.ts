// Every entry of package.json "exports", of the daemon package and of the client package, imported by
// its package name (a self-reference for the daemon, the workspace link for the client — exactly as
// a user's `import ... from 'kissbot-monitor/…'` resolves), from the built packages: it must
// resolve to the file the entry names, that file and its .d.ts must exist, and it must export the
// public API.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));

type Exports = Record<string, { types: string; default: string }>;
const readPackage = (dir: string) =>
  JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name: string; exports: Exports };

const CLIENT_API: Record<string, 'function' | 'number'> = {
  MonitorClient: 'function',
  registerWithMonitor: 'function',
  sendHeartbeat: 'function',
  unregisterFromMonitor: 'function',
  HeartbeatTask: 'function',
  defaultSocketPath: 'function',
};

/** What each entry must export at run time (types are checked by tsc). */
const PUBLIC_API: Record<
  string,
  { dir: string; entries: Record<string, Record<string, 'function' | 'number' | 'object'>> }
> = {
  'kissbot-monitor': {
    dir: root,
    entries: {
      '.': { Monitor: 'function', defaultConfig: 'function', resolveConfig: 'function', PROTOCOL_VERSION: 'number' },
      './client': CLIENT_API,
    },
  },
  'kissbot-monitor-client': {
    dir: join(root, 'clients', 'typescript'),
    entries: {
      '.': CLIENT_API,
      './protocol': { PROTOCOL_VERSION: 'number', LIMITS: 'object' },
    },
  },
};

test('every package.json export resolves by package name to an existing file with the public API', async (t) => {
  for (const [name, { dir, entries: api }] of Object.entries(PUBLIC_API)) {
    const pkg = readPackage(dir);
    assert.equal(pkg.name, name);
    const entries = Object.entries(pkg.exports);
    assert.deepEqual(
      entries.map(([key]) => key).sort(),
      Object.keys(api).sort(),
      `each export entry of ${name} has its expected API listed here`,
    );
    for (const [key, target] of entries) {
      const specifier = key === '.' ? name : `${name}/${key.slice(2)}`;
      const file = join(dir, target.default);
      assert.ok(
        existsSync(file),
        `${name} exports["${key}"] points at ${target.default}, which does not exist (run the build?)`,
      );
      assert.ok(existsSync(join(dir, target.types)), `${name} exports["${key}"].types: ${target.types} does not exist`);
      assert.equal(fileURLToPath(import.meta.resolve(specifier)), file, `${specifier} resolves to exports["${key}"]`);
      const mod = (await import(specifier)) as Record<string, unknown>;
      for (const [member, type] of Object.entries(api[key]))
        assert.equal(typeof mod[member], type, `${specifier} exports ${member}`);
      t.diagnostic(`${specifier} → ${target.default}: ${Object.keys(mod).sort().join(', ')}`);
    }
  }
  // kissbot-monitor/client is the client package itself, not a second copy.
  const viaDaemon = (await import('kissbot-monitor/client')) as Record<string, unknown>;
  const client = (await import('kissbot-monitor-client')) as Record<string, unknown>;
  assert.equal(viaDaemon.MonitorClient, client.MonitorClient);
  // The root entry's config helpers work, not just exist.
  const { defaultConfig, resolveConfig, PROTOCOL_VERSION } = await import('kissbot-monitor');
  assert.equal(PROTOCOL_VERSION, 1);
  assert.equal(resolveConfig({ staleAfterMs: 5_000 }).staleAfterMs, 5_000);
  assert.equal(defaultConfig().limits.maxJsonDepth, 32);
});
