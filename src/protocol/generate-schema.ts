// docs/protocol.schema.json, generated from the TypeBox schemas in messages.ts so that clients in
// other languages (clients/rust, clients/python) can check themselves against the one definition.
// test/protocol-schema.test.ts fails when the checked-in copy differs from what this module generates.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { LIMITS, MESSAGE_SCHEMAS, PROTOCOL_VERSION } from './messages.js';

export const SCHEMA_FILE = fileURLToPath(new URL('../../../docs/protocol.schema.json', import.meta.url));

/** The protocol as JSON Schema draft 2020-12: one line is exactly one of the message types. */
export function protocolJsonSchema(): Record<string, unknown> {
  const types = Object.keys(MESSAGE_SCHEMAS) as (keyof typeof MESSAGE_SCHEMAS)[];
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: `urn:kissbot-monitor:protocol:v${PROTOCOL_VERSION}`,
    title: `kissbot-monitor protocol v${PROTOCOL_VERSION}: one newline-terminated JSON line a bot sends`,
    description:
      'Generated from src/protocol/messages.ts by src/protocol/generate-schema.ts (npm run build); do not edit. ' +
      'The member is chosen by "type". minLength/maxLength: the monitor counts UTF-16 code units (JavaScript .length), ' +
      'which for characters outside the BMP is stricter than JSON Schema counting code points; count UTF-16 units in a client.',
    'x-protocol-version': PROTOCOL_VERSION,
    'x-limits': { ...LIMITS },
    oneOf: types.map((type) => ({ $ref: `#/$defs/${type}` })),
    // JSON.stringify drops TypeBox's symbol-keyed metadata, leaving plain JSON Schema.
    $defs: Object.fromEntries(types.map((type) => [type, JSON.parse(JSON.stringify(MESSAGE_SCHEMAS[type]))])),
  };
}

export function protocolSchemaText(): string {
  return JSON.stringify(protocolJsonSchema(), null, 2) + '\n';
}

// `node generate-schema.js` writes the file (npm run build); `--check` only compares (npm's
// prepare, so a clean clone in CI tests the checked-in copy instead of overwriting it).
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const text = protocolSchemaText();
  if (!process.argv.includes('--check')) {
    writeFileSync(SCHEMA_FILE, text);
  } else if (!existsSync(SCHEMA_FILE) || readFileSync(SCHEMA_FILE, 'utf8') !== text) {
    console.error(`${SCHEMA_FILE} differs from what src/protocol generates: run \`npm run build\` and commit it`);
    process.exit(1);
  }
}
