// Bundles each thread's entry point (the CLI's main thread, the four actors, the read pool's task,
// the registry's rebuild reader) into one file at `npm install`/`npm run build`, over tsc's output
// at the same path. Unbundled, every thread's isolate resolves, reads, compiles and links ~300–900
// ES modules of ours, TypeBox's and kysely's at start (measured: PERFORMANCE.md, "Start-up").
// Packages that find files of their own at run time stay external: native addons, piscina (its
// worker script), and what the code loads with createRequire (not seen by esbuild).
// Run as a script it writes the bundles; the thread-imports test calls `bundleEntries` to read
// what each bundle holds.
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Metafile, type Plugin } from 'esbuild';

const ROOT = path.resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** Each entry's source, repo-relative; its bundle goes where tsc put its .js (dist/<same path>). */
export const ENTRIES = [
  'src/cli.ts',
  'workers/db-writer.ts',
  'workers/alerter.ts',
  'workers/registry.ts',
  'workers/sampler.ts',
  'src/db/read-task.ts',
  'src/actors/rebuild-reader.ts',
] as const;

const EXTERNAL = ['better-sqlite3', 'unix-dgram', 'piscina', 'pg-native', 'pg-cloudflare'];

const outputOf = (entry: string) => path.join(ROOT, 'dist', entry.replace(/\.ts$/, '.js'));
/** What an entry loads by `import()` only (a CLI command, the PostgreSQL path) is a chunk beside it, loaded then. */
const CHUNK_PREFIX = 'chunk-';

/**
 * `import.meta.url` in a bundled module is the bundle's URL; each module here names files beside
 * its own compiled .js (`new URL('../../workers/x.js', import.meta.url)`, createRequire for
 * package.json), so it gets the URL its tsc output has instead, relative to the bundle.
 */
function ownModuleUrl(bundleDir: string): Plugin {
  return {
    name: 'own-module-url',
    setup(b) {
      b.onLoad({ filter: /\.ts$/ }, (args) => {
        const source = readFileSync(args.path, 'utf8');
        if (!source.includes('import.meta.url')) return undefined;
        const compiled = path.join(ROOT, 'dist', path.relative(ROOT, args.path)).replace(/\.ts$/, '.js');
        let relative = path.relative(bundleDir, compiled).split(path.sep).join('/');
        if (!relative.startsWith('.')) relative = `./${relative}`;
        const url = `new URL(${JSON.stringify(relative)}, import.meta.url).href`;
        return { contents: source.replaceAll('import.meta.url', url), loader: 'ts' };
      });
    },
  };
}

/** Bundles every entry; `write: false` returns what each bundle would hold without writing it. */
export async function bundleEntries({ write = true } = {}): Promise<Map<string, Metafile>> {
  const built = await Promise.all(
    ENTRIES.map(async (entry) => {
      const outdir = path.dirname(outputOf(entry));
      const chunkPrefix = `${CHUNK_PREFIX}${path.basename(entry, '.ts')}-`;
      // A chunk's name has its content's hash: the last build's chunks would stay beside the new ones.
      if (write) for (const f of readdirSync(outdir)) if (f.startsWith(chunkPrefix)) rmSync(path.join(outdir, f));
      const result = await build({
        absWorkingDir: ROOT,
        entryPoints: [entry],
        outdir,
        entryNames: '[name]',
        chunkNames: `${chunkPrefix}[hash]`,
        splitting: true,
        allowOverwrite: true,
        bundle: true,
        platform: 'node',
        format: 'esm',
        target: 'node20',
        external: EXTERNAL,
        // Bundled CommonJS packages require() node builtins; ESM has no `require` of its own.
        banner: {
          js: "import { createRequire as __bundleCreateRequire } from 'node:module'; const require = __bundleCreateRequire(import.meta.url);",
        },
        keepNames: true,
        sourcemap: true,
        metafile: true,
        write,
        logLevel: 'warning',
        plugins: [ownModuleUrl(outdir)],
      });
      return [entry, result.metafile] as const;
    }),
  );
  return new Map(built);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await bundleEntries();
