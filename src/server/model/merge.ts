/**
 * The pure value operations behind `merge ENV KEY JSON` and `clear ENV KEY [PATH…]`.
 * docs/merge-and-clear.md is the rule; this file follows it and nothing else.
 * Every result is a fresh tree: callers may keep, freeze or mutate it without touching
 * the inputs, and the inputs are never written to.
 */

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonObject = { [k: string]: Json };

/** Deeper values are refused: recursion on hostile input would otherwise overflow the stack. */
export const MAX_DEPTH = 256;

function guard(depth: number): void {
  if (depth > MAX_DEPTH) {
    throw new RangeError(`JSON value nested deeper than ${MAX_DEPTH} levels`);
  }
}

function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// Plain assignment of "__proto__" would change the prototype instead of storing a key.
function put(obj: JsonObject, key: string, value: Json): void {
  if (key === '__proto__') {
    Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    obj[key] = value;
  }
}

// Inherited names ("constructor", "__proto__") must never count as keys of a config object.
function has(obj: JsonObject, key: string): boolean {
  return Object.hasOwn(obj, key);
}

/** `depth` is the nesting level of `v` if it is a container; the root container is level 1. */
function clone(v: Json, depth: number): Json {
  if (v === null || typeof v !== 'object') return v;
  guard(depth);
  if (Array.isArray(v)) return v.map((x) => clone(x, depth + 1));
  const out: JsonObject = {};
  for (const k of Object.keys(v)) put(out, k, clone(v[k], depth + 1));
  return out;
}

/**
 * One string per equivalence class of jsonEqual (keys sorted, strings quoted), so that
 * union and value removal are a Set lookup rather than a quadratic scan of big arrays.
 */
function canonical(v: Json, depth: number): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  guard(depth);
  if (Array.isArray(v)) return `[${v.map((x) => canonical(x, depth + 1)).join(',')}]`;
  const keys = Object.keys(v).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(v[k], depth + 1)}`).join(',')}}`;
}

function equal(a: Json, b: Json, depth: number): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  guard(depth);
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((x, i) => equal(x, b[i], depth + 1));
  }
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((k) => has(b, k) && equal(a[k], b[k], depth + 1));
}

/** Deep equality with strict types (2 !== "2"); object key order is irrelevant. */
export function jsonEqual(a: Json, b: Json): boolean {
  return equal(a, b, 1);
}

/** The array of a `{"replace": [...]}` form (an object whose only key is `replace`, holding an array). */
export function replaceForm(v: Json): Json[] | undefined {
  if (!isObject(v)) return undefined;
  const keys = Object.keys(v);
  if (keys.length !== 1 || keys[0] !== 'replace') return undefined;
  const arr = v.replace;
  return Array.isArray(arr) ? arr : undefined;
}

function merge(before: Json | undefined, patch: Json, depth: number): Json {
  // Qbix honours {"replace": [...]} only over an array; the rule says always.
  const replacement = replaceForm(patch);
  if (replacement !== undefined) return clone(replacement, depth);

  if (isObject(patch)) {
    guard(depth);
    // Merging onto nothing still walks the patch, so replace forms nested in an object that
    // replaces a scalar or an array are honoured too.
    const base = isObject(before) ? before : {};
    const out: JsonObject = {};
    for (const k of Object.keys(base)) {
      put(out, k, has(patch, k) ? merge(base[k], patch[k], depth + 1) : clone(base[k], depth + 1));
    }
    for (const k of Object.keys(patch)) {
      if (!has(base, k)) put(out, k, merge(undefined, patch[k], depth + 1));
    }
    return out;
  }

  if (Array.isArray(patch) && Array.isArray(before)) {
    guard(depth);
    // Duplicates already in the old array stay; the union only governs what is appended.
    const out = before.map((x) => clone(x, depth + 1));
    const seen = new Set(out.map((x) => canonical(x, depth + 1)));
    for (const item of patch) {
      const key = canonical(item, depth + 1);
      if (!seen.has(key)) {
        seen.add(key);
        out.push(clone(item, depth + 1));
      }
    }
    return out;
  }

  // Scalars (null included) and arrays over a non-array replace. Array items are data, not
  // merge positions, so a {"replace": [...]} inside an array is stored as written.
  return clone(patch, depth);
}

/** new value = merge(old, patch); `before` undefined means the key does not exist yet. */
export function mergeValue(before: Json | undefined, patch: Json): Json {
  return merge(before, patch, 1);
}

const INDEX = /^(0|[1-9][0-9]*)$/;

/** A clear word is JSON when it parses (`2`, `"2"`, `["p","r"]`), else the plain string. */
function parseWord(word: string): Json {
  try {
    return JSON.parse(word) as Json;
  } catch {
    return word;
  }
}

function stringArray(v: Json): string[] | undefined {
  return Array.isArray(v) && v.every((x) => typeof x === 'string') ? v : undefined;
}

/**
 * `clear ENV KEY [PATH…]` applied to the value of KEY; `args` are the words after KEY.
 * `value` undefined means the key is deleted. `changed: false` returns `before` itself.
 */
export function clearValue(
  before: Json,
  args: string[],
): { changed: boolean; value: Json | undefined } {
  if (args.length === 0) return { changed: true, value: undefined };
  const unchanged = { changed: false, value: before };

  // Work on a private copy (which also enforces the depth limit) and edit it in place.
  let root = clone(before, 1);
  const last = args[args.length - 1];
  let node: Json = root;
  // Where `node` hangs, so an array emptied by the removal can be cut from its parent.
  let holder: { parent: JsonObject | Json[]; at: string | number } | undefined;

  for (const word of args.slice(0, -1)) {
    if (Array.isArray(node)) {
      if (!INDEX.test(word)) return unchanged;
      const i = Number(word);
      if (i >= node.length) return unchanged;
      holder = { parent: node, at: i };
      node = node[i];
    } else if (isObject(node)) {
      if (!has(node, word)) return unchanged;
      holder = { parent: node, at: word };
      node = node[word];
    } else {
      return unchanged;
    }
  }

  if (isObject(node)) {
    const obj = node;
    // A key spelled exactly like the word wins over reading the word as a JSON list of keys.
    const keys = has(obj, last) ? [last] : (stringArray(parseWord(last)) ?? [last]);
    const present = keys.filter((k) => has(obj, k));
    if (present.length === 0) return unchanged;
    for (const k of present) delete obj[k];
    return { changed: true, value: root };
  }

  if (!Array.isArray(node)) return unchanged;

  const word = parseWord(last);
  const drop = new Set((Array.isArray(word) ? word : [word]).map((x) => canonical(x, 1)));
  const kept = node.filter((x) => !drop.has(canonical(x, 1)));
  if (kept.length === node.length) return unchanged;

  if (kept.length > 0) {
    if (holder === undefined) root = kept;
    else if (Array.isArray(holder.parent)) holder.parent[holder.at as number] = kept;
    else put(holder.parent, holder.at as string, kept);
    return { changed: true, value: root };
  }

  // Only the emptied array goes; a parent it leaves empty stays, as in Qbix.
  if (holder === undefined) return { changed: true, value: undefined };
  if (Array.isArray(holder.parent)) holder.parent.splice(holder.at as number, 1);
  else delete holder.parent[holder.at as string];
  return { changed: true, value: root };
}
