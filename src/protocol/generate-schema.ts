// Everything generated from the TypeBox schemas in messages.ts, so that every client checks itself
// against the one definition:
// - docs/protocol.schema.json: the protocol as JSON Schema, for clients in other languages;
// - the same file as package data of the Python client, which reads its limits from it;
// - clients/typescript/src/protocol.ts: the types, limits and defaults the zero-dependency TypeScript
//   client package needs, as plain TypeScript (no TypeBox at run time).
// test/protocol-drift.test.ts fails when a checked-in copy differs from what this module generates.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  DEFAULT_SOCKET,
  FEATURE_KEY_PATTERN,
  LIMITS,
  MESSAGE_SCHEMAS,
  PROTOCOL_VERSION,
  SOCKET_ENV,
  TOKEN_ENV,
} from './messages.js';

const repo = (path: string) => fileURLToPath(new URL(`../../../${path}`, import.meta.url));

export const SCHEMA_FILE = repo('docs/protocol.schema.json');
export const PYTHON_SCHEMA_FILE = repo('clients/python/kissbot_monitor_client/protocol.schema.json');
export const TS_CLIENT_PROTOCOL_FILE = repo('clients/typescript/src/protocol.ts');

/** Schema as plain JSON: JSON.stringify drops TypeBox's symbol-keyed metadata. */
type JsonSchema = {
  type?: string;
  const?: unknown;
  description?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  patternProperties?: Record<string, JsonSchema>;
  [keyword: string]: unknown;
};

const messageTypes = Object.keys(MESSAGE_SCHEMAS) as (keyof typeof MESSAGE_SCHEMAS)[];
const plain = (schema: unknown) => JSON.parse(JSON.stringify(schema)) as JsonSchema;

/** The protocol as JSON Schema draft 2020-12: one line is exactly one of the message types. */
export function protocolJsonSchema(): Record<string, unknown> {
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: `urn:kissbot-monitor:protocol:v${PROTOCOL_VERSION}`,
    title: `kissbot-monitor protocol v${PROTOCOL_VERSION}: one newline-terminated JSON line a bot sends`,
    description:
      'Generated from src/protocol/messages.ts by src/protocol/generate-schema.ts (npm run build); do not edit. ' +
      'The member is chosen by "type". minLength/maxLength: the monitor counts UTF-16 code units (JavaScript .length), ' +
      'which for characters outside the BMP is stricter than JSON Schema counting code points; count UTF-16 units in a client.',
    'x-protocol-version': PROTOCOL_VERSION,
    'x-limits': { ...LIMITS, featureKeyPattern: FEATURE_KEY_PATTERN },
    'x-defaults': { socketPath: DEFAULT_SOCKET, socketEnv: SOCKET_ENV, tokenEnv: TOKEN_ENV },
    oneOf: messageTypes.map((type) => ({ $ref: `#/$defs/${type}` })),
    $defs: Object.fromEntries(messageTypes.map((type) => [type, plain(MESSAGE_SCHEMAS[type])])),
  };
}

export function protocolSchemaText(): string {
  return JSON.stringify(protocolJsonSchema(), null, 2) + '\n';
}

/** The TypeScript type of a schema; only the kinds the protocol uses, anything else is an error. */
function tsType(schema: JsonSchema, indent: string): string {
  if (schema.const !== undefined) return JSON.stringify(schema.const).replaceAll('"', "'");
  if (Array.isArray(schema.anyOf)) return (schema.anyOf as JsonSchema[]).map((s) => tsType(s, indent)).join(' | ');
  switch (schema.type) {
    case 'string':
      return 'string';
    case 'integer':
    case 'number':
      return 'number';
    case 'boolean':
      return 'boolean';
    case 'object': {
      if (schema.patternProperties) {
        const values = Object.values(schema.patternProperties).map((s) => tsType(s, indent));
        return `Record<string, ${[...new Set(values)].join(' | ')}>`;
      }
      const required = new Set(schema.required ?? []);
      const inner = `${indent}  `;
      const fields = Object.entries(schema.properties ?? {}).map(([name, field]) => {
        const doc = field.description ? `${inner}/** ${field.description} */\n` : '';
        return `${doc}${inner}${name}${required.has(name) ? '' : '?'}: ${tsType(field, inner)};\n`;
      });
      return `{\n${fields.join('')}${indent}}`;
    }
    default:
      throw new Error(`generate-schema: no TypeScript type for the schema ${JSON.stringify(schema)}`);
  }
}

/** llm_usage → LlmUsageMessage, the name messages.ts gives its Static type. */
const typeName = (type: string) =>
  `${type
    .split('_')
    .map((w) => w[0].toUpperCase() + w.slice(1))
    .join('')}Message`;

/** clients/typescript/src/protocol.ts: what the TypeScript client needs of src/protocol, without TypeBox. */
export function clientProtocolText(): string {
  const lit = (value: unknown) => JSON.stringify(value).replaceAll("'", "\\'").replace(/^"|"$/g, "'");
  const limits = Object.entries(LIMITS).map(
    ([key, value]) => `  ${key}: ${typeof value === 'string' ? lit(value) : value},\n`,
  );
  const messages = messageTypes.map(
    (type) => `export interface ${typeName(type)} ${tsType(plain(MESSAGE_SCHEMAS[type]), '')}\n`,
  );
  return [
    '// Generated from src/protocol/messages.ts by src/protocol/generate-schema.ts (npm run build); do not edit.',
    "// The protocol v1 types, limits and defaults the client needs, without the monitor's TypeBox schemas;",
    '// test/protocol-drift.test.ts fails when this file or these types drift from src/protocol.',
    '',
    `export const PROTOCOL_VERSION = ${PROTOCOL_VERSION};`,
    '',
    '/** Limits a message must respect; the monitor refuses a line that breaks one. */',
    `export const LIMITS = {\n${limits.join('')}} as const;`,
    '',
    '/** A feature name: at most LIMITS.maxFeatureLength code points. */',
    `export const FEATURE_KEY_PATTERN = ${lit(FEATURE_KEY_PATTERN)};`,
    '',
    `export const DEFAULT_SOCKET = ${lit(DEFAULT_SOCKET)};`,
    `export const SOCKET_ENV = ${lit(SOCKET_ENV)};`,
    `export const TOKEN_ENV = ${lit(TOKEN_ENV)};`,
    '',
    ...messages,
    `export type Features = NonNullable<RegisterMessage['features']>;`,
    `export type BotMessage = ${messageTypes.map(typeName).join(' | ')};`,
    `export type MessageType = BotMessage['type'];`,
    '',
  ].join('\n');
}

/** Each generated file and what it must contain. */
export function generatedFiles(): { file: string; text: string }[] {
  const schema = protocolSchemaText();
  return [
    { file: SCHEMA_FILE, text: schema },
    { file: PYTHON_SCHEMA_FILE, text: schema },
    { file: TS_CLIENT_PROTOCOL_FILE, text: clientProtocolText() },
  ];
}

// `node generate-schema.js` writes the files (npm run build); `--check` only compares (npm's
// prepare, so a clean clone in CI tests the checked-in copies instead of overwriting them).
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const check = process.argv.includes('--check');
  let stale = 0;
  for (const { file, text } of generatedFiles()) {
    if (!check) writeFileSync(file, text);
    else if (!existsSync(file) || readFileSync(file, 'utf8') !== text) {
      console.error(`${file} differs from what src/protocol generates: run \`npm run build\` and commit it`);
      stale++;
    }
  }
  if (stale > 0) process.exit(1);
}
