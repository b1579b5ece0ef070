// A real browser for the dashboard tests: Debian's Chromium (/usr/bin/chromium, package
// `chromium`) driven by playwright-core. Never `npx playwright install`: nothing is downloaded.
// Every page records its console errors, page errors, failed requests and HTTP errors for the
// whole test, so a test can assert there were none (and that it saw requests at all).
import { existsSync } from 'node:fs';
import type { TestContext } from 'node:test';
import { chromium, type Browser, type BrowserContextOptions, type Page } from 'playwright-core';
import { requireResource } from './resources.js';
import { waitFor } from './wait.js';

export const CHROMIUM = '/usr/bin/chromium';
const LAUNCH_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Chromium, or null after marking the test skipped (under CI=true a missing browser fails). */
export async function launchChromium(t: TestContext): Promise<Browser | null> {
  if (
    !requireResource(
      t,
      'chromium',
      existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is missing (apt-get install chromium)`,
    )
  )
    return null;
  return chromium.launch({ executablePath: CHROMIUM, args: LAUNCH_ARGS });
}

export interface WatchedPage {
  page: Page;
  /** Console errors, uncaught page errors, failed requests and responses >= 400, as text. */
  problems: string[];
  /** Every response seen (method, status, URL): proof the watcher saw traffic. */
  responses: string[];
}

export async function openPage(
  browser: Browser,
  url: string,
  options: BrowserContextOptions = {},
): Promise<WatchedPage> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...options });
  const page = await context.newPage();
  const problems: string[] = [];
  const responses: string[] = [];
  page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => {
    // Only a navigation (reload, close) or the page's own AbortController aborts a request.
    if (r.failure()?.errorText !== 'net::ERR_ABORTED')
      problems.push(`request failed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`);
  });
  page.on('response', (r) => {
    responses.push(`${r.request().method()} ${r.status()} ${r.url()}`);
    if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.request().method()} ${r.url()}`);
  });
  await page.goto(url);
  return { page, problems, responses };
}

/** The dashboard's URL, from the monitor's "dashboard listening" log line (start it with --http-port 0). */
export async function dashboardUrl(output: () => string): Promise<string> {
  return waitFor(
    'the dashboard to listen',
    () => {
      const line = output()
        .split('\n')
        .find((l) => l.includes('"dashboard listening"'));
      return line ? (JSON.parse(line) as { listen: string }).listen : undefined;
    },
    20_000,
  );
}

/** Pixels of a canvas under `selector` close to the colour of the CSS variable `--series`. */
export function seriesPixels(page: Page, selector: string): Promise<number> {
  return page.evaluate((sel) => {
    const canvas = document.querySelector<HTMLCanvasElement>(sel);
    if (!canvas) return -1;
    const hex = getComputedStyle(canvas).getPropertyValue('--series').trim();
    const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
    const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (
        data[i + 3] > 200 &&
        Math.abs(data[i] - r) < 40 &&
        Math.abs(data[i + 1] - g) < 40 &&
        Math.abs(data[i + 2] - b) < 40
      )
        n++;
    }
    return n;
  }, selector);
}
