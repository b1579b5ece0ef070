// The one-way layers of docs/ARCHITECTURE.md ("Layers"), checked on every .ts file's imports: static
// and type-only imports, `export … from`, dynamic `import()`, `import('…').T` types, `require()` and
// file references `new URL('…', import.meta.url)` (how a thread or child entry point is named).
// The second test runs the same checker over a small made-up tree with one bad edge per rule, so
// a rule that stopped matching anything fails here instead of passing quietly.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = path.resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** The bottom layer: imports nothing of ours but itself. */
const BOTTOM = [
  /^src\/protocol\//,
  /^src\/(config|config-defaults|errors|duration|glob)\.ts$/,
  /^src\/llm\/prices\.ts$/,
];
/** Actor contracts: message types (and the health record) that both sides of a thread boundary import. */
const CONTRACTS = [/^src\/actors\/[^/]+-messages\.ts$/, /^src\/actors\/health\.ts$/];
/** The one place in src/ that may name a workers/ file: the supervisor starts the threads by URL. */
const STARTS_THREADS = 'src/supervisor/supervisor.ts';

interface Edge {
  from: string;
  to: string;
  line: number;
  how: 'import' | 'url';
}

const is = (patterns: RegExp[], file: string) => patterns.some((p) => p.test(file));
const top = (file: string) => file.split('/')[0];

/** Every reference from `file` (repo-relative) to another file of the repo, resolved to its .ts source. */
function edgesOf(file: string, text: string): Edge[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const edges: Edge[] = [];
  const add = (node: ts.Node, spec: string, how: Edge['how']) => {
    if (!spec.startsWith('.')) return; // a package or node: builtin
    const to = path.posix.normalize(path.posix.join(path.posix.dirname(file), spec)).replace(/\.js$/, '.ts');
    edges.push({ from: file, to, line: source.getLineAndCharacterOfPosition(node.getStart()).line + 1, how });
  };
  // The static head of a string or template (`../../workers/${name}.js` → `../../workers/`).
  const literal = (node: ts.Node | undefined): string | null => {
    if (!node) return null;
    if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) return node.text;
    if (ts.isTemplateExpression(node)) return node.head.text;
    return null;
  };
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier) {
      add(node, (node.moduleSpecifier as ts.StringLiteral).text, 'import');
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      const { literal } = node.argument;
      if (ts.isStringLiteral(literal)) add(node, literal.text, 'import');
    } else if (ts.isCallExpression(node)) {
      const callee = node.expression;
      const spec = literal(node.arguments[0]);
      const isRequire = ts.isIdentifier(callee) && callee.text === 'require';
      const isCreateRequired = ts.isCallExpression(callee); // createRequire(import.meta.url)('…')
      const loads = callee.kind === ts.SyntaxKind.ImportKeyword || isRequire || isCreateRequired;
      if (spec !== null && loads) add(node, spec, 'import');
    } else if (ts.isNewExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'URL') {
      const spec = literal(node.arguments?.[0]);
      const base = node.arguments?.[1];
      if (spec !== null && base && base.getText(source) === 'import.meta.url') add(node, spec, 'url');
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return edges;
}

/** The rules; each broken edge is reported as `file:line → target: rule`. */
function violations(edges: Edge[]): string[] {
  const found: string[] = [];
  const broken = (e: Edge, rule: string) => found.push(`${e.from}:${e.line} → ${e.to}: ${rule}`);
  for (const e of edges) {
    const [from, to] = [top(e.from), top(e.to)];
    if (is(BOTTOM, e.from) && !is(BOTTOM, e.to) && to === 'src') {
      broken(e, 'the bottom layer imports only the bottom layer');
    }
    if (is(CONTRACTS, e.from) && to === 'src' && !is(BOTTOM, e.to) && !is(CONTRACTS, e.to)) {
      broken(e, 'an actor contract imports only the bottom layer and other contracts');
    }
    if ((from === 'src' || from === 'workers') && (to === 'test' || to === 'bench')) {
      broken(e, 'production code never imports test/ or bench/');
    }
    if (from === 'src' && to === 'workers' && !(e.how === 'url' && e.from === STARTS_THREADS)) {
      broken(e, `src/ never imports workers/ (only ${STARTS_THREADS} names their files, to start the threads)`);
    }
    if (from === 'workers' && to === 'workers' && e.how === 'import') {
      broken(e, 'workers/ entry points never import each other');
    }
  }
  return found;
}

