// Line → message. Runs on the main thread for every line, so it stays allocation-light:
// one toString, one JSON.parse, one compiled schema check — or, for the commonest line (a compact
// heartbeat), one pass over its bytes (decodeHeartbeatFast).
import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { LIMITS, MESSAGE_SCHEMAS, type BotMessage, type HeartbeatMessage, type MessageType } from './messages.js';

export type RejectReason =
  | 'invalid_utf8'
  | 'invalid_json'
  | 'too_deep'
  | 'not_an_object'
  | 'unknown_type'
  | 'invalid_fields'
  | 'invalid_token_parts';

export const REJECT_REASONS: readonly RejectReason[] = [
  'invalid_utf8',
  'invalid_json',
  'too_deep',
  'not_an_object',
  'unknown_type',
  'invalid_fields',
  'invalid_token_parts',
];

export type DecodeResult = { ok: true; message: BotMessage } | { ok: false; reason: RejectReason; detail: string };

const checkers: Record<MessageType, TypeCheck<TSchema>> = {
  register: TypeCompiler.Compile(MESSAGE_SCHEMAS.register),
  heartbeat: TypeCompiler.Compile(MESSAGE_SCHEMAS.heartbeat),
  unregister: TypeCompiler.Compile(MESSAGE_SCHEMAS.unregister),
  llm_usage: TypeCompiler.Compile(MESSAGE_SCHEMAS.llm_usage),
};

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Deepest `{`/`[` nesting outside strings; stops counting once past `limit`. */
export function jsonDepthExceeds(line: Buffer, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped byte
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > limit) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

/**
 * V8's JSON.parse messages may quote the line itself (`Unexpected token 'x', "…" is not valid
 * JSON`), and a broken line can carry an auth token: keep only the position, never the text.
 */
function jsonErrorDetail(err: unknown): string {
  const message = err instanceof Error ? err.message : '';
  const position = / at position (\d+)/.exec(message)?.[1];
  if (position !== undefined) return `not valid JSON at position ${position}`;
  return message.startsWith('Unexpected end of JSON input')
    ? 'not valid JSON: unexpected end of input'
    : 'not valid JSON';
}

// Bytes the heartbeat fast path compares with.
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const HEARTBEAT = Buffer.from('heartbeat');
/** The keys a heartbeat may carry, by their bytes; a bit each, so a repeated key is seen. */
const HEARTBEAT_KEYS = ['type', 'channel', 'pid', 'v', 'ts', 'token'].map((key, i) => ({
  key,
  bytes: Buffer.from(key),
  bit: 1 << i,
}));
const REQUIRED_KEYS = 0b111; // type, channel, pid
const MAX_TS_DIGITS = 20; // each side of the point: a plain decimal, always finite

function isChannelByte(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f;
}

/** `bytes` at `line[start, end)`, compared in JS: Buffer#compare is a native call, dearer for a few bytes. */
function bytesAt(line: Buffer, start: number, end: number, bytes: Buffer): boolean {
  if (end - start !== bytes.length) return false;
  for (let i = 0; i < bytes.length; i++) if (line[start + i] !== bytes[i]) return false;
  return true;
}

function heartbeatKey(line: Buffer, start: number, end: number): (typeof HEARTBEAT_KEYS)[number] | undefined {
  for (const k of HEARTBEAT_KEYS) if (bytesAt(line, start, end, k.bytes)) return k;
  return undefined;
}

/** End of the digits starting at `i` (`i` itself when none). */
function digitsEnd(line: Buffer, i: number): number {
  while (i < line.length && line[i] >= 0x30 && line[i] <= 0x39) i++;
  return i;
}

/** An integer without sign, leading zero, point or exponent, within [1, max], ending at `end`; else -1. */
function plainInteger(line: Buffer, start: number, end: number, max: number): number {
  if (end === start || end - start > 10 || line[start] === 0x30) return -1;
  let n = 0;
  for (let i = start; i < end; i++) n = n * 10 + (line[i] - 0x30);
  return n <= max ? n : -1;
}

