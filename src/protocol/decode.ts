// Line → message. Runs on the main thread for every line, so it stays allocation-light:
// one toString, one JSON.parse, one compiled schema check.
import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { MESSAGE_SCHEMAS, type BotMessage, type MessageType } from './messages.js';

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

export function decodeLine(line: Buffer, maxDepth: number): DecodeResult {
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
