import { WireError } from './codes.js';
import { ProtocolError } from './errors.js';

/**
 * Checked conversion from decoded msgpack (unknown) into typed values. Every
 * checker throws ProtocolError(MALFORMED) naming the offending path, so a
 * malformed message never travels past the protocol folder.
 */
export type Check<T> = (value: unknown, path: string) => T;

/** Upper bound on the elements of any array in a message. */
export const MAX_ELEMENTS = 4_000_000;

export function fail(path: string, expected: string): never {
  throw new ProtocolError(WireError.MALFORMED, `${path}: expected ${expected}`);
}

export const str: Check<string> = (v, p) => (typeof v === 'string' ? v : fail(p, 'a string'));

export const bool: Check<boolean> = (v, p) => (typeof v === 'boolean' ? v : fail(p, 'a boolean'));

/** A non-negative safe integer (revisions, counts, ids, times). */
export const uint: Check<number> = (v, p) =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && !Object.is(v, -0) ? v : fail(p, 'a non-negative integer');

export function literal<const T extends string | number>(...allowed: T[]): Check<T> {
  return (v, p) => (allowed.includes(v as T) ? (v as T) : fail(p, `one of ${allowed.join(', ')}`));
}

export function nullable<T>(inner: Check<T>): Check<T | null> {
  return (v, p) => (v === null ? null : inner(v, p));
}

export function arrayOf<T>(inner: Check<T>, max: number = MAX_ELEMENTS): Check<T[]> {
  return (v, p) => {
    if (!Array.isArray(v)) return fail(p, 'an array');
    if (v.length > max) return fail(p, `at most ${max} elements`);
    const out = new Array<T>(v.length);
    for (let i = 0; i < v.length; i++) out[i] = inner(v[i], `${p}[${i}]`);
    return out;
  };
}

export function pair<A, B>(a: Check<A>, b: Check<B>): Check<[A, B]> {
  return (v, p) => {
    if (!Array.isArray(v) || v.length !== 2) return fail(p, 'a pair');
    return [a(v[0], `${p}[0]`), b(v[1], `${p}[1]`)];
  };
}

type Optional<T> = { optional: Check<T> };
/** Marks an object field as optional (absent or undefined). */
export function opt<T>(inner: Check<T>): Optional<T> {
  return { optional: inner };
}

type Shape = Record<string, Check<unknown> | Optional<unknown>>;
type Required<S extends Shape> = { [K in keyof S as S[K] extends Check<unknown> ? K : never]: S[K] extends Check<infer T> ? T : never };
type Opt<S extends Shape> = { [K in keyof S as S[K] extends Optional<unknown> ? K : never]?: S[K] extends Optional<infer T> ? T : never };
type Flatten<T> = { [K in keyof T]: T[K] };
export type ShapeOf<S extends Shape> = Flatten<Required<S> & Opt<S>>;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/** The fields an object checker takes, each required or optional (docs/protocol.md is checked against them). */
export type Fields = Readonly<Record<string, 'required' | 'optional'>>;
/** A checker of a map, which says what fields it takes. */
export type ObjCheck<T> = Check<T> & { readonly fields: Fields };

/** An object with the given fields; unknown fields are ignored (forward compatible). */
export function obj<S extends Shape>(shape: S): ObjCheck<ShapeOf<S>> {
  const fields = Object.entries(shape);
  const described: Fields = Object.fromEntries(fields.map(([name, field]) => [name, typeof field === 'function' ? 'required' : 'optional']));
  const check: Check<ShapeOf<S>> = (v, p) => {
    if (!isObject(v)) return fail(p, 'a map');
    const out: Record<string, unknown> = {};
    for (const [name, field] of fields) {
      const raw = Object.prototype.hasOwnProperty.call(v, name) ? v[name] : undefined;
      if (typeof field === 'function') {
        out[name] = field(raw, `${p}.${name}`);
      } else if (raw !== undefined) {
        out[name] = field.optional(raw, `${p}.${name}`);
      }
    }
    return out as ShapeOf<S>;
  };
  return Object.assign(check, { fields: described });
}

/** A map of string keys to checked values (at most `max` entries); "__proto__" is kept as a plain key. */
export function recordOf<T>(inner: Check<T>, max = 1024): Check<Record<string, T>> {
  return (v, p) => {
    if (!isObject(v)) return fail(p, 'a map');
    const keys = Object.keys(v);
    if (keys.length > max) return fail(p, `at most ${max} entries`);
    const out: Record<string, T> = {};
    for (const k of keys) {
      Object.defineProperty(out, k, { value: inner(v[k], `${p}.${k}`), enumerable: true, writable: true, configurable: true });
    }
    return out;
  };
}