/** End of `0` or `[1-9][0-9]*`, with an optional `.[0-9]+`, starting at `start`; -1 if it is not one. */
function plainDecimalEnd(line: Buffer, start: number): number {
  let end = digitsEnd(line, start);
  if (end === start || end - start > MAX_TS_DIGITS || (line[start] === 0x30 && end - start > 1)) return -1;
  if (line[end] === 0x2e) {
    const fractionEnd = digitsEnd(line, end + 1);
    if (fractionEnd === end + 1 || fractionEnd - end - 1 > MAX_TS_DIGITS) return -1;
    end = fractionEnd;
  }
  return end;
}

const POWERS_OF_TEN = Array.from({ length: 23 }, (_, k) => 10 ** k); // exact up to 1e22

/**
 * The number a plain decimal spells, rounded as JSON.parse rounds it. Its digits as one integer M
 * and its fraction's length k: while M < 2^53 and k ≤ 22 both are exact doubles, and one IEEE
 * division M / 10^k is correctly rounded (Clinger's fast path), as JSON.parse's result is; larger
 * ones go through Number(), which rounds the same way.
 */
function decimalValue(line: Buffer, start: number, end: number): number {
  let mantissa = 0;
  let fraction = -1;
  for (let i = start; i < end; i++) {
    const c = line[i];
    if (c === 0x2e) {
      fraction = 0;
      continue;
    }
    if (mantissa > (Number.MAX_SAFE_INTEGER - 9) / 10) return Number(line.toString('latin1', start, end));
    mantissa = mantissa * 10 + (c - 0x30);
    if (fraction >= 0) fraction++;
  }
  return fraction > 0 ? mantissa / POWERS_OF_TEN[fraction] : mantissa;
}

/**
 * A heartbeat the full path would accept, decoded from its bytes without JSON.parse or the schema
 * check; null for anything else, which then takes the full path (so rejections and their reasons
 * are the full path's). It takes only a compact, flat object of the heartbeat's own keys, each once,
 * in any order, with values the schema accepts written plainly: ASCII strings without escapes,
 * integers without sign, exponent or leading zero, `ts` as a plain decimal. What every client
 * sends (src/loadtest, clients/*) is of that form. A property test holds it to the full path
 * (test/decode-fast-path.test.ts).
 */
export function decodeHeartbeatFast(line: Buffer): HeartbeatMessage | null {
  const n = line.length;
  if (n < 40 || line[0] !== 0x7b || line[n - 1] !== 0x7d) return null;
  let channel: string | undefined;
  let pid = -1;
  let version = -1;
  let ts = -1;
  let token: string | undefined;
  let seen = 0;
  let i = 1;
  for (;;) {
    if (line[i] !== QUOTE) return null;
    let keyEnd = i + 1;
    while (keyEnd < n && line[keyEnd] !== QUOTE) keyEnd++;
    const known = heartbeatKey(line, i + 1, keyEnd);
    if (!known || seen & known.bit || line[keyEnd + 1] !== 0x3a) return null;
    seen |= known.bit;
    const start = keyEnd + 2;
    let end: number;
    switch (known.key) {
      case 'type':
      case 'channel':
      case 'token': {
        if (line[start] !== QUOTE) return null;
        end = start + 1;
        while (end < n && line[end] !== QUOTE) {
          const c = line[end];
          if (known.key === 'channel' ? !isChannelByte(c) : c < 0x20 || c > 0x7e || c === BACKSLASH) return null;
          end++;
        }
        const length = end - start - 1;
        if (known.key === 'type') {
          if (!bytesAt(line, start + 1, end, HEARTBEAT)) return null;
        } else if (known.key === 'channel') {
          if (length < 1 || length > 64) return null;
          channel = line.toString('latin1', start + 1, end);
        } else {
          if (length > LIMITS.maxTokenLength) return null;
          token = line.toString('latin1', start + 1, end);
        }
        end++; // past the closing quote
        break;
      }
      case 'pid':
        end = digitsEnd(line, start);
        if ((pid = plainInteger(line, start, end, LIMITS.maxPid)) < 0) return null;
        break;
      case 'v':
        end = digitsEnd(line, start);
        if ((version = plainInteger(line, start, end, 1000)) < 0) return null;
        break;
      default:
        end = plainDecimalEnd(line, start);
        if (end < 0) return null;
        ts = decimalValue(line, start, end);
    }
    if (line[end] === 0x2c) {
      i = end + 1;
      continue;
    }
    if (end !== n - 1 || (seen & REQUIRED_KEYS) !== REQUIRED_KEYS) return null; // the brace must end the line
    const message: HeartbeatMessage = { type: 'heartbeat', channel: channel!, pid };
    if (version >= 0) message.v = version;
    if (ts >= 0) message.ts = ts;
    if (token !== undefined) message.token = token;
    return message;
  }
}

