// Builds the dashboard page into dist/dashboard at `npm install`/`npm run build`: esbuild bundles
// the TypeScript (Preact + htm + uPlot) and the CSS into one file each, minified; index.html and
// the favicon are copied. No CDN: the monitor serves these files itself and works offline.
import { copyFileSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const source = (file: string) => fileURLToPath(new URL(`../../../src/dashboard/${file}`, import.meta.url));
const out = fileURLToPath(new URL('../../dashboard/', import.meta.url));

mkdirSync(out, { recursive: true });
await build({
  entryPoints: { app: source('app.ts') },
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['chrome110', 'firefox110', 'safari16'],
  outdir: out,
  legalComments: 'none',
  logLevel: 'warning',
});
for (const file of ['index.html', 'favicon.svg']) copyFileSync(source(file), `${out}/${file}`);
