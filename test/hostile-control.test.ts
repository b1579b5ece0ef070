// Hostile or broken requests to the control API, as raw bytes on the Unix control socket and on
// the --metrics-port TCP port: each gets a 4xx (or a closed connection where HTTP has no answer),
// is counted by reason and logged, and none of them ends the monitor. Admin routes (flush, faults)
// are refused on the read socket and served on <socket>.admin, mode 0600.
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { requestControl } from '../src/http/control-client.js';
import { closedWithin, connect } from './fixtures/socket-tools.js';
import {
  killStarted,
  startMonitor,
  stopMonitor,
  TestDir,
  waitFor,
  type MonitorProcess,
} from './helpers/monitor-process.js';

type Target = string | { port: number };

/** Writes `bytes` on a fresh connection; the status of the first response line, or 'closed' if none came. */
async function rawRequest(target: Target, bytes: string | Buffer, timeoutMs = 10_000): Promise<number | 'closed'> {
  const conn = await connect(target);
  let received = '';
  conn.socket.on('data', (c: Buffer) => (received += c.toString('latin1')));
  try {
    await conn.write(bytes).catch(() => {}); // the monitor may close before taking it all
    const status = await waitFor(
      'an answer or a close',
      () => {
        const match = /^HTTP\/1\.[01] (\d{3})/.exec(received);
        if (match) return Number(match[1]);
        return conn.isClosed() ? 'closed' : null;
      },
      timeoutMs,
      10,
    );
    return status;
  } finally {
    conn.socket.destroy();
  }
}

const TLS_CLIENT_HELLO = Buffer.from('160301003c0100003803035f' + '00'.repeat(32) + '0000020035010000', 'hex');

