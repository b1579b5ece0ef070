// LLM prices: USD per 1M tokens, per model (exact name or glob), per token type, each price with
// the date it took effect. The writer prices every llm_usage row at ingest with the price in force
// at the row's time; a model no entry matches (or a time before its first price) has no price:
// cost NULL, counted, never a guessed number. docs/LLM_USAGE.md ("Pricing") is the user's view.
//
//   config `prices`: { "gpt-4o*": [{ "from": "2024-05-13", "input": 5, "output": 15 },
//                                  { "from": "2024-08-06", "input": 2.5, "cachedInput": 1.25, "output": 10 }],
//                      "my-model": { "input": 1, "output": 2 } }      (one object: in force always)
//
// Which key prices a model (most specific wins): the exact key; else of the keys that match, the
// one with the longest literal prefix (then the most literal characters, then the key's order). A
// plain key `k` matches itself and its dated snapshots only (`k-2024-08-06`, `k-20240806`,
// `k@20240806`): `gpt-4o-2024-08-06` → `gpt-4o`, but `o1-pro` is not `o1` and stays unpriced.
// Globs are picomatch globs (src/glob.ts, the same engine as silences and budgets).

import { globMatcher, isGlob } from '../glob.js';

/** One price as written in the config (USD per 1M tokens). */
export interface PriceInput {
  /** YYYY-MM-DD (UTC midnight) or an ISO time; absent: in force since always. */
  from?: string;
  input: number;
  /** Cached input tokens; default `input`. */
  cachedInput?: number;
  output: number;
  /** Reasoning tokens; default `output`. */
  reasoning?: number;
}

export type PriceConfig = Record<string, PriceInput | PriceInput[]>;

/** A resolved price: every token type filled in, `fromMs` 0 for "always". */
export interface Price {
  fromMs: number;
  input: number;
  cachedInput: number;
  output: number;
  reasoning: number;
}

export interface PricedTokens {
  tokens_in: number;
  tokens_out: number;
  tokens_cached?: number | null;
  tokens_reasoning?: number | null;
}

// Shipped defaults. Sources (list prices, standard tier, USD per 1M tokens; the `from` of a price is
// the date its vendor put it in force, where known; compiled 2025-10 from these pages):
//   OpenAI     https://openai.com/api/pricing/  (https://platform.openai.com/docs/pricing)
//   Anthropic  https://docs.anthropic.com/en/docs/about-claude/pricing  (cache reads: 0.1 × input)
//   Google     https://ai.google.dev/gemini-api/docs/pricing  (prompts ≤ 200k tokens)
//   Mistral    https://mistral.ai/pricing#api-pricing
// mistral-7b-instruct is 0/0: the fleet runs it on its own hardware (DESIGN.md).
// Prices change: override or extend them in the config file (`prices`), then re-price stored rows
// with `kissmon usage recompute --since 30d`.
const OPUS_4: PriceInput = { from: '2025-05-22', input: 15, cachedInput: 1.5, output: 75 };
const OPUS_4_1: PriceInput = { from: '2025-08-05', input: 15, cachedInput: 1.5, output: 75 };
const SONNET_4: PriceInput = { from: '2025-05-22', input: 3, cachedInput: 0.3, output: 15 };
const SONNET_4_5: PriceInput = { from: '2025-09-29', input: 3, cachedInput: 0.3, output: 15 };
const SONNET_3_7: PriceInput = { from: '2025-02-24', input: 3, cachedInput: 0.3, output: 15 };
const SONNET_3_5: PriceInput = { from: '2024-06-20', input: 3, cachedInput: 0.3, output: 15 };
const HAIKU_3_5: PriceInput = { from: '2024-11-04', input: 0.8, cachedInput: 0.08, output: 4 };

