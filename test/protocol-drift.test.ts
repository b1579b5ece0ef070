// src/protocol is the one definition of protocol v1. This test fails when anything that restates it
// disagrees: the generated files (docs/protocol.schema.json, the Python package's copy of it, the
// TypeScript client's protocol.ts), the field tables of docs/PROTOCOL.md (names, types, required,
// limits), the limits the Python client validates with, and the TypeScript client's types.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as clientProtocol from 'kissbot-monitor-client/protocol';
import { generatedFiles } from '../src/protocol/generate-schema.js';
import * as protocol from '../src/protocol/messages.js';
import { commandMissing, requireResource } from './helpers/resources.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

// ---- the TypeScript client's types are the schemas' Static types (checked when tsc compiles this file)

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const sameTypes: [
  Equal<clientProtocol.RegisterMessage, protocol.RegisterMessage>,
  Equal<clientProtocol.HeartbeatMessage, protocol.HeartbeatMessage>,
  Equal<clientProtocol.UnregisterMessage, protocol.UnregisterMessage>,
  Equal<clientProtocol.LlmUsageMessage, protocol.LlmUsageMessage>,
  Equal<clientProtocol.Features, protocol.Features>,
  Equal<clientProtocol.MessageType, protocol.MessageType>,
] = [true, true, true, true, true, true];

// ---- docs/PROTOCOL.md's field tables

type FieldSchema = {
  type?: string;
  const?: string;
  anyOf?: FieldSchema[];
  pattern?: string;
  patternProperties?: Record<string, unknown>;
  [keyword: string]: unknown;
};
interface Row {
  field: string;
  type: string;
  required: string;
  limits: string;
}

const SHARED = 'Fields shared by every message';
const LIMIT_KEYWORDS = ['minimum', 'maximum', 'minLength', 'maxLength', 'minProperties', 'maxProperties'];

/** The field tables of the "## Messages" section, by heading: "Fields shared…" and each message type. */
function docTables(markdown: string): Map<string, Row[]> {
  const section = /^## Messages$([\s\S]*?)^## /m.exec(markdown)?.[1] ?? '';
  const tables = new Map<string, Row[]>();
  for (const part of section.split(/^### /m).slice(1)) {
    const heading = part.slice(0, part.indexOf('\n'));
    const name = heading === SHARED ? SHARED : /^`(\w+)`/.exec(heading)?.[1];
    if (!name) continue;
    const rows = part
      .split('\n')
      .filter((line) => line.startsWith('|'))
      .slice(2) // header and separator
      .map((line) =>
        line
          .slice(1, line.lastIndexOf('|'))
          .split('|')
          .map((cell) => cell.trim()),
      )
      .map(([field, type, required, limits]) => ({ field: field.replaceAll('`', ''), type, required, limits }));
    tables.set(name, rows);
  }
  return tables;
}

/** The numbers a limits cell states, outside code spans, commas removed. */
function numbersIn(text: string): Set<number> {
  const prose = text.replace(/`[^`]*`/g, '');
  return new Set([...prose.matchAll(/\d[\d,]*(\.\d+)?/g)].map((m) => Number(m[0].replaceAll(',', ''))));
}

/**
 * The bounds a field's schema sets: its limit keywords and the {a,b} counts of its patterns (a zero
 * lower bound is implicit).
 */
function schemaNumbers(field: FieldSchema): Set<number> {
  const numbers = new Set<number>();
  for (const keyword of LIMIT_KEYWORDS) if (typeof field[keyword] === 'number') numbers.add(field[keyword]);
  for (const pattern of [field.pattern, ...Object.keys(field.patternProperties ?? {})]) {
    for (const [, low, high] of pattern?.matchAll(/\{(\d+),(\d+)\}/g) ?? []) {
      if (Number(low) !== 0) numbers.add(Number(low));
      numbers.add(Number(high));
    }
  }
  return numbers;
}

const sorted = (set: Set<number>) => [...set].sort((a, b) => a - b).join(', ');

/** Every way the tables disagree with the schemas (empty: they agree). */
function docProblems(
  markdown: string,
  schemas: Record<string, { properties: Record<string, FieldSchema>; required?: string[] }>,
): string[] {
  const problems: string[] = [];
  const tables = docTables(markdown);
  const shared = tables.get(SHARED) ?? [];
  if (shared.length === 0) problems.push(`no "${SHARED}" table`);
  const types = Object.keys(schemas);
  for (const type of types) {
    const own = tables.get(type);
    if (!own) {
      problems.push(`no table for message type ${type}`);
      continue;
    }
    const { properties, required = [] } = schemas[type];
    const rows = [...shared, ...own];
    const documented = rows.map((row) => row.field);
    for (const name of Object.keys(properties))
      if (!documented.includes(name)) problems.push(`${type}.${name} is not documented`);
    for (const row of rows) {
      const where = `${type}.${row.field}`;
      const field = properties[row.field];
      if (!field) {
        problems.push(`${where} is documented but not in the schema`);
        continue;
      }
      // An enum is a union of constants of one type: the doc names that type.
      const fieldType = field.type ?? [...new Set(field.anyOf?.map((member) => member.type))].join(' | ');
      if (row.type !== fieldType) problems.push(`${where}: the doc says type ${row.type}, the schema ${fieldType}`);
      const isRequired = required.includes(row.field) ? 'yes' : 'no';
      if (row.required !== isRequired)
        problems.push(`${where}: the doc says required "${row.required}", the schema "${isRequired}"`);
      // A field of fixed values (the message type, an enum): the cell names each value in backticks.
      const values = row.field === 'type' ? types : field.anyOf?.map((member) => String(member.const));
      if (values) {
        const named = [...new Set([...row.limits.matchAll(/`(\w+)`/g)].map((m) => m[1]))].sort();
        if (named.join() !== [...values].sort().join())
          problems.push(`${where}: the doc names the values ${named.join(', ')}, the schema ${values.join(', ')}`);
        continue;
      }
      const doc = numbersIn(row.limits);
      const schema = schemaNumbers(field);
      if (sorted(doc) !== sorted(schema))
        problems.push(`${where}: the doc states the numbers [${sorted(doc)}], the schema [${sorted(schema)}]`);
      const charClass = field.pattern && /^\^(\[[^\]]+\])\{\d+,\d+\}\$$/.exec(field.pattern)?.[1];
      if (charClass && !row.limits.includes(`\`${charClass}\``))
        problems.push(`${where}: the doc does not give the characters ${charClass}`);
    }
  }
  for (const name of tables.keys())
    if (name !== SHARED && !types.includes(name)) problems.push(`the doc has a table for ${name}, not a message type`);
  return problems;
}

