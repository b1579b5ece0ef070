// Every entry of package.json "exports", imported by its package name (a self-reference, exactly
// as a user's `import ... from 'kissbot-monitor/…'` resolves), from the built package: it must
// resolve to the file the entry names, that file must exist, and it must export the public API.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string; exports: Record<string, string> };

/** What each entry must export at run time (types are checked by tsc on src/index.ts). */
const PUBLIC_API: Record<string, Record<string, 'function' | 'number'>> = {
  '.': { Monitor: 'function', defaultConfig: 'function', resolveConfig: 'function', PROTOCOL_VERSION: 'number' },
  './client': { MonitorClient: 'function', registerWithMonitor: 'function', sendHeartbeat: 'function', unregisterFromMonitor: 'function', HeartbeatTask: 'function', defaultSocketPath: 'function' },
};

test('every package.json export resolves by package name to an existing file with the public API', async (t) => {
  const entries = Object.entries(pkg.exports);
  assert.deepEqual(entries.map(([key]) => key).sort(), Object.keys(PUBLIC_API).sort(), 'each export entry has its expected API listed here');
  for (const [key, target] of entries) {
    const specifier = key === '.' ? pkg.name : `${pkg.name}/${key.slice(2)}`;
    const file = join(root, target);
    assert.ok(existsSync(file), `exports["${key}"] points at ${target}, which does not exist (run the build?)`);
    assert.equal(fileURLToPath(import.meta.resolve(specifier)), file, `${specifier} resolves to exports["${key}"]`);
    const mod = (await import(specifier)) as Record<string, unknown>;
    for (const [name, type] of Object.entries(PUBLIC_API[key])) assert.equal(typeof mod[name], type, `${specifier} exports ${name}`);
    t.diagnostic(`${specifier} → ${target}: ${Object.keys(mod).sort().join(', ')}`);
  }
  // The root entry's config helpers work, not just exist.
  const { defaultConfig, resolveConfig, PROTOCOL_VERSION } = (await import(pkg.name)) as typeof import('../src/index.js');
  assert.equal(PROTOCOL_VERSION, 1);
  assert.equal(resolveConfig({ staleAfterMs: 5_000 }).staleAfterMs, 5_000);
  assert.equal(defaultConfig().limits.maxJsonDepth, 32);
});