function tsFiles(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile() && d.name.endsWith('.ts') && !d.name.endsWith('.d.ts'))
    .map((d) => path.relative(ROOT, path.join(d.parentPath, d.name)).split(path.sep).join('/'));
}

test('every import in src/, workers/, test/ and bench/ follows the layer rules', () => {
  const files = ['src', 'workers', 'test', 'bench'].flatMap(tsFiles);
  const edges = files.flatMap((f) => edgesOf(f, readFileSync(path.join(ROOT, f), 'utf8')));
  // The watcher saw the tree: hundreds of edges, the supervisor's worker URLs among them.
  assert.ok(edges.length > 200, `only ${edges.length} references found`);
  const startsThreads = edges.some((e) => e.from === STARTS_THREADS && e.to.startsWith('workers/') && e.how === 'url');
  assert.ok(startsThreads, 'the supervisor names workers/ files');
  assert.ok(
    edges.some((e) => is(CONTRACTS, e.from) && is(BOTTOM, e.to)),
    'contracts import the bottom layer',
  );
  assert.ok(
    edges.some((e) => e.from.startsWith('workers/') && e.to.startsWith('src/')),
    'workers import src/',
  );
  assert.deepEqual(violations(edges), []);
});

test('the checker reports one broken edge per rule (and accepts the allowed ones)', () => {
  const tree: Record<string, string> = {
    'src/config.ts': "import { Link } from './actors/link.js';\nimport { BUILTIN_PRICES } from './llm/prices.js';",
    'src/protocol/messages.ts': "import type { Logger } from '../log.js';",
    'src/actors/registry-messages.ts':
      "import type { Features } from '../protocol/messages.js';\nexport type X = import('../db/queries.js').UsageRow;",
    'src/actors/db-writer-messages.ts': "import type { ActorHealth } from './health.js';",
    'src/monitor.ts':
      "import { ProcessSampler } from '../workers/sampler.js';\nimport { sleep } from '../test/helpers/wait.js';",
    'src/db/read-pool.ts':
      "const file = new URL('./read-task.js', import.meta.url);\nconst w = new URL(`../../workers/${n}.js`, import.meta.url);",
    'src/supervisor/supervisor.ts':
      'const file = (name: string) => new URL(`../../workers/${name}.js`, import.meta.url);',
    'workers/registry.ts': "import { Link } from '../src/actors/link.js';\nconst m = await import('./sampler.js');",
    'workers/sampler.ts': "const h = require('../bench/harness.js');",
    'test/x.test.ts': "import '../workers/registry.js';\nimport '../bench/harness.js';",
  };
  const edges = Object.entries(tree).flatMap(([f, text]) => edgesOf(f, text));
  assert.deepEqual(violations(edges).sort(), [
    'src/actors/registry-messages.ts:2 → src/db/queries.ts: an actor contract imports only the bottom layer and other contracts',
    'src/config.ts:1 → src/actors/link.ts: the bottom layer imports only the bottom layer',
    `src/db/read-pool.ts:2 → workers/: src/ never imports workers/ (only ${STARTS_THREADS} names their files, to start the threads)`,
    `src/monitor.ts:1 → workers/sampler.ts: src/ never imports workers/ (only ${STARTS_THREADS} names their files, to start the threads)`,
    'src/monitor.ts:2 → test/helpers/wait.ts: production code never imports test/ or bench/',
    'src/protocol/messages.ts:1 → src/log.ts: the bottom layer imports only the bottom layer',
    'workers/registry.ts:2 → workers/sampler.ts: workers/ entry points never import each other',
    'workers/sampler.ts:1 → bench/harness.ts: production code never imports test/ or bench/',
  ]);
});