export const BUILTIN_PRICES: PriceConfig = {
  // OpenAI
  'gpt-5': { from: '2025-08-07', input: 1.25, cachedInput: 0.125, output: 10 },
  'gpt-5-mini': { from: '2025-08-07', input: 0.25, cachedInput: 0.025, output: 2 },
  'gpt-5-nano': { from: '2025-08-07', input: 0.05, cachedInput: 0.005, output: 0.4 },
  'gpt-4.1': { from: '2025-04-14', input: 2, cachedInput: 0.5, output: 8 },
  'gpt-4.1-mini': { from: '2025-04-14', input: 0.4, cachedInput: 0.1, output: 1.6 },
  'gpt-4.1-nano': { from: '2025-04-14', input: 0.1, cachedInput: 0.025, output: 0.4 },
  'gpt-4o': [
    { from: '2024-05-13', input: 5, output: 15 },
    { from: '2024-08-06', input: 2.5, cachedInput: 1.25, output: 10 },
  ],
  'gpt-4o-mini': { from: '2024-07-18', input: 0.15, cachedInput: 0.075, output: 0.6 },
  o1: { from: '2024-12-17', input: 15, cachedInput: 7.5, output: 60 },
  'o1-mini': { from: '2024-09-12', input: 1.1, cachedInput: 0.55, output: 4.4 },
  o3: [
    { from: '2025-04-16', input: 10, cachedInput: 2.5, output: 40 },
    { from: '2025-06-10', input: 2, cachedInput: 0.5, output: 8 },
  ],
  'o3-mini': { from: '2025-01-31', input: 1.1, cachedInput: 0.55, output: 4.4 },
  'o4-mini': { from: '2025-04-16', input: 1.1, cachedInput: 0.275, output: 4.4 },
  'gpt-4-turbo': { input: 10, output: 30 },
  'gpt-4': { input: 30, output: 60 },
  'gpt-3.5-turbo': { input: 0.5, output: 1.5 },
  // Anthropic (aliases such as `claude-opus-4-0` are keys of their own; claude-opus-4-5 and later
  // are not in this table: unpriced until the config names them)
  'claude-opus-4': OPUS_4,
  'claude-opus-4-0': OPUS_4,
  'claude-opus-4-1': OPUS_4_1,
  'claude-sonnet-4': SONNET_4,
  'claude-sonnet-4-0': SONNET_4,
  'claude-sonnet-4-5': SONNET_4_5,
  'claude-haiku-4-5': { from: '2025-10-15', input: 1, cachedInput: 0.1, output: 5 },
  'claude-3-7-sonnet': SONNET_3_7,
  'claude-3-7-sonnet-latest': SONNET_3_7,
  'claude-3-5-sonnet': SONNET_3_5,
  'claude-3-5-sonnet-latest': SONNET_3_5,
  'claude-3-5-haiku': HAIKU_3_5,
  'claude-3-5-haiku-latest': HAIKU_3_5,
  'claude-3-haiku': { from: '2024-03-13', input: 0.25, cachedInput: 0.03, output: 1.25 },
  // Google
  'gemini-2.5-pro': { from: '2025-06-17', input: 1.25, cachedInput: 0.31, output: 10 },
  'gemini-2.5-flash': { from: '2025-06-17', input: 0.3, cachedInput: 0.075, output: 2.5 },
  'gemini-2.5-flash-lite': { from: '2025-07-22', input: 0.1, cachedInput: 0.025, output: 0.4 },
  'gemini-2.0-flash': { from: '2025-02-05', input: 0.1, cachedInput: 0.025, output: 0.4 },
  'gemini-2.0-flash-lite': { from: '2025-02-25', input: 0.075, output: 0.3 },
  // Mistral (the versioned names; `-latest` aliases move to new models with new prices)
  'mistral-large-2411': { from: '2024-11-18', input: 2, output: 6 },
  'mistral-medium-2505': { from: '2025-05-07', input: 0.4, output: 2 },
  'mistral-small-2503': { from: '2025-03-17', input: 0.1, output: 0.3 },
  'codestral-2501': { from: '2025-01-13', input: 0.3, output: 0.9 },
  'mistral-7b-instruct': { input: 0, output: 0 },
};

const DATE = /^\d{4}-\d{2}-\d{2}(T[0-9:.]+(Z|[+-]\d\d:\d\d))?$/;

