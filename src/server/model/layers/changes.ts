import type { KeyChange } from '../../../protocol/index.js';
import { hasMarks, ownEntry } from './own.js';
import { dependentsOf, flatten, type ParentMap } from './parents.js';
import { mergedKey, type Layer, type OwnEntry } from './views.js';

/** Where the own entries before a write are read from: a store's view under its lock, or a server's memory. */
export interface OwnSource {
  /** The own text (own.ts) of `key` in `env` before the write. */
  own(env: string, key: string): string | undefined;
  /** Every key `env` holds an own entry for (read only when a parent list changes). */
  keys(env: string): Iterable<string>;
}

/** One write to one environment's layer: its own entries' new texts, and its new parent list when that changes. */
export interface LayerWrite {
  env: string;
  /** [key, own text after, or null when the entry is removed]. */
  changes: readonly (readonly [string, string | null])[];
  parents?: readonly string[];
}

/** The parent lists with `env`'s replaced. */
export function withParents(parentsOf: ParentMap, env: string, parents: readonly string[]): Map<string, readonly string[]> {
  const next = new Map(parentsOf);
  if (parents.length === 0) next.delete(env);
  else next.set(env, parents);
  return next;
}

/**
 * What a write does to the merged views: for the written environment and every environment built
 * on it (dependentsOf, sorted by name), the keys whose merged text changes, as [key, before, after]
 * (null: absent). Environments whose view does not change are left out; the written one comes first.
 *
 * Only the keys the write touches can change — every key of the layers involved when the parent
 * list changes. Each dependent's view is computed from the own entries of its own layers, so no
 * dependent waits for another. Throws merge.ts's RangeError on values nested past its guard.
 */
export function mergedChanges(parentsOf: ParentMap, source: OwnSource, write: LayerWrite): Map<string, KeyChange[]> {
  const written = new Map<string, string | null>();
  for (const [key, text] of write.changes) written.set(key, text);
  const involved = [write.env, ...dependentsOf(write.env, parentsOf).filter((e) => e !== write.env)];
  if (write.parents === undefined) return byKey(parentsOf, source, write.env, written, involved);
  const after = withParents(parentsOf, write.env, write.parents);
  const entryOf = (env: string, key: string, afterWrite: boolean): OwnEntry | undefined => {
    const text = afterWrite && env === write.env && written.has(key) ? written.get(key) : source.own(env, key);
    return text === null || text === undefined ? undefined : ownEntry(text);
  };
  const layer = (env: string, afterWrite: boolean): Layer => ({
    env,
    entries: { get: (key: string) => entryOf(env, key, afterWrite) } as unknown as ReadonlyMap<string, OwnEntry>,
  });
  const out = new Map<string, KeyChange[]>();
  for (const env of involved) {
    const namesBefore = flatten(env, parentsOf);
    const namesAfter = flatten(env, after);
    const all = new Set<string>(written.keys());
    for (const name of new Set([...namesBefore, ...namesAfter])) for (const key of source.keys(name)) all.add(key);
    const before = namesBefore.map((name) => layer(name, false));
    const next = namesAfter.map((name) => layer(name, true));
    const changes: KeyChange[] = [];
    for (const key of [...all].sort()) {
      const was = mergedKey(key, before) ?? null;
      const now = mergedKey(key, next) ?? null;
      if (was !== now) changes.push([key, was, now]);
    }
    if (changes.length > 0 || env === write.env) out.set(env, changes);
  }
  return out;
}

/**
 * mergedChanges when no parent list changes, key by key: for each key, the layers that hold an
 * entry of it are found once, and each environment's merged value is worked out once per distinct
 * sequence of such layers in its order — a hundred environments that add nothing to the key share
 * one answer (the written layer's), and a key one layer alone gives is its text, unparsed.
 */
function byKey(
  parentsOf: ParentMap, source: OwnSource, env: string, written: ReadonlyMap<string, string | null>, involved: string[],
): Map<string, KeyChange[]> {
  const orders = involved.map((name) => flatten(name, parentsOf));
  const layerNames = [...new Set(orders.flat())];
  const lists: KeyChange[][] = involved.map(() => []);
  const before = new Map<string, string>();
  const merged = (key: string, names: readonly string[], texts: ReadonlyMap<string, string>): string | undefined => {
    if (names.length === 0) return undefined;
    const first = texts.get(names[0])!;
    if (names.length === 1 && !hasMarks(first)) return first;
    return mergedKey(key, names.map((name) => ({ env: name, entries: new Map([[key, ownEntry(texts.get(name)!)]]) })));
  };
  for (const [key, text] of written) {
    before.clear();
    for (const name of layerNames) {
      const own = source.own(name, key);
      if (own !== undefined) before.set(name, own);
    }
    const after = new Map(before);
    if (text === null) after.delete(env);
    else after.set(env, text);
    const memoBefore = new Map<string, string | undefined>();
    const memoAfter = new Map<string, string | undefined>();
    for (let i = 0; i < involved.length; i++) {
      const namesBefore = orders[i].filter((name) => before.has(name));
      const namesAfter = orders[i].filter((name) => after.has(name));
      const sigBefore = namesBefore.join('\n');
      const sigAfter = namesAfter.join('\n');
      if (!memoBefore.has(sigBefore)) memoBefore.set(sigBefore, merged(key, namesBefore, before));
      if (!memoAfter.has(sigAfter)) memoAfter.set(sigAfter, merged(key, namesAfter, after));
      const was = memoBefore.get(sigBefore) ?? null;
      const now = memoAfter.get(sigAfter) ?? null;
      if (was !== now) lists[i].push([key, was, now]);
    }
  }
  const out = new Map<string, KeyChange[]>();
  involved.forEach((name, i) => {
    if (lists[i].length > 0 || name === env) out.set(name, lists[i]);
  });
  return out;
}
