// What each thread loads at start, read from the bundles the build makes (src/entry-bundles.ts):
// esbuild's own import graph of every entry point (static imports, `export … from`, `require()`;
// `import()` edges marked, their targets loaded only on that path), packages inlined or external.
// Each loaded module costs start-up CPU and heap for the thread's whole life.
// - Threads that never write do not load the database driver: kysely, better-sqlite3 and pg are not
//   in the registry's and the sampler's graphs; the db writer's is walked too and must show the
//   driver (a walker that stopped finding imports fails here). The alerter keeps its state with
//   better-sqlite3 alone; kysely builds its local tables only when the store is PostgreSQL (import()).
// - No actor thread loads the HTTP front (fastify, @fastify/static, prom-client): the main thread's,
//   where fastify comes by import() when --http-port is given (prom-client serves /metrics on the sockets).
// - The CLI loads commander and our own files before it knows its command: `kissmon --version` and
//   `kissmon usage --help` pay for nothing else; a command's packages come by import().
// A thread started by URL (`new Worker(new URL(…))`, piscina's filename) is its own entry point.
// What the code loads with createRequire(import.meta.url)(…) is not in esbuild's graph (pidusage,
// comlink's node adapter, string-width, cli-progress, unix-dgram): none of those is checked here.
import assert from 'node:assert/strict';
import { builtinModules } from 'node:module';
import { before, test } from 'node:test';
import type { Metafile } from 'esbuild';
import { bundleEntries } from '../src/entry-bundles.js';

const DRIVER = /^(kysely|better-sqlite3|pg)$/;
const HTTP_FRONT = /^(fastify|@fastify\/static|prom-client)$/;
const BUILTIN = new Set(builtinModules);

let bundles: Map<string, Metafile>;
before(async () => {
  bundles = await bundleEntries({ write: false });
});

/** The package a bundled input or an external import belongs to (null: a file of ours, a builtin). */
function packageOf(spec: string, external: boolean): string | null {
  const at = spec.lastIndexOf('node_modules/');
  if (!external && at < 0) return null;
  const parts = (at < 0 ? spec : spec.slice(at + 'node_modules/'.length)).split('/');
  const name = parts[0].startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0];
  return name.startsWith('node:') || name === '<runtime>' || BUILTIN.has(name) ? null : name;
}

/**
 * Every package the thread starting at `entry` loads, with the chain of files that leads to it;
 * `dynamic: false` leaves out what only `import()` loads (on a path not every start takes);
 * `from`: what loading that one file of the bundle brings.
 */
function packagesLoaded(entry: string, { dynamic = true, from = entry } = {}): Map<string, string[]> {
  const { inputs } = bundles.get(entry) ?? assert.fail(`no bundle for ${entry}`);
  const packages = new Map<string, string[]>();
  const via = new Map<string, string | null>([[from, null]]);
  const chain = (file: string) => {
    const files: string[] = [];
    for (let f: string | null | undefined = file; f; f = via.get(f)) files.unshift(f);
    return files;
  };
  const queue = [from];
  while (queue.length > 0) {
    const file = queue.shift()!;
    for (const edge of inputs[file]?.imports ?? []) {
      if (edge.kind === 'dynamic-import' && !dynamic) continue;
      const name = packageOf(edge.path, edge.external === true);
      if (name && !packages.has(name)) packages.set(name, [...chain(file), edge.path]);
      if (edge.external || via.has(edge.path)) continue;
      via.set(edge.path, file);
      queue.push(edge.path);
    }
  }
  return packages;
}

const matching = (entry: string, pattern: RegExp, options?: { dynamic?: boolean; from?: string }) =>
  [...packagesLoaded(entry, options)]
    .filter(([name]) => pattern.test(name))
    .map(([name, files]) => `${name} via ${files.join(' → ')}`);

test('the registry and sampler threads do not load the database driver; the db writer does', () => {
  assert.deepEqual(matching('workers/registry.ts', DRIVER), [], 'the registry thread loads a database driver');
  assert.deepEqual(matching('workers/sampler.ts', DRIVER), [], 'the sampler thread loads a database driver');
  const writer = matching('workers/db-writer.ts', DRIVER);
  assert.ok(
    writer.some((line) => line.startsWith('kysely')) && writer.some((line) => line.startsWith('better-sqlite3')),
    `the walker finds the writer's driver: ${JSON.stringify(writer)}`,
  );
  // The walker follows files: the registry reaches its link and log modules.
  const registry = packagesLoaded('workers/registry.ts');
  assert.ok(registry.has('pino') && registry.has('comlink'), `registry packages: ${[...registry.keys()].join(', ')}`);
});

test('the alerter thread loads better-sqlite3 for its store, and kysely only through import() (PostgreSQL)', () => {
  const always = matching('workers/alerter.ts', DRIVER, { dynamic: false });
  assert.deepEqual(
    always.filter((line) => !line.startsWith('better-sqlite3')),
    [],
    'the alerter loads kysely or pg on every start',
  );
  assert.ok(
    always.some((line) => line.startsWith('better-sqlite3')),
    `the walker finds the alerter's store driver: ${JSON.stringify(always)}`,
  );
  assert.ok(
    matching('workers/alerter.ts', DRIVER).some((line) => line.startsWith('kysely')),
    'with import() followed, the PostgreSQL path reaches kysely (the walker sees the dynamic import)',
  );
});

test('no actor thread loads the HTTP front; the main thread loads fastify only with --http-port', () => {
  for (const actor of ['db-writer', 'alerter', 'registry', 'sampler']) {
    assert.deepEqual(matching(`workers/${actor}.ts`, HTTP_FRONT), [], `the ${actor} thread loads the HTTP front`);
  }
  const main = matching('src/cli.ts', HTTP_FRONT, { from: 'src/monitor.ts' });
  assert.equal(main.length, 3, `the walker finds the main thread's HTTP front: ${JSON.stringify(main)}`);
  assert.deepEqual(
    matching('src/cli.ts', /^(fastify|@fastify\/static)$/, { from: 'src/monitor.ts', dynamic: false }),
    [],
    'the monitor loads the dashboard server (fastify) on every start',
  );
});

test('the CLI loads only commander before its command runs; a command brings its packages by import()', () => {
  assert.deepEqual([...packagesLoaded('src/cli.ts', { dynamic: false }).keys()], ['commander']);
  const all = packagesLoaded('src/cli.ts');
  assert.ok(all.has('kysely') && all.has('fastify'), `with import(): ${[...all.keys()].join(', ')}`);
});
