// The heartbeat fast path (decodeHeartbeatFast) must accept exactly what the full path accepts, with
// the same message, and leave everything else to the full path (so a bad line is rejected with the
// full path's reason and detail). Seeded generated lines, valid and broken, around every limit.
//
// Reproduce a run: KISSMON_DECODE_SEED=<seed printed in the output> node --test dist/test/decode-fast-path.test.js
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeHeartbeatFast, decodeLine, decodeLineFully } from '../src/protocol/decode.js';
import { encodeLine, stampedLine } from '../src/protocol/encode.js';
import { LIMITS } from '../src/protocol/messages.js';

const SEED = Number(process.env.KISSMON_DECODE_SEED ?? Math.floor(Math.random() * 2 ** 32)) >>> 0;
const CASES = 50_000;
const MAX_DEPTH = 32;

/** mulberry32: small, seeded, good enough to spread cases. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const random = rng(SEED);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)];
const chance = (p: number) => random() < p;

const CHANNEL_CHARS = 'abcXYZ019_';
const channels = [
  () => Array.from({ length: 1 + Math.floor(random() * 20) }, () => pick([...CHANNEL_CHARS])).join(''),
  () => 'a'.repeat(64),
  () => 'a'.repeat(65),
  () => '',
  () => 'bad-channel',
  () => 'caf\u00e9',
  () => 'a\\u0062c',
  () => 'a b',
];
const pids = [
  '1',
  '42',
  String(LIMITS.maxPid),
  String(LIMITS.maxPid + 1),
  '0',
  '-1',
  '01',
  '1.0',
  '1.5',
  '1e3',
  '1E0',
  '99999999999',
  '"7"',
  'null',
  'true',
];
const versions = ['1', '1000', '1001', '0', '01', '1.0', '"1"', '5'];
const tss = [
  () => (1_764_626_000_000 + random() * 1e6).toFixed(Math.floor(random() * 7)),
  () => String(1_764_626_000_000 + random() * 1e6),
  () => String(random()),
  () => '0',
  () => '0.5',
  () => '00',
  () => '01.5',
  () => '1.',
  () => '.5',
  () => '-0',
  () => '-1',
  () => '1e3',
  () => '1.5E-2',
  () => '9'.repeat(20),
  () => '9'.repeat(21),
  () => `1.${'3'.repeat(20)}`,
  () => `${'1'.repeat(19)}.${'7'.repeat(19)}`,
  () => '123456789012345678.9',
  () => '"1"',
];
const tokens = [
  () => 's3cret',
  () => 'x'.repeat(LIMITS.maxTokenLength),
  () => 'x'.repeat(LIMITS.maxTokenLength + 1),
  () => '',
  () => 'a\\"b',
  () => 'a\\u00e9',
  () => 'tok with spaces ~!',
  () => 'caf\u00e9',
  () => 'tab\there',
];

/** The value written for a key: mostly good, sometimes anything of the lists above. */
function valueFor(key: string): string {
  switch (key) {
    case 'type':
      return chance(0.9)
        ? '"heartbeat"'
        : pick(['"register"', '"llm_usage"', '"Heartbeat"', '"heartbeat "', '1', 'null']);
    case 'channel':
      return `"${chance(0.85) ? channels[0]() : pick(channels)()}"`;
    case 'pid':
      return chance(0.8) ? String(1 + Math.floor(random() * 4_000_000)) : pick(pids);
    case 'v':
      return chance(0.8) ? '1' : pick(versions);
    case 'ts':
      return chance(0.6) ? tss[0]() : pick(tss)();
    case 'token':
      return `"${chance(0.7) ? 's3cret' : pick(tokens)()}"`;
    default:
      return pick(['1', '"x"', '{}', '[]', '{"a":1}', 'null']);
  }
}

