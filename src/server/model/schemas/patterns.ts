/**
 * The patterns a schema names its environments and keys by: globs in which `*` stands for any run
 * of characters (`/` included) and every other character for itself — `prod/*`, `*`, `db.*`,
 * `db/pool`. Matched without regular expressions: each literal part is found in turn, so a match
 * costs at most the name's length times the pattern's parts, whatever either holds.
 */

/** Bytes of one pattern, at most. */
export const MAX_PATTERN_BYTES = 256;
/** `*` in one pattern, at most. */
export const MAX_PATTERN_STARS = 8;

const ENV_PATTERN = /^[A-Za-z0-9._\-/*]+$/;
// Shown to people, like keys: none of the characters a terminal acts on.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\ufffd\uffff]/;

/** Why a pattern is refused, or undefined when it is a valid pattern of environments (`env`) or keys. */
export function patternFault(pattern: string, of: 'env' | 'key'): string | undefined {
  if (pattern.length === 0) return 'it is empty';
  if (Buffer.byteLength(pattern) > MAX_PATTERN_BYTES) return `it is longer than ${MAX_PATTERN_BYTES} bytes`;
  if ([...pattern].filter((c) => c === '*').length > MAX_PATTERN_STARS) return `it holds more than ${MAX_PATTERN_STARS} '*'`;
  if (of === 'env' && !ENV_PATTERN.test(pattern)) return "use letters, digits, '.', '_', '-', '/' and '*'";
  if (of === 'key' && CONTROL.test(pattern)) return 'it holds a control character';
  return undefined;
}

/** A pattern as a test of names. */
export type Matcher = (name: string) => boolean;

/** The test of `pattern` (checked by patternFault first). */
export function matcher(pattern: string): Matcher {
  if (!pattern.includes('*')) return (name) => name === pattern;
  if (pattern === '*') return () => true;
  const parts = pattern.split('*');
  const first = parts[0];
  const last = parts[parts.length - 1];
  const middle = parts.slice(1, -1).filter((p) => p.length > 0);
  const least = first.length + last.length + middle.reduce((n, p) => n + p.length, 0);
  return (name) => {
    if (name.length < least || !name.startsWith(first) || !name.endsWith(last)) return false;
    // Each middle part at its leftmost place after the one before: if any placement fits, this one does.
    let at = first.length;
    const end = name.length - last.length;
    for (const part of middle) {
      const found = name.indexOf(part, at);
      if (found < 0 || found + part.length > end) return false;
      at = found + part.length;
    }
    return true;
  };
}
