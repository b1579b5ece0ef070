// docs/protocol.schema.json is generated from src/protocol (npm run build; test/protocol-drift.test.ts
// fails when it is stale). This test checks that a standard validator (ajv, draft 2020-12) reading the
// file accepts and rejects the same lines as the monitor's decodeLine, and that the protocol's encoder
// writes lines the monitor accepts.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { decodeLine } from '../src/protocol/decode.js';
import { FEATURE_KEY_PATTERN, LIMITS } from '../src/protocol/messages.js';
import { encodeLine, stampedLine } from '../src/protocol/encode.js';
import { SCHEMA_FILE } from '../src/protocol/generate-schema.js';

const checkedIn = readFileSync(SCHEMA_FILE, 'utf8');
const schema = JSON.parse(checkedIn) as Record<string, unknown>;
// strict: an unknown keyword in the generated schema is an error, except our three annotations.
const validate = new Ajv2020({
  strict: true,
  allErrors: true,
  keywords: ['x-limits', 'x-defaults', 'x-protocol-version'],
}).compile(schema);

const base = { channel: 'el_serda', pid: 4242 };
const usage = {
  type: 'llm_usage',
  channel: 'el_serda',
  model: 'gpt-4o',
  feature: 'jokes',
  tokens_in: 145,
  tokens_out: 87,
};
const manyFeatures = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`f${i}`, true]));

const valid: Record<string, unknown>[] = [
  { type: 'register', ...base },
  { type: 'register', ...base, features: { llm: true, translator: false }, v: 1, ts: 1764582000000, token: 's3cret' },
  { type: 'register', ...base, features: manyFeatures(LIMITS.maxFeatures) },
  { type: 'heartbeat', ...base },
  { type: 'heartbeat', channel: 'x'.repeat(64), pid: LIMITS.maxPid },
  { type: 'unregister', ...base, token: 't'.repeat(LIMITS.maxTokenLength) },
  usage,
  { ...usage, latency_ms: 1850.5, v: 1, ts: 0 },
  { ...usage, tokens_in: 0, tokens_out: LIMITS.maxTokens, latency_ms: LIMITS.maxLatencyMs },
  { ...usage, model: 'm'.repeat(LIMITS.maxModelLength), feature: 'f'.repeat(LIMITS.maxFeatureLength) },
  { ...usage, model: 'gpt-4o "quoted" \\ \n ü' },
  { type: 'heartbeat', ...base, extra: 'unknown fields are ignored' },
];

const invalid: Record<string, unknown>[] = [
  { type: 'hello', ...base },
  { ...base },
  { type: 'register', channel: 'el_serda' },
  { type: 'register', ...base, channel: '' },
  { type: 'register', ...base, channel: 'has-dash' },
  { type: 'register', ...base, channel: 'x'.repeat(65) },
  { type: 'register', ...base, pid: 0 },
  { type: 'register', ...base, pid: 1.5 },
  { type: 'register', ...base, pid: LIMITS.maxPid + 1 },
  { type: 'register', ...base, pid: '4242' },
  { type: 'register', ...base, features: { llm: 'yes' } },
  { type: 'register', ...base, features: manyFeatures(LIMITS.maxFeatures + 1) },
  { type: 'register', ...base, features: [true] },
  { type: 'heartbeat', ...base, v: 0 },
  { type: 'heartbeat', ...base, ts: -1 },
  { type: 'heartbeat', ...base, token: 't'.repeat(LIMITS.maxTokenLength + 1) },
  { type: 'unregister', channel: 'el_serda', pid: -3 },
  { ...usage, model: '' },
  { ...usage, model: 'm'.repeat(LIMITS.maxModelLength + 1) },
  { ...usage, feature: 'f'.repeat(LIMITS.maxFeatureLength + 1) },
  { ...usage, tokens_in: -1 },
  { ...usage, tokens_out: 1.5 },
  { ...usage, tokens_in: LIMITS.maxTokens + 1 },
  { ...usage, latency_ms: -1 },
  { ...usage, latency_ms: LIMITS.maxLatencyMs + 1 },
  { ...usage, latency_ms: '12' },
  { type: 'llm_usage', channel: 'el_serda', model: 'gpt-4o', feature: 'jokes', tokens_in: 1 },
];

function monitorAccepts(line: string): boolean {
  return decodeLine(Buffer.from(line), 32).ok;
}

describe('docs/protocol.schema.json', () => {
  test('shape: draft 2020-12, a oneOf over the four message types, the limits as an annotation', () => {
    assert.equal(schema.$schema, 'https://json-schema.org/draft/2020-12/schema');
    const defs = schema.$defs as Record<string, { properties: Record<string, { const?: string }> }>;
    assert.deepEqual(Object.keys(defs).sort(), ['heartbeat', 'llm_usage', 'register', 'unregister']);
    for (const [type, def] of Object.entries(defs))
      assert.equal(def.properties.type.const, type, `$defs.${type} is discriminated by type`);
    assert.deepEqual(
      schema.oneOf,
      Object.keys(defs).map((type) => ({ $ref: `#/$defs/${type}` })),
    );
    assert.deepEqual(schema['x-limits'], { ...LIMITS, featureKeyPattern: FEATURE_KEY_PATTERN });
  });

  test('ajv with the schema file and the monitor agree on valid and invalid lines', () => {
    for (const message of valid) {
      const line = JSON.stringify(message);
      assert.equal(validate(message), true, `ajv rejects a valid line ${line}: ${JSON.stringify(validate.errors)}`);
      assert.equal(monitorAccepts(line), true, `the monitor rejects a valid line ${line}`);
    }
    for (const message of invalid) {
      const line = JSON.stringify(message).slice(0, 200);
      assert.equal(validate(message), false, `ajv accepts an invalid line ${line}`);
      assert.equal(monitorAccepts(JSON.stringify(message)), false, `the monitor accepts an invalid line ${line}`);
    }
  });

  test('the documented difference: lengths count UTF-16 code units on the monitor, code points in JSON Schema', () => {
    // 65 astral characters: 65 code points (ajv: fine) but 130 UTF-16 units (monitor: over 128).
    const message = { ...usage, model: '😀'.repeat(65) };
    assert.equal(validate(message), true);
    assert.equal(monitorAccepts(JSON.stringify(message)), false);
    assert.match(String(schema.description), /UTF-16 code units/);
    // ajv told to count like JavaScript does agrees with the monitor.
    const utf16 = new Ajv2020({
      strict: true,
      unicode: false,
      logger: false,
      keywords: ['x-limits', 'x-defaults', 'x-protocol-version'],
    }).compile(schema);
    assert.equal(utf16(message), false);
  });

  test('encodeLine and stampedLine write one line the monitor decodes back to the message', () => {
    const register = {
      type: 'register',
      channel: 'el_serda',
      pid: 4242,
      features: { llm: true },
      token: 't "quoted"',
    } as const;
    const usageMessage = { ...usage, type: 'llm_usage', latency_ms: 12.5, ts: 99 } as const;
    for (const message of [register, usageMessage]) {
      const line = encodeLine(message);
      assert.ok(line.endsWith('}\n') && line.indexOf('\n') === line.length - 1, line);
      assert.deepEqual(decodeLine(Buffer.from(line.slice(0, -1)), 32), { ok: true, message });
    }
    const stamp = stampedLine({ ...register, ts: 1 }); // its own ts is replaced by each stamp
    for (const ts of [0, 1767225600000.125]) {
      assert.deepEqual(decodeLine(Buffer.from(stamp(ts).slice(0, -1)), 32), { ok: true, message: { ...register, ts } });
    }
  });
});
