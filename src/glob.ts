// The one glob engine: silences (`--match`), price keys and budget filters all match names with
// picomatch and these options, so a glob means the same everywhere. docs/ALERTS.md ("Globs") is the
// user's view: `*` any run except `/`, `?` one character, `[abc]`, `{a,b}`, `**` across `/`.
import picomatch from 'picomatch';

const OPTIONS = { dot: true, nocase: false } as const;

/** A compiled glob: does `value` match it (the whole of it)? */
export function globMatcher(glob: string): (value: string) => boolean {
  return picomatch(glob, OPTIONS);
}

/** True when `key` uses glob syntax (a plain key names one model). */
export const isGlob = (key: string): boolean => picomatch.scan(key).isGlob;
