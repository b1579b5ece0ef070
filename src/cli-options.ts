// Option parsers shared by every kissmon command: a bad value is an InvalidArgumentError, which
// commander reports with the option's name and the CLI turns into exit code 2.
import { InvalidArgumentError } from 'commander';

export const integerOption = (name: string, min: number, max: number) => (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}`);
  return n;
};

/** Seconds, fractions allowed (`--stale-after 2`, `--sample-interval 0.5`). */
export const secondsOption = (name: string) => (value: string): number => {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive number of seconds (fractions allowed)`);
  return n;
};

export const fractionOption = (name: string) => (value: string): number => {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || n > 1) throw new InvalidArgumentError(`${name} must be a number from 0 to 1`);
  return n;
};