/** [what, bytes, expected statuses ('closed' where HTTP has no answer)] */
function hostileRequests(): [string, string | Buffer, (number | 'closed')[]][] {
  return [
    ['absolute-form URL that new URL() cannot parse', 'GET http://[ HTTP/1.1\r\nHost: x\r\n\r\n', [400]],
    ['bad percent-encoding in the path', 'GET /status%zz HTTP/1.1\r\nHost: x\r\n\r\n', [400]],
    ['invalid UTF-8 percent-encoding in the query', 'GET /usage?since=%E0%A4%A HTTP/1.1\r\nHost: x\r\n\r\n', [400]],
    ['a 20 KB header', `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, [431]],
    ['absurd Content-Length', 'POST /flush HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999\r\n\r\n', [400, 413]],
    [
      'a chunked 4 KB body',
      `GET /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n${'b'.repeat(4096)}\r\n0\r\n\r\n`,
      [413],
    ],
    ['TLS ClientHello', TLS_CLIENT_HELLO, [400, 'closed']],
    ['unknown route', 'GET /nope HTTP/1.1\r\nHost: x\r\n\r\n', [404]],
    ['unknown method on a route', 'DELETE /health HTTP/1.1\r\nHost: x\r\n\r\n', [404, 405]],
    ['a method HTTP does not have', 'BREW /health HTTP/1.1\r\nHost: x\r\n\r\n', [400]],
    ['garbage instead of a request line', '\x00\x01\x02 nonsense\r\n\r\n', [400, 'closed']],
  ];
}

describe('hostile control requests', () => {
  const dir = new TestDir();
  let monitor: MonitorProcess;
  let metricsPort: number;

  before(async () => {
    monitor = await startMonitor(dir, ['--metrics-port', '0', '--enable-faults']);
    const where = /"listen":"http:\/\/127\.0\.0\.1:(\d+)\/metrics"/.exec(monitor.output())?.[1];
    assert.ok(where, 'the log names the metrics port');
    metricsPort = Number(where);
  });
  after(async () => {
    await killStarted();
    dir.remove();
  });

  const rejected = async () =>
    (await requestControl<{ control: { rejected: Record<string, number> } }>(monitor.control, 'GET', '/health')).control
      .rejected;

  for (const listener of ['control socket', 'metrics port'] as const) {
    it(`on the ${listener}: every bad request gets a 4xx or a close, and the monitor stays up`, async () => {
      const target: Target = listener === 'control socket' ? monitor.control : { port: metricsPort };
      const before = await rejected();
      for (const [what, bytes, expected] of hostileRequests()) {
        const status = await rawRequest(target, bytes);
        assert.ok(expected.includes(status), `${what}: got ${status}, expected one of ${expected.join(', ')}`);
        assert.equal(monitor.child.exitCode, null, `the monitor died after: ${what}`);
      }
      if (listener === 'control socket') {
        assert.equal(
          await rawRequest(target, 'GET /usage?by=planet HTTP/1.1\r\nHost: x\r\n\r\n'),
          400,
          'bad query value',
        );
        assert.equal(
          await rawRequest(target, 'GET /status?limit=5 HTTP/1.1\r\nHost: x\r\n\r\n'),
          400,
          'unknown query parameter',
        );
      }
      const after = await rejected();
      const grew = (reason: string) => (after[reason] ?? 0) - (before[reason] ?? 0);
      for (const reason of ['bad_url', 'bad_request', 'header_too_large', 'body_too_large', 'not_found'])
        assert.ok(grew(reason) >= 1, `${reason} counted (${JSON.stringify(after)})`);
      if (listener === 'control socket') assert.ok(grew('bad_query') >= 2, 'bad query values counted');
      // Still answering, on both listeners.
      assert.ok(Array.isArray(await requestControl(monitor.control, 'GET', '/status')));
      const metrics = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
      assert.equal(metrics.status, 200);
      assert.match(await metrics.text(), /kissmon_control_rejected_total\{reason="bad_url"\} [1-9]/);
    });
  }

  it('slowloris: headers trickled byte by byte are cut off by the headers timeout (408 or close)', async () => {
    const conn = await connect(monitor.control);
    let received = '';
    conn.socket.on('data', (c: Buffer) => (received += c.toString('latin1')));
    const header = 'GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ';
    await conn.write(header);
    const trickle = setInterval(() => void conn.write('a').catch(() => {}), 500);
    try {
      // Headers timeout 5 s, checked every 0.5 s; 20 s leaves room for a fully busy second core.
      assert.ok(await closedWithin(conn, 20_000), 'the connection is closed');
    } finally {
      clearInterval(trickle);
      conn.socket.destroy();
    }
    assert.ok(received === '' || received.startsWith('HTTP/1.1 408'), `answer: ${received.slice(0, 40)}`);
    assert.ok(((await rejected()).timeout ?? 0) >= 1, 'timeout counted');
  });

  it('the rejections are logged, rate-limited, with their reason', async () => {
    await waitFor('a rejection log line', () => /"msg":"control request rejected"/.test(monitor.output()));
    const lines = monitor
      .output()
      .split('\n')
      .filter((l) => l.includes('"msg":"control request rejected"'));
    assert.ok(
      lines.some((l) => l.includes('"kind":"control_bad_url"')),
      'the reason is in the line',
    );
    const total = Object.values(await rejected()).reduce((a, b) => a + b, 0);
    assert.ok(lines.length < total, `rate-limited: ${lines.length} lines for ${total} rejections`);
  });

  it('admin routes: refused on the read socket, served on the 0600 admin socket', async () => {
    const before = (await rejected()).admin_only ?? 0;
    for (const path of ['/flush', '/latency/reset', '/fault/crash?actor=sampler']) {
      await assert.rejects(
        requestControl(monitor.control, 'POST', path),
        /admin route/,
        `POST ${path} on the read socket`,
      );
    }
    assert.equal((await rejected()).admin_only, before + 3, 'counted as admin_only');
    assert.equal(statSync(monitor.admin).mode & 0o777, 0o600, 'admin socket mode');
    assert.equal(statSync(monitor.admin).uid, process.getuid!(), "admin socket owned by the monitor's uid");
    assert.deepEqual(await requestControl(monitor.admin, 'POST', '/flush'), { flushed: true });
    const health = await requestControl<{ actors: { actor: string; up: boolean }[] }>(
      monitor.control,
      'GET',
      '/health',
    );
    assert.ok(
      health.actors.every((a) => a.up),
      'no actor was crashed through the read socket',
    );
    assert.equal(await stopMonitor(monitor), 0);
  });
});