/** Parses a `from`; NaN when it is not a date. */
function fromMs(from: string | undefined): number {
  if (from === undefined) return 0;
  return DATE.test(from) ? Date.parse(from.length === 10 ? `${from}T00:00:00Z` : from) : Number.NaN;
}

const isPrice = (n: unknown): n is number => typeof n === 'number' && Number.isFinite(n) && n >= 0;

/**
 * Validates a `prices` setting (the config file's part): throws TypeError naming the entry and what
 * it must be. Returns it as given, each list sorted by `from`.
 */
export function parsePriceConfig(value: unknown, source = 'config'): PriceConfig {
  const shape =
    '{ "input": n, "output": n, "cachedInput"?: n, "reasoning"?: n, "from"?: "YYYY-MM-DD" } (USD per 1M tokens)';
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new TypeError(
      `${source}.prices must be an object mapping a model name or glob to ${shape} or an array of them`,
    );
  }
  const table: PriceConfig = {};
  for (const [model, entry] of Object.entries(value)) {
    const name = `${source}.prices[${JSON.stringify(model)}]`;
    if (model.length === 0) throw new TypeError(`${source}.prices: a model name must not be empty`);
    const list = Array.isArray(entry) ? entry : [entry];
    if (list.length === 0) throw new TypeError(`${name} must hold at least one price`);
    const seen = new Set<number>();
    const prices = list.map((p: unknown, i): PriceInput => {
      const at = Array.isArray(entry) ? `${name}[${i}]` : name;
      if (p === null || typeof p !== 'object' || Array.isArray(p)) throw new TypeError(`${at} must be ${shape}`);
      const { from, input, cachedInput, output, reasoning, ...rest } = p as Record<string, unknown>;
      const unknown = Object.keys(rest);
      if (unknown.length > 0)
        throw new TypeError(`${at}.${unknown[0]} is not a price field (input, cachedInput, output, reasoning, from)`);
      for (const [field, v] of [
        ['input', input],
        ['output', output],
      ] as const) {
        if (!isPrice(v)) throw new TypeError(`${at}.${field} must be a number >= 0 (USD per 1M tokens)`);
      }
      for (const [field, v] of [
        ['cachedInput', cachedInput],
        ['reasoning', reasoning],
      ] as const) {
        if (v !== undefined && !isPrice(v))
          throw new TypeError(`${at}.${field} must be a number >= 0 (USD per 1M tokens) or absent`);
      }
      if (from !== undefined && (typeof from !== 'string' || Number.isNaN(fromMs(from)))) {
        throw new TypeError(`${at}.from must be a date such as "2024-08-06" (UTC) or an ISO time`);
      }
      const ms = fromMs(from);
      if (seen.has(ms)) throw new TypeError(`${name} has two prices from the same date`);
      seen.add(ms);
      return p as PriceInput;
    });
    prices.sort((a, b) => fromMs(a.from) - fromMs(b.from));
    table[model] = Array.isArray(entry) ? prices : prices[0];
  }
  return table;
}

/** The built-in table with a config's entries over it (a key the config names replaces the built-in one). */
export function mergePrices(config: PriceConfig | undefined): PriceConfig {
  return { ...BUILTIN_PRICES, ...(config ? parsePriceConfig(config) : {}) };
}

/** USD for one call at `price`. Cached tokens are part of tokens_in, reasoning part of tokens_out. */
export function costUsd(price: Price, t: PricedTokens): number {
  const cached = t.tokens_cached ?? 0;
  const reasoning = t.tokens_reasoning ?? 0;
  return (
    ((t.tokens_in - cached) * price.input +
      cached * price.cachedInput +
      (t.tokens_out - reasoning) * price.output +
      reasoning * price.reasoning) /
    1_000_000
  );
}

interface Pattern {
  key: string;
  matches: (model: string) => boolean;
  literalPrefix: number;
  literals: number;
  prices: Price[];
}

/** What a plain key's dated snapshots append: `-2024-08-06`, `-20240806`, `@20240806` (Vertex AI). */
const SNAPSHOT = /^(-\d{4}-\d{2}-\d{2}|-\d{8}|@\d{8})$/;
/** Characters that can start glob syntax; the literal prefix of a glob ends at the first. */
const GLOB_SYNTAX = /[*?[\]{}()!+@|\\]/;

