// The built page: small (the bound, 150 KB gzipped for script and styles together),
// self-contained (no CDN, works offline) and without inline script or style (the CSP forbids them).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { DASHBOARD_ASSETS } from '../src/http/dashboard-server.js';

const MAX_GZIP_BYTES = 150 * 1024;

test('the dashboard bundle is under 150 KB gzipped, offline and CSP-clean', (t) => {
  const files = readdirSync(DASHBOARD_ASSETS);
  assert.deepEqual(files.sort(), ['app.css', 'app.js', 'favicon.svg', 'index.html']);
  const gzipped = ['app.js', 'app.css'].reduce(
    (n, f) => n + gzipSync(readFileSync(join(DASHBOARD_ASSETS, f)), { level: 9 }).length,
    0,
  );
  t.diagnostic(`app.js + app.css: ${(gzipped / 1024).toFixed(1)} KB gzipped`);
  assert.ok(gzipped > 10 * 1024, 'the bundle holds Preact, htm, uPlot and the page');
  assert.ok(gzipped < MAX_GZIP_BYTES, `${gzipped} bytes gzipped (bound ${MAX_GZIP_BYTES})`);
  const html = readFileSync(join(DASHBOARD_ASSETS, 'index.html'), 'utf8');
  assert.doesNotMatch(html, /<script>|<style|\sstyle=|\son[a-z]+=/i, 'no inline script, style or handler');
  for (const f of ['index.html', 'app.js', 'app.css']) {
    const text = readFileSync(join(DASHBOARD_ASSETS, f), 'utf8');
    assert.doesNotMatch(
      text,
      /(src|href)=["']https?:|@import\s+url\(["']?https?:|import\s*\(?["']https?:/,
      `${f} loads nothing from another host`,
    );
  }
});