const schemaFile = JSON.parse(readFileSync(join(root, 'docs', 'protocol.schema.json'), 'utf8')) as {
  $defs: Parameters<typeof docProblems>[1];
};
const protocolDoc = readFileSync(join(root, 'docs', 'PROTOCOL.md'), 'utf8');

describe('protocol drift: everything that restates src/protocol agrees with it', () => {
  test('the generated files are what src/protocol generates (run `npm run build` to regenerate)', () => {
    const files = generatedFiles();
    assert.equal(files.length, 3);
    for (const { file, text } of files) {
      assert.equal(
        readFileSync(file, 'utf8'),
        text,
        `${file.slice(root.length)} is stale: run \`npm run build\` and commit it`,
      );
    }
  });

  test('the TypeScript client package: the same limits and constants at run time, the same types at compile', () => {
    assert.deepEqual(sameTypes, [true, true, true, true, true, true]);
    assert.deepEqual(clientProtocol.LIMITS, protocol.LIMITS);
    assert.equal(clientProtocol.FEATURE_KEY_PATTERN, protocol.FEATURE_KEY_PATTERN);
    assert.equal(clientProtocol.PROTOCOL_VERSION, protocol.PROTOCOL_VERSION);
    assert.deepEqual(
      [clientProtocol.DEFAULT_SOCKET, clientProtocol.SOCKET_ENV, clientProtocol.TOKEN_ENV],
      [protocol.DEFAULT_SOCKET, protocol.SOCKET_ENV, protocol.TOKEN_ENV],
    );
  });

  test("docs/PROTOCOL.md's field tables match the schemas: names, types, required, limits", (t) => {
    const tables = docTables(protocolDoc);
    const checked = [...tables.values()].reduce((n, rows) => n + rows.length, 0);
    assert.ok(checked >= 12, `only ${checked} table rows found: did the doc's layout change?`);
    t.diagnostic(`${checked} rows in ${tables.size} tables checked`);
    assert.deepEqual(docProblems(protocolDoc, schemaFile.$defs), []);
  });

  test('the doc check sees a drift: each deliberate break of the doc is reported', () => {
    const breaks: [what: string, original: string, replacement: string, reported: RegExp][] = [
      [
        'a limit changed',
        '| 1–128 characters',
        '| 1–127 characters',
        /llm_usage\.model: the doc states the numbers \[1, 127\]/,
      ],
      [
        'a row dropped',
        '| `latency_ms` | number | no | 0–86,400,000 (fractions allowed) |\n',
        '',
        /llm_usage\.latency_ms is not documented/,
      ],
      [
        'required flipped',
        '| `tokens_out` | integer | yes |',
        '| `tokens_out` | integer | no |',
        /llm_usage\.tokens_out: the doc says required "no"/,
      ],
      [
        'a type changed',
        '| `pid` | integer | yes | 1–2147483647 |',
        '| `pid` | number | yes | 1–2147483647 |',
        /unregister\.pid: the doc says type number/,
      ],
      [
        'an enum value dropped',
        '`timeout` or `rate_limited`',
        '`timeout`',
        /llm_usage\.status: the doc names the values/,
      ],
    ];
    // Table cells without the padding a formatter aligns them with, so the breaks above can be spelled plainly.
    const doc = protocolDoc.replace(/^\|.*\|$/gm, (row) => row.replace(/ *\| */g, ' | ').trim());
    for (const [what, original, replacement, reported] of breaks) {
      assert.ok(doc.includes(original), `the doc no longer contains ${JSON.stringify(original)}: update this test`);
      const problems = docProblems(doc.replace(original, replacement), schemaFile.$defs);
      assert.ok(
        problems.some((p) => reported.test(p)),
        `${what}: not reported (${problems.join('; ')})`,
      );
    }
    // And the other way: a limit changed in the schema, the doc untouched.
    const schemas = structuredClone(schemaFile.$defs);
    schemas.llm_usage.properties.model.maxLength = 256;
    assert.ok(
      docProblems(protocolDoc, schemas).some((p) =>
        p.startsWith('llm_usage.model: the doc states the numbers [1, 128], the schema [1, 256]'),
      ),
    );
  });

  test('the Python client validates with the limits of src/protocol', (t) => {
    if (!requireResource(t, 'python3', commandMissing('python3'))) return;
    // Every limit, and the constant of kissbot_monitor_client.client that holds it — null for a
    // field the Python client never sends. A new limit fails here until it is given one or the other.
    const PYTHON: Record<keyof typeof protocol.LIMITS | 'featureKeyPattern', string | null> = {
      channelPattern: '_CHANNEL.pattern',
      maxPid: '_MAX_PID',
      maxTokens: '_MAX_TOKENS',
      maxModelLength: '_MAX_MODEL',
      maxFeatureLength: '_MAX_FEATURE',
      maxFeatures: '_MAX_FEATURES',
      maxTokenLength: '_MAX_TOKEN_LENGTH',
      maxLatencyMs: '_MAX_LATENCY_MS',
      maxUsageIdLength: '_MAX_USAGE_ID',
      maxReasonLength: null, // unregister's `reason`: not in the Python client's API
      // llm_usage's provider, error_type, request_id: not in the Python client's API yet
      maxProviderLength: null,
      maxErrorTypeLength: null,
      maxRequestIdLength: null,
      featureKeyPattern: '_FEATURE_KEY.pattern',
    };
    const limits: Record<string, unknown> = { ...protocol.LIMITS, featureKeyPattern: protocol.FEATURE_KEY_PATTERN };
    assert.deepEqual(
      Object.keys(PYTHON).sort(),
      Object.keys(limits).sort(),
      'each limit has its Python constant listed here (or null)',
    );
    const used = Object.entries(PYTHON).filter((entry): entry is [string, string] => entry[1] !== null);
    const fields = used.map(([key, constant]) => `${JSON.stringify(key)}: c.${constant}`).join(', ');
    const script = [
      'import json, kissbot_monitor_client.client as c',
      `print(json.dumps({${fields}, "version": c.PROTOCOL_VERSION}))`,
    ].join('\n');
    const r = spawnSync('python3', ['-c', script], {
      cwd: join(root, 'clients', 'python'),
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' },
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    const expected = Object.fromEntries(used.map(([key]) => [key, limits[key]]));
    assert.deepEqual(JSON.parse(r.stdout), { ...expected, version: protocol.PROTOCOL_VERSION });
    t.diagnostic(`${used.length} limits compared`);
  });
});