export function decodeLine(line: Buffer, maxDepth: number): DecodeResult {
  // A flat object is one deep: a limit below that rejects it on the full path.
  const heartbeat = maxDepth >= 1 ? decodeHeartbeatFast(line) : null;
  return heartbeat ? { ok: true, message: heartbeat } : decodeLineFully(line, maxDepth);
}

/** The full path: UTF-8, depth, JSON.parse, the message's compiled schema, the token parts. */
export function decodeLineFully(line: Buffer, maxDepth: number): DecodeResult {
  let text = line.toString('utf8');
  // toString replaces bad bytes with U+FFFD; only then pay for the strict decoder to tell a
  // real U+FFFD (valid) from a broken sequence (rejected).
  if (text.includes('\uFFFD')) {
    try {
      text = strictUtf8.decode(line);
    } catch {
      return { ok: false, reason: 'invalid_utf8', detail: 'line is not valid UTF-8' };
    }
  }
  // A line of n bytes nests at most n deep (unclosed brackets count too), so short lines need no scan.
  if (line.length > maxDepth && jsonDepthExceeds(line, maxDepth)) {
    return { ok: false, reason: 'too_deep', detail: `JSON nesting deeper than ${maxDepth}` };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { ok: false, reason: 'invalid_json', detail: jsonErrorDetail(err) };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { ok: false, reason: 'not_an_object', detail: 'a message must be a JSON object' };
  }
  const type = (value as { type?: unknown }).type;
  const checker = typeof type === 'string' && Object.hasOwn(checkers, type) ? checkers[type as MessageType] : undefined;
  if (!checker) {
    return { ok: false, reason: 'unknown_type', detail: `unknown message type ${JSON.stringify(type)?.slice(0, 40)}` };
  }
  if (!checker.Check(value)) {
    const first = checker.Errors(value).First();
    return {
      ok: false,
      reason: 'invalid_fields',
      detail: `${type as MessageType}: ${first ? `${first.path || '/'} ${first.message}` : 'invalid'}`,
    };
  }
  const message = value as BotMessage;
  if (message.type === 'llm_usage') {
    // Parts of a total, so a part above it is a broken client, not a price question.
    if ((message.tokens_cached ?? 0) > message.tokens_in) {
      return {
        ok: false,
        reason: 'invalid_token_parts',
        detail: 'llm_usage: tokens_cached must be at most tokens_in (cached tokens are part of the input)',
      };
    }
    if ((message.tokens_reasoning ?? 0) > message.tokens_out) {
      return {
        ok: false,
        reason: 'invalid_token_parts',
        detail: 'llm_usage: tokens_reasoning must be at most tokens_out (reasoning tokens are part of the output)',
      };
    }
  }
  return { ok: true, message };
}
