// Threads that never write do not load the database driver: kysely, better-sqlite3 and pg are not
// in what the registry's and the sampler's entry points load (the compiled JavaScript, as Node
// loads it: static imports, `export … from`, `import()`, `require()`), each loaded module costing
// heap for the thread's whole life. A thread started by URL (`new Worker(new URL(…))`, such as the
// registry's one-shot rebuild reader) is another thread and not followed. The db writer's entry
// point is walked too and must show the driver: a walker that stopped finding imports fails here.
// The alerter keeps its state with better-sqlite3 alone; kysely only builds its local tables when
// the store is PostgreSQL, loaded by import() on that path.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const DIST = path.resolve(fileURLToPath(new URL('..', import.meta.url)));
const DRIVER = /^(kysely|better-sqlite3|pg)(\/|$)/;

/**
 * Every package a thread starting at `entry` loads, with the chain of files that leads to it;
 * `dynamic: false` leaves out what only `import()` loads (on a path not every start takes).
 */
function packagesLoaded(entry: string, { dynamic = true } = {}): Map<string, string[]> {
  const packages = new Map<string, string[]>();
  const via = new Map<string, string | null>([[entry, null]]);
  const queue = [entry];
  const chain = (file: string) => {
    const files: string[] = [];
    for (let f: string | null | undefined = file; f; f = via.get(f)) files.unshift(path.relative(DIST, f));
    return files;
  };
  while (queue.length > 0) {
    const file = queue.shift()!;
    const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
    const load = (spec: string) => {
      if (spec.startsWith('node:')) return;
      if (!spec.startsWith('.')) {
        if (!packages.has(spec)) packages.set(spec, chain(file));
        return;
      }
      const target = path.resolve(path.dirname(file), spec);
      if (via.has(target)) return;
      via.set(target, file);
      queue.push(target);
    };
    const visit = (node: ts.Node): void => {
      if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier) {
        load((node.moduleSpecifier as ts.StringLiteral).text);
      } else if (ts.isCallExpression(node) && node.arguments[0] && ts.isStringLiteral(node.arguments[0])) {
        const callee = node.expression;
        const isImport = callee.kind === ts.SyntaxKind.ImportKeyword;
        const isRequire = ts.isIdentifier(callee) && callee.text === 'require';
        const isCreateRequired = ts.isCallExpression(callee); // createRequire(import.meta.url)('…')
        if ((isImport && dynamic) || isRequire || isCreateRequired) load(node.arguments[0].text);
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return packages;
}

const driverOf = (entry: string, options?: { dynamic?: boolean }) =>
  [...packagesLoaded(path.join(DIST, entry), options)]
    .filter(([name]) => DRIVER.test(name))
    .map(([name, files]) => `${name} via ${files.join(' → ')}`);

test('the registry and sampler threads do not load the database driver; the db writer does', () => {
  assert.deepEqual(driverOf('workers/registry.js'), [], 'the registry thread loads a database driver');
  assert.deepEqual(driverOf('workers/sampler.js'), [], 'the sampler thread loads a database driver');
  const writer = driverOf('workers/db-writer.js');
  assert.ok(
    writer.some((line) => line.startsWith('kysely')) && writer.some((line) => line.startsWith('better-sqlite3')),
    `the walker finds the writer's driver: ${JSON.stringify(writer)}`,
  );
  // The walker follows files: the registry reaches its link and log modules.
  const registry = packagesLoaded(path.join(DIST, 'workers/registry.js'));
  assert.ok(registry.has('pino') && registry.has('comlink'), `registry packages: ${[...registry.keys()].join(', ')}`);
});

test('the alerter thread loads better-sqlite3 for its store, and kysely only through import() (PostgreSQL)', () => {
  const always = driverOf('workers/alerter.js', { dynamic: false });
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
    driverOf('workers/alerter.js').some((line) => line.startsWith('kysely')),
    'with import() followed, the PostgreSQL path reaches kysely (the walker sees the dynamic import)',
  );
});
