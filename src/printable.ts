import { CONTROL_CHARACTERS } from './protocol/index.js';

const EVERY = new RegExp(CONTROL_CHARACTERS.source, 'g');
const NAMED: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * Text from a server or a store as it may be shown on a terminal: each
 * control character (protocol/text.ts) becomes an escape — `\n`, `\r`, `\t`,
 * else `\u001b` and the like — so what is shown is never acted on. With
 * `keepLines`, line feeds and tabs stay as they are (a value printed alone,
 * JSON printed with indentation). JSON text stays JSON of the same value:
 * other than its whitespace, such characters appear only inside its strings,
 * where `\uXXXX` means the same.
 */
export function printable(text: string, keepLines = false): string {
  if (!CONTROL_CHARACTERS.test(text)) return text;
  return text.replace(EVERY, (c) => {
    if (keepLines && (c === '\n' || c === '\t')) return c;
    return NAMED[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
}

/** A copy of `value` (an answer, a release) whose every string, object keys included, is printable(). */
export function printableDeep<T>(value: T): T {
  if (typeof value === 'string') return printable(value) as T;
  if (Array.isArray(value)) return value.map((v: unknown) => printableDeep(v)) as T;
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      Object.defineProperty(out, printable(k), { value: printableDeep(v), enumerable: true, writable: true, configurable: true });
    }
    return out as T;
  }
  return value;
}
