// Message → line, for code in this repository that talks to the monitor without a client package
// (the load test, test fixtures): the typed message, JSON, one newline. The client packages build
// their lines themselves from the same (generated) types.
import type { BotMessage } from './messages.js';

export function encodeLine(message: BotMessage): string {
  return `${JSON.stringify(message)}\n`;
}

/**
 * The line of `message` with `ts` stamped at each call, for hot paths: the message is encoded once
 * here (its own `ts`, if any, is dropped) and each call only appends the number, so a load test
 * with thousands of bots pays no JSON.stringify per line.
 */
export function stampedLine(message: BotMessage): (ts: number) => string {
  const head = JSON.stringify({ ...message, ts: undefined }).slice(0, -1); // without the closing brace
  return (ts) => `${head},"ts":${ts}}\n`;
}
