// The raw baselines' server (bench/raw-baseline.ts into SQLite, bench/raw-pg-baseline.ts into
// PostgreSQL): a bare Unix-socket server that splits on `\n`, JSON.parses each line and hands every
// llm_usage message to `onUsage` — no validation, auth or actors, the floor the monitor is measured against.
import net from 'node:net';
import type { LlmUsageMessage } from '../src/protocol/messages.js';

export function serveUsageLines(socketPath: string, onUsage: (msg: LlmUsageMessage) => void): net.Server {
  const onLine = (line: Buffer): void => {
    if (line.length === 0) return;
    let msg: LlmUsageMessage;
    try {
      msg = JSON.parse(line.toString('utf8')) as LlmUsageMessage;
    } catch {
      return;
    }
    if (msg.type === 'llm_usage') onUsage(msg);
  };
  const server = net.createServer((socket) => {
    let partial: Buffer | null = null;
    socket.on('data', (chunk: Buffer) => {
      let start = 0;
      let nl = chunk.indexOf(10);
      if (nl !== -1 && partial) {
        onLine(Buffer.concat([partial, chunk.subarray(0, nl)]));
        partial = null;
        start = nl + 1;
        nl = chunk.indexOf(10, start);
      }
      while (nl !== -1) {
        onLine(chunk.subarray(start, nl));
        start = nl + 1;
        nl = chunk.indexOf(10, start);
      }
      if (start < chunk.length)
        partial = partial ? Buffer.concat([partial, chunk.subarray(start)]) : Buffer.from(chunk.subarray(start));
    });
    socket.on('end', () => {
      if (partial) onLine(partial);
      partial = null;
    });
    socket.on('error', () => {});
  });
  server.listen({ path: socketPath, backlog: 4096 }, () => process.stdout.write('ready\n'));
  return server;
}
