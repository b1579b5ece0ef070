// Opt-in token auth (--auth-tokens FILE). File format, one entry per line:
//   channel:token     a token for one channel (several lines for one channel: each is accepted,
//                     so a token can be rotated with an overlap)
//   *:token           a fleet-wide token accepted for every channel
//   # comment / blank lines ignored
// Tokens are compared in constant time (over SHA-256 digests, so lengths do not leak either) and
// are never logged.
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { AuthFileError } from '../errors.js';

const digest = (token: string) => createHash('sha256').update(token).digest();

export class TokenAuth {
  readonly path: string;
  #byChannel = new Map<string, Buffer[]>();
  #fleet: Buffer[] = [];

  constructor(path: string) {
    this.path = path;
    this.reload();
  }

  /** Re-reads the file; on error keeps the tokens it had and throws. Returns the number of entries. */
  reload(): number {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      throw new AuthFileError(`cannot read auth tokens file ${this.path}: ${(err as Error).message}`);
    }
    const byChannel = new Map<string, Buffer[]>();
    const fleet: Buffer[] = [];
    text.split('\n').forEach((raw, index) => {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) return;
      const colon = line.indexOf(':');
      const channel = line.slice(0, colon);
      const token = line.slice(colon + 1);
      if (colon <= 0 || token.length === 0 || !(channel === '*' || /^[A-Za-z0-9_]{1,64}$/.test(channel))) {
        throw new AuthFileError(`${this.path} line ${index + 1}: expected "channel:token" or "*:token"`);
      }
      // A second line for a channel adds a token: silently dropping the first would lock out
      // every bot still using it in the middle of a rotation.
      if (channel === '*') fleet.push(digest(token));
      else byChannel.set(channel, [...(byChannel.get(channel) ?? []), digest(token)]);
    });
    this.#byChannel = byChannel;
    this.#fleet = fleet;
    let entries = fleet.length;
    for (const tokens of byChannel.values()) entries += tokens.length;
    return entries;
  }

  check(channel: string, token: string | undefined): boolean {
    if (token === undefined) return false;
    const given = digest(token);
    // Every candidate is compared, without stopping at a match: the time depends on how many
    // tokens the channel has, never on how much of one matched.
    let ok = false;
    for (const own of this.#byChannel.get(channel) ?? []) ok = timingSafeEqual(own, given) || ok;
    for (const fleetToken of this.#fleet) ok = timingSafeEqual(fleetToken, given) || ok;
    return ok;
  }
}
