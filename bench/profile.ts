// Where a CPU profile's time goes: self time per function (file:function:line), heaviest first, for
// every .cpuprofile in a directory (node --cpu-prof writes one per thread: main and each worker).
//
// Run: node dist/bench/profile.js DIR [top]
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  /** ms that were not idle (program + GC), the profile's busy time. */
  busyMs: number;
  top: { fn: string; selfMs: number; pct: number }[];
}

const root = process.cwd();

function frameName(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  const where = url ? relative(root, url.replace(/^file:\/\//, '')) || url : '';
  return `${where ? `${where}:` : ''}${functionName || '(anonymous)'}${url ? `:${lineNumber + 1}` : ''}`;
}

export function summariseProfile(path: string, top = 15): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  let idle = 0;
  // Each sample's time is the delta to the next one: attribute it to the sampled (leaf) frame.
  for (let i = 0; i < profile.samples.length; i++) {
    const us = profile.timeDeltas[i + 1] ?? 0;
    const node = byId.get(profile.samples[i]);
    if (!node) continue;
    total += us;
    const name = frameName(node);
    if (node.callFrame.functionName === '(idle)') idle += us;
    self.set(name, (self.get(name) ?? 0) + us);
  }
  const busy = total - idle;
  const rows = [...self.entries()]
    .filter(([name]) => !name.endsWith('(idle)'))
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([fn, us]) => ({ fn, selfMs: Math.round(us / 1000), pct: busy ? Math.round((us / busy) * 1000) / 10 : 0 }));
  return { file: path, totalMs: Math.round(total / 1000), busyMs: Math.round(busy / 1000), top: rows };
}

export function summariseDir(dir: string, top = 15): ProfileSummary[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => summariseProfile(join(dir, f), top))
    .sort((a, b) => b.busyMs - a.busyMs);
}

export function formatSummaries(summaries: ProfileSummary[]): string {
  return summaries
    .map((s) =>
      [
        `${s.file}: ${s.busyMs} ms busy of ${s.totalMs} ms`,
        ...s.top.map((t) => `  ${String(t.pct).padStart(5)} %  ${String(t.selfMs).padStart(6)} ms  ${t.fn}`),
      ].join('\n'),
    )
    .join('\n\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [dir, top] = process.argv.slice(2);
  if (!dir) {
    process.stderr.write('usage: node dist/bench/profile.js DIR [top]\n');
    process.exit(2);
  }
  console.log(formatSummaries(summariseDir(dir, Number(top) || 15)));
}