function generatedLine(): string {
  const keys = ['type', 'channel', 'pid'];
  for (const optional of ['v', 'ts', 'token']) if (chance(0.5)) keys.push(optional);
  if (chance(0.05)) keys.splice(Math.floor(random() * keys.length), 1); // a required key missing
  if (chance(0.05)) keys.push(pick(keys)); // a key twice
  if (chance(0.05)) keys.push(pick(['extra', 'features', 'reason', 'Type', 'pid ']));
  for (let i = keys.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [keys[i], keys[j]] = [keys[j], keys[i]];
  }
  let line = `{${keys.map((k) => `"${k}":${valueFor(k)}`).join(',')}}`;
  if (chance(0.1)) {
    // Byte-level damage: spaces, a cut, a trailing comma, a stray byte, a nested value.
    const at = Math.floor(random() * line.length);
    line = pick([
      () => `${line.slice(0, at)} ${line.slice(at)}`,
      () => line.slice(0, at),
      () => `${line.slice(0, -1)},}`,
      () => `${line.slice(0, at)}${pick(['"', '\\', ':', ',', '{', '}', '\u00ff', '\u0000'])}${line.slice(at)}`,
      () => `${line}x`,
      () => ` ${line}`,
    ])();
  }
  return line;
}

describe('heartbeat fast path', () => {
  it(`accepts exactly what the full path accepts, with the same message (seed ${SEED})`, () => {
    let fast = 0;
    let accepted = 0;
    for (let c = 0; c < CASES; c++) {
      const text = generatedLine();
      const line = Buffer.from(text, chance(0.02) ? 'latin1' : 'utf8');
      const quick = decodeHeartbeatFast(line);
      const full = decodeLineFully(line, MAX_DEPTH);
      if (full.ok) accepted++;
      if (quick === null) {
        if (full.ok && process.env.KISSMON_DECODE_SHOW) console.log('declined:', text);
        continue;
      }
      fast++;
      assert.ok(full.ok, `fast path accepted a line the full path rejects (${full.ok ? '' : full.reason}): ${text}`);
      assert.deepEqual(quick, full.message, `different message for ${text}`);
      assert.deepEqual(decodeLine(line, MAX_DEPTH), { ok: true, message: quick });
    }
    // The generator must reach both sides, or the test proves nothing.
    assert.ok(fast > CASES / 10, `only ${fast} of ${CASES} lines took the fast path`);
    // Good lines it declines are the unusual spellings (1e3, 1.0, -0, 21-digit numbers): see the next test.
    assert.ok(fast > accepted / 2, `${accepted - fast} of ${accepted} good lines missed the fast path`);
  });

  it('takes what the load test and the clients send (their key orders, ts, v, token)', () => {
    const lines = [
      stampedLine({ type: 'heartbeat', channel: 'lt1a2b_17', pid: 4242 })(1_764_626_000_123.457),
      stampedLine({ type: 'heartbeat', channel: 'lt1a2b_17', pid: 4242, token: 't0k' })(0.001),
      // TypeScript and Python clients: type, channel, pid, v, ts (token last)
      encodeLine({ type: 'heartbeat', channel: 'worker_3', pid: 99, v: 1, ts: 1_764_626_000_000 }),
      encodeLine({ type: 'heartbeat', channel: 'worker_3', pid: 99, v: 1, ts: 1_764_626_000_000, token: 'abc' }),
    ];
    for (const text of lines) {
      const line = Buffer.from(text.trimEnd());
      const quick = decodeHeartbeatFast(line);
      assert.ok(quick, `fast path declined ${text}`);
      assert.deepEqual(quick, JSON.parse(text));
    }
  });

  it('leaves a bad heartbeat to the full path, which rejects it with its own reason', () => {
    const line = Buffer.from(`{"type":"heartbeat","channel":"a-b","pid":1,"ts":1}`);
    assert.equal(decodeHeartbeatFast(line), null);
    const result = decodeLine(line, MAX_DEPTH);
    assert.equal(result.ok, false);
    assert.equal(!result.ok && result.reason, 'invalid_fields');
  });
});
