// LLM prices in USD per 1M tokens. Built-in table from the product design; a config file can
// override or add models (see docs/OPERATIONS.md).
export interface ModelPrice {
  input: number;
  output: number;
}

export type PriceTable = Record<string, ModelPrice>;

export const BUILTIN_PRICES: PriceTable = {
  'gpt-4': { input: 30, output: 60 },
  'gpt-4-turbo': { input: 10, output: 30 },
  'gpt-4.1-mini': { input: 0.15, output: 0.6 },
  'gpt-4o': { input: 2.5, output: 10 },
  'gpt-4o-mini': { input: 0.15, output: 0.6 },
  'gpt-3.5-turbo': { input: 0.5, output: 1.5 },
  'mistral-7b-instruct': { input: 0, output: 0 },
};

/** Price for a model no table entry matches. */
const UNKNOWN_MODEL_PRICE: ModelPrice = { input: 1, output: 2 };

/**
 * The price for `model`: an exact entry, else the longest entry that is a dated/variant prefix of
 * it (`gpt-4o-2024-08-06` → `gpt-4o`), else the unknown-model price. Results are memoised per
 * table because the writer asks once per row.
 */
export function priceLookup(table: PriceTable): (model: string) => ModelPrice {
  const keys = Object.keys(table).sort((a, b) => b.length - a.length);
  const memo = new Map<string, ModelPrice>();
  return (model) => {
    let price = memo.get(model);
    if (price === undefined) {
      const key = Object.hasOwn(table, model) ? model : keys.find((k) => model.startsWith(`${k}-`));
      price = key === undefined ? UNKNOWN_MODEL_PRICE : table[key];
      if (memo.size < 10_000) memo.set(model, price);
    }
    return price;
  };
}

export function costUsd(price: ModelPrice, tokensIn: number, tokensOut: number): number {
  return (tokensIn * price.input + tokensOut * price.output) / 1_000_000;
}

/** Validates a user-supplied price table; throws TypeError naming the bad entry. */
export function parsePriceTable(value: unknown, source: string): PriceTable {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new TypeError(`${source}: prices must be an object of { "model": { "input": n, "output": n } }`);
  }
  const table: PriceTable = {};
  for (const [model, entry] of Object.entries(value)) {
    const { input, output } = (entry ?? {}) as Partial<ModelPrice>;
    if (typeof input !== 'number' || typeof output !== 'number' || !(input >= 0) || !(output >= 0)) {
      throw new TypeError(`${source}: prices.${model} must be { "input": number >= 0, "output": number >= 0 } (USD per 1M tokens)`);
    }
    table[model] = { input, output };
  }
  return table;
}