function pattern(key: string, prices: Price[]): Pattern {
  if (!isGlob(key)) {
    const matches = (model: string) => model.startsWith(key) && SNAPSHOT.test(model.slice(key.length));
    // A snapshot of `k` is more specific than any glob sharing the prefix `k`.
    return { key, matches, literalPrefix: key.length + 1, literals: key.length + 1, prices };
  }
  const literalPrefix = key.search(GLOB_SYNTAX);
  const literals = key.split('').filter((c) => !GLOB_SYNTAX.test(c)).length;
  return { key, matches: globMatcher(key), literalPrefix, literals, prices };
}

function resolvePrices(entry: PriceInput | PriceInput[]): Price[] {
  return (Array.isArray(entry) ? entry : [entry])
    .map((p) => ({
      fromMs: fromMs(p.from),
      input: p.input,
      cachedInput: p.cachedInput ?? p.input,
      output: p.output,
      reasoning: p.reasoning ?? p.output,
    }))
    .sort((a, b) => a.fromMs - b.fromMs);
}

/** What `kissmon prices` lists: one line per key and dated price. */
export interface PriceListing {
  model: string;
  from: string | null;
  /** True for the price in force now. */
  current: boolean;
  input: number;
  cached_input: number;
  output: number;
  reasoning: number;
  source: 'built-in' | 'config';
}

/** A resolved, memoised price table; the writer asks it once per row. */
export class PriceTable {
  #exact = new Map<string, Price[]>();
  #patterns: Pattern[] = [];
  #memo = new Map<string, Price[] | null>();
  #config: PriceConfig;

  constructor(config: PriceConfig) {
    this.#config = config;
    for (const [key, entry] of Object.entries(config)) {
      const prices = resolvePrices(entry);
      if (!isGlob(key)) this.#exact.set(key, prices);
      this.#patterns.push(pattern(key, prices));
    }
    this.#patterns.sort(
      (a, b) => b.literalPrefix - a.literalPrefix || b.literals - a.literals || (a.key < b.key ? -1 : 1),
    );
  }

  /** The dated prices for `model` (most specific key), or null when none matches. */
  pricesFor(model: string): Price[] | null {
    let prices = this.#memo.get(model);
    if (prices === undefined) {
      prices = this.#exact.get(model) ?? this.#patterns.find((p) => p.matches(model))?.prices ?? null;
      if (this.#memo.size < 10_000) this.#memo.set(model, prices);
    }
    return prices;
  }

  /** The price in force for `model` at `atMs`, or null (unknown model, or before its first price). */
  priceAt(model: string, atMs: number): Price | null {
    const prices = this.pricesFor(model);
    if (prices === null) return null;
    for (let i = prices.length - 1; i >= 0; i--) if (prices[i].fromMs <= atMs) return prices[i];
    return null;
  }

  /** USD for one call, or null when it has no price. */
  cost(model: string, atMs: number, tokens: PricedTokens): number | null {
    const price = this.priceAt(model, atMs);
    return price === null ? null : costUsd(price, tokens);
  }

  /** Every key and dated price, the one in force at `nowMs` marked. */
  list(nowMs = Date.now()): PriceListing[] {
    const rows: PriceListing[] = [];
    for (const key of Object.keys(this.#config).sort()) {
      const prices = resolvePrices(this.#config[key]);
      let current = -1;
      prices.forEach((p, i) => {
        if (p.fromMs <= nowMs) current = i;
      });
      const builtin = BUILTIN_PRICES[key];
      const source =
        builtin !== undefined && JSON.stringify(builtin) === JSON.stringify(this.#config[key]) ? 'built-in' : 'config';
      prices.forEach((p, i) =>
        rows.push({
          model: key,
          from: p.fromMs === 0 ? null : new Date(p.fromMs).toISOString().slice(0, 10),
          current: i === current,
          input: p.input,
          cached_input: p.cachedInput,
          output: p.output,
          reasoning: p.reasoning,
          source,
        }),
      );
    }
    return rows;
  }
}
